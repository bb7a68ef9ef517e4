// The GPU scorer on a card (label gpu; skips without one): the merge and
// rescore ops against their CPU twins (exact: the selection is a function of
// the scores, and the rescore is the same fmaf chain), and the device driver
// against the CPU scorer: every certified row identical (indices and score
// bits), every differing row uncertified. d in {37, 384}, k in {1, 50, 2048},
// N < k, duplicate vectors, min_score, a row range (a shard).
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "affinity.h"
#include "ops.h"
#include "nn/model.h"
#include "search/score_bf16.h"
#include "topk_fused.h"
#include "cuda_fixture.h"
#include "test_util.h"

namespace {

// Rows (of R, k entries each) where the device's (ids, scores) are not
// bit-equal to the CPU scorer's.
int64_t rows_differing(const std::vector<int64_t> &en, const std::vector<float> &es,
                       const std::vector<int64_t> &gn, const std::vector<float> &gs, int64_t R,
                       int k) {
  int64_t differ = 0;
  for (int64_t q = 0; q < R; q++)
    differ += std::memcmp(&en[q * k], &gn[q * k], 8 * k) != 0 ||
              std::memcmp(&es[q * k], &gs[q * k], 4 * k) != 0;
  return differ;
}

class CudaScore : public CudaFixture {
 protected:
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
    auto X = aft::random_unit(9000, d, 5), Q = aft::random_unit(QT, d, 6);
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
    auto x = aft::random_unit(c.N, c.d, 7);
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
    const int64_t differ = rows_differing(en, es, gn, gs, R, c.k);
    EXPECT_LE(differ, unc);
    std::printf("N=%lld d=%d k=%d: %lld of %lld rows differ, %lld uncertified\n", (long long)c.N,
                c.d, c.k, (long long)differ, (long long)R, (long long)unc);
  }
}

// Inputs v/8 with |v| <= 4 (exact in bf16): every product is a multiple of
// 1/64 and every partial sum (|s| <= 96 at d = 384) is exact in fp32, so the
// tensor core's summation order cannot change a bit and the kernel must equal
// its CPU twin exactly (lists, indices and scores), ties included.
std::vector<uint16_t> coarse_bf16(int N, int d, int dp, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> u(-4, 4);
  std::vector<uint16_t> x((size_t)N * dp, 0);
  for (int i = 0; i < N; i++)
    for (int c = 0; c < d; c++) x[(size_t)i * dp + c] = af_bf16_from_f32(u(g) / 8.f);
  return x;
}

TEST_F(CudaScore, FusedKernelEqualsItsTwinOnExactInputs) {
  struct Case { int nq, cc, d, kp, S; int64_t col0, q0; };
  for (Case c : {Case{70, 1000, 37, 66, 3, 5000, 5010}, Case{200, 5000, 384, 96, 5, 0, 100},
                 Case{5, 20, 16, 50, 2, 0, 3}, Case{64, 4000, 48, 1, 7, 100000, 0},
                 Case{1000, 3000, 384, 66, 1, 0, 0}}) {
    SCOPED_TRACE("nq=" + std::to_string(c.nq) + " cc=" + std::to_string(c.cc) +
                 " d=" + std::to_string(c.d) + " kp=" + std::to_string(c.kp));
    const int dp = (c.d + 15) / 16 * 16;
    auto Q = coarse_bf16(c.nq, c.d, dp, 1), X = coarse_bf16(c.cc, c.d, dp, 2);
    const size_t n = (size_t)c.nq * c.S * c.kp;
    std::vector<float> rps(n);
    std::vector<int64_t> rpi(n);
    ASSERT_TRUE(af_cpu_topk_fused(rps.data(), rpi.data(), c.kp, Q.data(), X.data(), c.nq, c.cc, dp,
                                  c.col0, c.q0, c.S));
    float *ps = up(std::vector<float>(n, NAN));
    int64_t *pi = up(std::vector<int64_t>(n, 77));
    ASSERT_EQ(af_op_topk_fused(&dev, ps, pi, c.kp, up(Q), up(X), c.nq, c.cc, dp, c.col0, c.q0, c.S,
                               &err),
              AF_OK)
        << err.msg;
    EXPECT_EQ(down(pi, n), rpi);
    auto gps = down(ps, n);
    EXPECT_EQ(std::memcmp(gps.data(), rps.data(), n * 4), 0);
    // the partial merge into a running list that already holds candidates
    std::vector<float> ls((size_t)c.nq * c.kp, -INFINITY);
    std::vector<int64_t> li((size_t)c.nq * c.kp, -1);
    for (int r = 0; r < c.nq; r++) ls[(size_t)r * c.kp] = 0.25f, li[(size_t)r * c.kp] = 999999;
    float *dls = up(ls);
    int64_t *dli = up(li);
    af_cpu_topk_merge_partials(ls.data(), li.data(), c.kp, rps.data(), rpi.data(), c.nq, c.S);
    ASSERT_EQ(af_op_topk_merge_partials(&dev, dls, dli, c.kp, ps, pi, c.nq, c.S, &err), AF_OK)
        << err.msg;
    EXPECT_EQ(down(dli, li.size()), li);
    EXPECT_EQ(down(dls, ls.size()), ls);
  }
}

TEST_F(CudaScore, PinnedHostMemoryRoundTrips) {
  void *h = nullptr;
  ASSERT_EQ(af_host_alloc(&dev, 1 << 20, &h, &err), AF_OK) << err.msg;
  std::vector<unsigned char> zero(1 << 20, 0);
  EXPECT_EQ(std::memcmp(h, zero.data(), zero.size()), 0);
  for (size_t i = 0; i < zero.size(); i++) ((unsigned char *)h)[i] = (unsigned char)(i * 7);
  void *d = nullptr;
  ASSERT_EQ(af_dev_alloc(&dev, zero.size(), &d, &err), AF_OK);
  ptrs.push_back(d);
  ASSERT_EQ(af_dev_upload(&dev, d, h, zero.size(), &err), AF_OK);
  ASSERT_EQ(af_dev_download(&dev, zero.data(), d, zero.size(), &err), AF_OK);
  EXPECT_EQ(std::memcmp(h, zero.data(), zero.size()), 0);
  af_host_free(&dev, h);
}

// The pipelined encode (pinned staging, every batch's uploads, kernels and
// download queued on the stream, one wait per chunk; the GPU default) against
// the plain one (synchronous copies per batch) on the card, in fp32 and bf16:
// bit for bit (the same kernels on the same packed batches in the same stream
// order; only where the host bytes live and when the host waits differ).
// 4,200 texts in 512-token batches: two chunks, ~60 batches each; outputs
// poisoned first. Not yet run on a card.
TEST_F(CudaScore, AsyncEncodeEqualsPlainBitForBit) {
  af_model m;
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err),
            AF_OK) << err.msg;
  std::vector<std::string> store =
      aft::word_texts(4200, {"milk", "tea", "bread", "green", "organic", "whole", "中国"}, 8);
  std::vector<const char *> texts;
  for (auto &t : store) texts.push_back(t.c_str());
  const int N = (int)texts.size(), C = m.cfg.hidden_size;
  for (af_precision prec : {AF_PRECISION_FP32, AF_PRECISION_BF16}) {
    std::vector<std::vector<float>> got;
    for (int pipeline : {-1, 1}) {
      af_encoder *enc = nullptr;
      af_tokenizer *tok = nullptr;
      ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_encoder_set_precision(enc, prec, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &err), AF_OK) << err.msg;
      af_embed_options o;
      af_embed_default_options(&o);
      o.pipeline = pipeline;
      o.batch_tokens = 512;
      got.emplace_back((size_t)N * C, std::nanf(""));
      EXPECT_EQ(af_embed_texts(enc, tok, texts.data(), N, &o, got.back().data(), &err), AF_OK)
          << err.msg;
      af_tokenizer_free(tok);
      af_encoder_free(enc);
    }
    for (size_t j = 0; j < got[1].size(); j++) ASSERT_FALSE(std::isnan(got[1][j])) << j;
    EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), sizeof(float) * got[0].size()), 0)
        << "precision " << (int)prec;
  }
  af_model_free(&m);
}

TEST_F(CudaScore, RescoreRangeEqualsItsTwin) {
  const int QT = 37, kp = 66, d = 384;
  auto X = aft::random_unit(9000, d, 3), Q = aft::random_unit(QT, d, 4);
  std::vector<int64_t> idx((size_t)QT * kp);
  for (size_t i = 0; i < idx.size(); i++) idx[i] = i % 9 == 8 ? -1 : (int64_t)(i * 131 % 9000);
  std::vector<float> ref(idx.size(), NAN);
  float *out = up(ref);
  const float *dq = up(Q);
  const int64_t *di = up(idx);
  for (int64_t c0 = 0; c0 < 9000; c0 += 4000) {
    const int64_t c1 = std::min<int64_t>(9000, c0 + 4000);
    std::vector<float> chunk(X.begin() + c0 * d, X.begin() + c1 * d);
    af_cpu_rescore_fp32_range(ref.data(), Q.data(), chunk.data(), idx.data(), QT, kp, d, c0, c1);
    ASSERT_EQ(af_op_rescore_fp32_range(&dev, out, dq, up(chunk), di, QT, kp, d, c0, c1, &err),
              AF_OK);
  }
  auto got = down(out, ref.size());
  EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * 4), 0);
}

// The driver with each path and with the base in chunks, against the CPU scorer.
TEST_F(CudaScore, DriverPathsAndChunksMatchTheCpuScorer) {
  auto x = aft::random_unit(30000, 384, 8);
  for (int i = 0; i < 10; i++)
    std::copy(x.begin() + i * 384, x.begin() + (i + 1) * 384, x.begin() + (29999 - i) * 384);
  struct Case { int path; int64_t chunk; int k; };
  for (Case c : {Case{AF_TOPK_PATH_FUSED, 0, 50}, Case{AF_TOPK_PATH_FUSED, 7000, 50},
                 Case{AF_TOPK_PATH_TILED, 7000, 50}, Case{AF_TOPK_PATH_AUTO, 9000, 2048},
                 Case{AF_TOPK_PATH_FUSED, 0, 1}}) {
    SCOPED_TRACE("path=" + std::to_string(c.path) + " chunk=" + std::to_string(c.chunk));
    const int64_t row0 = 1000, row1 = 3000, R = row1 - row0;
    std::vector<int64_t> en((size_t)R * c.k), gn(en.size());
    std::vector<float> es(en.size()), gs(en.size());
    ASSERT_EQ(af_topk_all_pairs(x.data(), 30000, 384, c.k, -INFINITY, row0, row1, en.data(),
                                es.data(), nullptr, &err),
              AF_OK);
    af_bf16_topk_device_options o;
    o.path = c.path;
    o.col_chunk = c.chunk;
    o.q_tile = 0;
    af_bf16_topk_device_report rep;
    ASSERT_EQ(af_bf16_topk_device_ex(&dev, x.data(), 30000, 384, c.k, 16, -INFINITY, row0, row1, &o,
                                     gn.data(), gs.data(), &rep, &err),
              AF_OK)
        << err.msg;
    const int64_t differ = rows_differing(en, es, gn, gs, R, c.k);
    EXPECT_LE(differ, rep.uncertified);
    std::printf("N=30000 d=384 k=%d %s chunks=%lld: %lld of %lld rows differ, %lld uncertified\n",
                c.k, rep.fused ? "fused" : "tiled", (long long)rep.n_chunks, (long long)differ,
                (long long)R, (long long)rep.uncertified);
  }
}

}  // namespace
