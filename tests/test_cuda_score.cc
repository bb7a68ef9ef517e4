// The GPU scorer on a card (label gpu; skips without one): the merge and
// rescore ops against their CPU twins (exact: the selection is a function of
// the scores, and the rescore is the same fmaf chain), and the device driver
// against the CPU scorer: every certified row identical (indices and score
// bits), every differing row uncertified. d in {37, 384}, k in {1, 50, 2048},
// N < k, duplicate vectors, min_score, a row range (a shard).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "affinity.h"
#include "ops.h"
#include "search/score_bf16.h"

namespace {

std::vector<float> random_unit(int64_t N, int d, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> x((size_t)N * d);
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++) s += std::pow(x[i * d + c] = n(g), 2);
    for (int c = 0; c < d; c++) x[i * d + c] /= (float)std::sqrt(s);
  }
  return x;
}

class CudaScore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!af_cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine";
    ASSERT_EQ(af_device_cuda(0, &dev, &err), AF_OK) << err.msg;
    live = true;
  }
  void TearDown() override {
    for (void *p : ptrs) af_dev_free(&dev, p);
    if (live) af_device_release(&dev);
  }
  template <class T>
  T *up(const std::vector<T> &h) {
    void *p = nullptr;
    EXPECT_EQ(af_dev_alloc(&dev, h.size() * sizeof(T), &p, &err), AF_OK) << err.msg;
    ptrs.push_back(p);
    EXPECT_EQ(af_dev_upload(&dev, p, h.data(), h.size() * sizeof(T), &err), AF_OK) << err.msg;
    return (T *)p;
  }
  template <class T>
  std::vector<T> down(const T *d, size_t n) {
    std::vector<T> h(n);
    EXPECT_EQ(af_dev_download(&dev, h.data(), d, n * sizeof(T), &err), AF_OK) << err.msg;
    return h;
  }
  af_device dev{};
  af_error err{};
  bool live = false;
  std::vector<void *> ptrs;
};

TEST_F(CudaScore, MergeAndRescoreEqualTheCpuTwins) {
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int kp : {1, 66, 2064}) {
    const int QT = 37, CC = 3000, d = 37;
    std::vector<float> tile((size_t)QT * CC);
    for (auto &v : tile) v = std::round(u(g) * 64) / 64;  // many ties
    std::vector<float> ls((size_t)QT * kp, -INFINITY);
    std::vector<int64_t> li((size_t)QT * kp, -1);
    std::vector<float> rls = ls;
    std::vector<int64_t> rli = li;
    af_cpu_topk_merge_rows(rls.data(), rli.data(), kp, tile.data(), QT, CC, 5000, 5010);
    af_cpu_topk_merge_rows(rls.data(), rli.data(), kp, tile.data(), QT, CC, 100, 5010);
    float *dls = up(ls);
    int64_t *dli = up(li);
    float *dt = up(tile);
    ASSERT_EQ(af_op_topk_merge_rows(&dev, dls, dli, kp, dt, QT, CC, 5000, 5010, &err), AF_OK)
        << err.msg;
    ASSERT_EQ(af_op_topk_merge_rows(&dev, dls, dli, kp, dt, QT, CC, 100, 5010, &err), AF_OK)
        << err.msg;
    EXPECT_EQ(down(dli, li.size()), rli) << "kp=" << kp;
    EXPECT_EQ(down(dls, ls.size()), rls) << "kp=" << kp;
    auto X = random_unit(9000, d, 5), Q = random_unit(QT, d, 6);
    std::vector<float> ref((size_t)QT * kp);
    af_cpu_rescore_fp32(ref.data(), Q.data(), X.data(), rli.data(), QT, kp, d);
    float *out = up(std::vector<float>(ref.size(), NAN));
    ASSERT_EQ(af_op_rescore_fp32(&dev, out, up(Q), up(X), up(rli), QT, kp, d, &err), AF_OK);
    auto got = down(out, ref.size());
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * 4), 0) << "rescore bits, kp=" << kp;
  }
}

TEST_F(CudaScore, DeviceDriverMatchesTheCpuScorerOnCertifiedRows) {
  struct Case { int64_t N; int d, k, margin; float min_score; int64_t row0, row1; };
  for (Case c : {Case{20000, 384, 50, 16, -INFINITY, 0, 20000}, Case{9000, 37, 1, 4, -INFINITY, 0, 9000},
                 Case{5000, 37, 2048, 16, -INFINITY, 1000, 1500}, Case{20, 37, 50, 16, -INFINITY, 0, 20},
                 Case{9000, 384, 10, 8, 0.2f, 4000, 6000}}) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " d=" + std::to_string(c.d) + " k=" + std::to_string(c.k));
    auto x = random_unit(c.N, c.d, 7);
    for (int i = 0; i < 10 && 2 * i + 1 < c.N; i++)  // duplicates
      std::copy(x.begin() + i * c.d, x.begin() + (i + 1) * c.d, x.begin() + (c.N - 1 - i) * c.d);
    const int64_t R = c.row1 - c.row0;
    std::vector<int64_t> en((size_t)R * c.k), gn((size_t)R * c.k);
    std::vector<float> es((size_t)R * c.k), gs((size_t)R * c.k);
    ASSERT_EQ(af_topk_all_pairs(x.data(), c.N, c.d, c.k, c.min_score, c.row0, c.row1, en.data(),
                                es.data(), nullptr, &err),
              AF_OK);
    int64_t unc = 0;
    ASSERT_EQ(af_bf16_topk_device(&dev, x.data(), c.N, c.d, c.k, c.margin, c.min_score, c.row0,
                                  c.row1, gn.data(), gs.data(), &unc, &err),
              AF_OK)
        << err.msg;
    int64_t differ = 0;
    for (int64_t q = 0; q < R; q++)
      differ += std::memcmp(&en[q * c.k], &gn[q * c.k], 8 * c.k) != 0 ||
                std::memcmp(&es[q * c.k], &gs[q * c.k], 4 * c.k) != 0;
    EXPECT_LE(differ, unc);
    std::printf("N=%lld d=%d k=%d: %lld of %lld rows differ, %lld uncertified\n", (long long)c.N,
                c.d, c.k, (long long)differ, (long long)R, (long long)unc);
  }
}

}  // namespace
