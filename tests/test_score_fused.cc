// The fused all-pairs top-k kernel's algorithm on the CPU (kernels/cpu/
// topk_fused.c, the twin of kernels/cuda/topk_fused.cu) and the chunked device
// driver (engine/search/score_bf16.c) on the CPU backend, which is exactly
// what the GPU runs, op for op. References nobody here wrote: brute force
// (every score computed, a full sort under the total order) for the kernel,
// and the exact CPU scorer af_topk_all_pairs (itself checked against float64
// brute force and FAISS) for the driver. No tolerance anywhere: the kernel's
// lists must equal brute force exactly (same indices, same score bits), and
// every certified row of the driver must equal the CPU scorer exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "affinity.h"
#include "ops.h"
#include "search/score_bf16.h"
#include "topk_fused.h"
#include "test_util.h"

namespace {

// (N, dp) bf16, zero-padded; values v/8, |v| <= 4 when coarse (many ties).
std::vector<uint16_t> random_bf16(int N, int d, int dp, unsigned seed, bool coarse) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> u(-4, 4);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<uint16_t> x((size_t)N * dp, 0);
  for (int i = 0; i < N; i++)
    for (int c = 0; c < d; c++) x[(size_t)i * dp + c] = af_bf16_from_f32(coarse ? u(g) / 8.f : n(g));
  return x;
}

struct Ent { float s; int64_t i; };
bool better(const Ent &a, const Ent &b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

// Brute force of af_op_topk_fused's contract for one (row, column range).
std::vector<Ent> brute(const uint16_t *q, const uint16_t *X, int dp, int cb, int ce, int64_t col0,
                       int64_t self, int kp) {
  std::vector<Ent> all;
  for (int c = cb; c < ce; c++) {
    if (col0 + c == self) continue;
    float acc = 0;
    for (int i = 0; i < dp; i++)
      acc = std::fma(af_f32_from_bf16(q[i]), af_f32_from_bf16(X[(size_t)c * dp + i]), acc);
    all.push_back({acc, col0 + c});
  }
  std::sort(all.begin(), all.end(), better);
  all.resize(kp, Ent{-INFINITY, -1});
  return all;
}

TEST(TopkFused, TwinEqualsBruteForcePerSplit) {
  struct Case { int nq, cc, d, kp, S; int64_t col0, q0; bool coarse; };
  for (Case c : {Case{70, 1000, 37, 66, 3, 5000, 5010, true},   // self inside, ties, d = 37
                 Case{5, 333, 384, 96, 1, 0, 100, false},        // the kp limit, d = 384
                 Case{64, 40, 16, 1, 2, 0, 0, true},             // k' = 1, splits near empty
                 Case{9, 20, 32, 50, 2, 0, 3, false},            // fewer columns than k'
                 Case{3, 4000, 48, 80, 7, 100000, 0, true}}) {   // many merges per split
    SCOPED_TRACE("nq=" + std::to_string(c.nq) + " cc=" + std::to_string(c.cc) +
                 " kp=" + std::to_string(c.kp) + " S=" + std::to_string(c.S));
    const int dp = (c.d + 15) / 16 * 16;
    auto Q = random_bf16(c.nq, c.d, dp, 1, c.coarse), X = random_bf16(c.cc, c.d, dp, 2, c.coarse);
    if (c.cc > 30)  // duplicate columns: equal scores, the lower index must win
      for (int i = 0; i < 10; i++)
        std::copy(X.begin() + i * dp, X.begin() + (i + 1) * dp, X.begin() + (c.cc - 1 - i) * dp);
    std::vector<float> ps((size_t)c.nq * c.S * c.kp, NAN);
    std::vector<int64_t> pi((size_t)c.nq * c.S * c.kp, 77);
    af_cpu_topk_fused(ps.data(), pi.data(), c.kp, Q.data(), X.data(), c.nq, c.cc, dp, c.col0, c.q0,
                      c.S);
    const int w = af_fused_split_width(c.cc, c.S);
    EXPECT_EQ(w % AF_FUSED_CT, 0);
    int bad = 0;
    for (int r = 0; r < c.nq; r++)
      for (int s = 0; s < c.S; s++) {
        const int cb = std::min(s * w, c.cc), ce = std::min(cb + w, c.cc);
        auto want = brute(&Q[(size_t)r * dp], X.data(), dp, cb, ce, c.col0, c.q0 + r, c.kp);
        for (int e = 0; e < c.kp; e++) {
          const size_t o = ((size_t)r * c.S + s) * c.kp + e;
          bad += pi[o] != want[e].i || std::memcmp(&ps[o], &want[e].s, 4) != 0;
        }
      }
    EXPECT_EQ(bad, 0);
    // The partial merge: the k' best of all splits = brute force over the chunk.
    std::vector<float> ls((size_t)c.nq * c.kp, -INFINITY);
    std::vector<int64_t> li((size_t)c.nq * c.kp, -1);
    af_cpu_topk_merge_partials(ls.data(), li.data(), c.kp, ps.data(), pi.data(), c.nq, c.S);
    for (int r = 0; r < c.nq; r++) {
      auto want = brute(&Q[(size_t)r * dp], X.data(), dp, 0, c.cc, c.col0, c.q0 + r, c.kp);
      for (int e = 0; e < c.kp; e++) {
        const size_t o = (size_t)r * c.kp + e;
        bad += li[o] != want[e].i || std::memcmp(&ls[o], &want[e].s, 4) != 0;
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(TopkFused, RescoreRangeTouchesOnlyItsChunk) {
  const int QT = 5, kp = 7, d = 37;
  auto X = aft::random_unit(100, d, 3), Q = aft::random_unit(QT, d, 4);
  std::vector<int64_t> idx((size_t)QT * kp);
  for (size_t i = 0; i < idx.size(); i++) idx[i] = i % 9 == 8 ? -1 : (int64_t)(i * 13 % 100);
  std::vector<float> ref(idx.size()), got(idx.size(), NAN);
  af_cpu_rescore_fp32(ref.data(), Q.data(), X.data(), idx.data(), QT, kp, d);
  for (int64_t c0 = 0; c0 < 100; c0 += 30)
    af_cpu_rescore_fp32_range(got.data(), Q.data(), X.data() + c0 * d, idx.data(), QT, kp, d, c0,
                              std::min<int64_t>(100, c0 + 30));
  EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * 4), 0);
}

af_bf16_topk_device_options opts(int path, int64_t chunk = 0, int64_t q_tile = 0) {
  af_bf16_topk_device_options o;
  o.path = path;
  o.col_chunk = chunk;
  o.q_tile = q_tile;
  return o;
}

struct Result {
  std::vector<int64_t> nbr;
  std::vector<float> scr;
  af_bf16_topk_device_report rep{};
};

Result run_device(const std::vector<float> &x, int64_t N, int d, int k, int margin, float min_score,
                  int64_t row0, int64_t row1, af_bf16_topk_device_options o) {
  af_device cpu = af_device_cpu(0);
  af_error err{};
  Result r;
  r.nbr.resize((size_t)(row1 - row0) * k);
  r.scr.resize(r.nbr.size());
  EXPECT_EQ(af_bf16_topk_device_ex(&cpu, x.data(), N, d, k, margin, min_score, row0, row1, &o,
                                   r.nbr.data(), r.scr.data(), &r.rep, &err),
            AF_OK)
      << err.msg;
  return r;
}

// Rows of r that differ from the exact CPU scorer; must not exceed the
// uncertified count (every differing row is uncertified).
int64_t rows_differ(const std::vector<float> &x, int64_t N, int d, int k, float min_score,
                    int64_t row0, int64_t row1, const Result &r, double *recall = nullptr) {
  af_error err{};
  std::vector<int64_t> en((size_t)(row1 - row0) * k);
  std::vector<float> es(en.size());
  EXPECT_EQ(af_topk_all_pairs(x.data(), N, d, k, min_score, row0, row1, en.data(), es.data(),
                              nullptr, &err),
            AF_OK);
  int64_t differ = 0, hits = 0, want = 0;
  for (int64_t q = 0; q < row1 - row0; q++) {
    differ += std::memcmp(&en[q * k], &r.nbr[q * k], 8 * k) != 0 ||
              std::memcmp(&es[q * k], &r.scr[q * k], 4 * k) != 0;
    for (int j = 0; j < k; j++) {
      if (en[q * k + j] < 0) continue;
      want++;
      for (int l = 0; l < k; l++) hits += r.nbr[q * k + l] == en[q * k + j];
    }
  }
  if (recall) *recall = want ? (double)hits / want : 1.0;
  return differ;
}

TEST(TopkFused, DriverEqualsTheCpuScorerOnAdversarialCases) {
  struct Case { int64_t N; int d, k, margin; float min_score; int64_t row0, row1; int path; int64_t chunk; };
  const int F = AF_TOPK_PATH_FUSED, T = AF_TOPK_PATH_TILED, A = AF_TOPK_PATH_AUTO;
  for (Case c : {Case{2000, 37, 50, 16, -INFINITY, 0, 2000, F, 0},
                 Case{2000, 37, 50, 16, -INFINITY, 0, 2000, F, 1024},   // 2 chunks
                 Case{2000, 37, 50, 16, -INFINITY, 0, 1000, F, 97},     // 21 tiny chunks
                 Case{2000, 37, 50, 16, -INFINITY, 0, 2000, T, 1000},
                 Case{2000, 37, 1, 4, -INFINITY, 0, 2000, F, 0},        // k = 1
                 Case{2500, 37, 2048, 16, -INFINITY, 100, 200, A, 700}, // k = 2048: tiled, chunks
                 Case{20, 37, 50, 16, -INFINITY, 0, 20, A, 0},          // N < k
                 Case{1500, 384, 10, 8, 0.2f, 500, 1000, F, 700},       // min_score, a shard, d = 384
                 Case{2000, 37, 50, 0, -INFINITY, 0, 500, F, 0}}) {     // margin 0: losses flagged
    SCOPED_TRACE("N=" + std::to_string(c.N) + " d=" + std::to_string(c.d) + " k=" +
                 std::to_string(c.k) + " path=" + std::to_string(c.path) + " chunk=" +
                 std::to_string(c.chunk));
    const auto t0 = std::chrono::steady_clock::now();
    auto x = aft::random_unit(c.N, c.d, 7);
    for (int i = 0; i < 10 && 2 * i + 1 < c.N; i++)  // duplicate vectors
      std::copy(x.begin() + i * c.d, x.begin() + (i + 1) * c.d, x.begin() + (c.N - 1 - i) * c.d);
    Result r = run_device(x, c.N, c.d, c.k, c.margin, c.min_score, c.row0, c.row1,
                          opts(c.path, c.chunk));
    const int kp = (int)std::min<int64_t>(c.k + c.margin, c.N);
    EXPECT_EQ(r.rep.fused, c.path == F || (c.path == A && kp <= AF_FUSED_MAX_KP));
    if (c.chunk) {
      EXPECT_EQ(r.rep.n_chunks, (c.N + c.chunk - 1) / c.chunk);
    }
    double recall;
    const int64_t differ = rows_differ(x, c.N, c.d, c.k, c.min_score, c.row0, c.row1, r, &recall);
    EXPECT_LE(differ, r.rep.uncertified);
    if (c.margin) {
      EXPECT_GE(recall, 0.999);
    }
    std::printf("N=%lld d=%d k=%d m=%d %s chunks=%lld: %lld of %lld rows differ, %lld uncertified, "
                "recall %.5f (%.2f s)\n", (long long)c.N, c.d, c.k, c.margin, r.rep.fused ? "fused" : "tiled",
                (long long)r.rep.n_chunks, (long long)differ, (long long)(c.row1 - c.row0),
                (long long)r.rep.uncertified, recall,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

// Chunking is bookkeeping only: any chunk size gives the same bits (the
// candidate list is the exact top k' under a total order of the same scores).
TEST(TopkFused, ChunkSizeDoesNotChangeTheResult) {
  auto x = aft::random_unit(1200, 37, 11);
  for (int path : {AF_TOPK_PATH_FUSED, AF_TOPK_PATH_TILED}) {
    Result one = run_device(x, 1200, 37, 20, 16, -INFINITY, 0, 1200, opts(path));
    EXPECT_EQ(one.rep.n_chunks, 1);
    // 37 columns: chunks that end inside a 32-column tile (fused path only:
    // the tiled path's CPU GEMM per 37 columns is slow and adds nothing new)
    for (int64_t chunk : {int64_t(path == AF_TOPK_PATH_FUSED ? 37 : 250), int64_t(500)}) {
      Result r = run_device(x, 1200, 37, 20, 16, -INFINITY, 0, 1200,
                            opts(path, chunk, 300));
      EXPECT_EQ(r.nbr, one.nbr) << "chunk " << chunk;
      EXPECT_EQ(std::memcmp(r.scr.data(), one.scr.data(), 4 * r.scr.size()), 0) << chunk;
      EXPECT_EQ(r.rep.uncertified, one.rep.uncertified);
    }
  }
}

TEST(TopkFused, HostAllocIsZeroFilledOnTheCpu) {
  af_device cpu = af_device_cpu(0);
  af_error err{};
  void *p = nullptr;
  ASSERT_EQ(af_host_alloc(&cpu, 1000, &p, &err), AF_OK) << err.msg;
  std::vector<unsigned char> zero(1000, 0);
  EXPECT_EQ(std::memcmp(p, zero.data(), 1000), 0);
  af_host_free(&cpu, p);
}

TEST(TopkFused, RefusesWhatTheKernelCannotHold) {
  af_device cpu = af_device_cpu(0);
  af_error err{};
  auto x = aft::random_unit(300, 400, 1);
  std::vector<int64_t> nbr(300 * 5);
  std::vector<float> scr(nbr.size());
  af_bf16_topk_device_options o = opts(AF_TOPK_PATH_FUSED);
  EXPECT_EQ(af_bf16_topk_device_ex(&cpu, x.data(), 300, 400, 5, 16, -INFINITY, 0, 300, &o,
                                   nbr.data(), scr.data(), nullptr, &err),
            AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("d <= 384"), std::string::npos) << err.msg;
  // d = 400 on the automatic path: the tiled one, still exact on certified rows.
  Result r = run_device(x, 300, 400, 5, 16, -INFINITY, 0, 300, opts(AF_TOPK_PATH_AUTO));
  EXPECT_EQ(r.rep.fused, 0);
  EXPECT_LE(rows_differ(x, 300, 400, 5, -INFINITY, 0, 300, r), r.rep.uncertified);
}

}  // namespace
