// The GPU scorer's algorithm on the CPU (engine/search/score_bf16.h): bf16
// candidates (k + margin per row and column chunk), fp32 rescore with the CPU
// scorer's FMA chain, the certificate of rows where no neighbour can have been
// lost, and the memory plan (chunks, shards). Reference: the CPU scorer
// af_topk_all_pairs (itself checked against brute force in float64 and
// FAISS). Certified rows must equal it exactly (same indices, same score
// bits); every row that differs must be uncertified; recall on real
// embeddings >= 0.999 (the goal for the GPU scorer).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "affinity.h"
#include "nn/model.h"
#include "ops.h"
#include "search/score_bf16.h"
#include "test_util.h"

namespace {

struct Compare {
  int64_t rows_differ = 0, uncertified = 0, hits = 0, wanted = 0;
  bool certified_rows_equal = true;
};

// Exact CPU result against the emulation; `unc` lists nothing: a row that
// differs is checked against the uncertified count only in aggregate, and each
// differing row must be one the certificate could not vouch for.
Compare compare(const std::vector<float> &x, int64_t N, int d, int k, int margin, float min_score,
                int64_t chunk) {
  Compare r;
  af_error err{};
  std::vector<int64_t> en((size_t)N * k), gn((size_t)N * k);
  std::vector<float> es((size_t)N * k), gs((size_t)N * k);
  EXPECT_EQ(af_topk_all_pairs(x.data(), N, d, k, min_score, 0, N, en.data(), es.data(), nullptr,
                              &err),
            AF_OK)
      << err.msg;
  EXPECT_EQ(af_bf16_topk_emulate(x.data(), N, d, k, margin, min_score, 0, N, chunk, gn.data(),
                                 gs.data(), &r.uncertified, &err),
            AF_OK)
      << err.msg;
  for (int64_t q = 0; q < N; q++) {
    bool same = true;
    std::set<int64_t> truth;
    for (int j = 0; j < k; j++) {
      size_t o = (size_t)q * k + j;
      same &= en[o] == gn[o] && std::memcmp(&es[o], &gs[o], 4) == 0;
      if (en[o] >= 0) truth.insert(en[o]), r.wanted++;
    }
    for (int j = 0; j < k; j++) r.hits += gn[(size_t)q * k + j] >= 0 && truth.count(gn[(size_t)q * k + j]);
    r.rows_differ += !same;
  }
  // Every differing row is uncertified, so there are at most as many.
  r.certified_rows_equal = r.rows_differ <= r.uncertified;
  return r;
}

TEST(ScoreBf16, PlanFitsTenMillionRowsOnAn80GBCard) {
  af_bf16_topk_plan p;
  af_error err{};
  ASSERT_EQ(af_bf16_topk_plan_make(10000000, 384, 50, 16, 0, 1, (size_t)80e9, &p, &err), AF_OK)
      << err.msg;
  EXPECT_EQ(p.col_chunk, 10000000);
  EXPECT_EQ(p.n_chunks, 1);
  EXPECT_LE(p.bytes, (size_t)80e9);
  std::printf("10M x 384, k = 50 + 16: %.1f GB on the device\n", p.bytes / 1e9);
  // A smaller card streams the base in column chunks; the plan stays in budget
  // (the shard's query rows and lists, 31 GB here, stay resident).
  ASSERT_EQ(af_bf16_topk_plan_make(10000000, 384, 50, 16, 0, 1, (size_t)40e9, &p, &err), AF_OK)
      << err.msg;
  EXPECT_GT(p.n_chunks, 1);
  EXPECT_LE(p.bytes, (size_t)40e9);
  EXPECT_GE(p.n_chunks * p.col_chunk, 10000000);
  EXPECT_LT((p.n_chunks - 1) * p.col_chunk, 10000000);
  EXPECT_EQ(p.col_chunk % 1024, 0);
  // Too small even in chunks: an error naming the sizes and the way out.
  EXPECT_EQ(af_bf16_topk_plan_make(10000000, 384, 50, 16, 0, 1, (size_t)24e9, &p, &err),
            AF_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(err.msg).find("use --shard"), std::string::npos) << err.msg;
  // ... and sharding makes it fit.
  EXPECT_EQ(af_bf16_topk_plan_make(10000000, 384, 50, 16, 1, 4, (size_t)24e9, &p, &err), AF_OK)
      << err.msg;
}

TEST(ScoreBf16, ShardsCoverEveryRowOnce) {
  for (int n : {1, 2, 7, 64}) {
    int64_t next = 0;
    for (int i = 0; i < n; i++) {
      af_bf16_topk_plan p;
      af_error err{};
      ASSERT_EQ(af_bf16_topk_plan_make(100003, 37, 5, 4, i, n, (size_t)1e9, &p, &err), AF_OK);
      EXPECT_EQ(p.row0, next);
      next = p.row1;
    }
    EXPECT_EQ(next, 100003);
  }
}

TEST(ScoreBf16, ErrorBoundCoversTheMeasuredError) {
  auto x = aft::random_unit(400, 384, 9);
  const double eps = af_bf16_dot_error_bound(384, 1.0 + 1e-6, 1.0 + 1e-6);
  double worst = 0;
  for (int i = 0; i < 400; i++)
    for (int j = 0; j < 400; j++) {
      float a = 0, b = 0;
      for (int c = 0; c < 384; c++) {
        a = std::fma(x[i * 384 + c], x[j * 384 + c], a);
        b = std::fma(af_f32_from_bf16(af_bf16_from_f32(x[i * 384 + c])),
                     af_f32_from_bf16(af_bf16_from_f32(x[j * 384 + c])), b);
      }
      worst = std::max(worst, (double)std::fabs(a - b));
    }
  EXPECT_LE(worst, eps);
  EXPECT_GT(worst, eps / 100);  // the bound is not vacuous
  std::printf("bf16 dot error: worst %.3g, bound %.3g\n", worst, eps);
}

TEST(ScoreBf16, CertifiedRowsEqualTheCpuScorer) {
  auto x = aft::random_unit(600, 37, 1);
  for (int i = 0; i < 20; i++)  // duplicate vectors: ties broken by index
    std::copy(x.begin() + i * 37, x.begin() + (i + 1) * 37, x.begin() + (300 + i) * 37);
  struct Case { int k, margin; float min_score; int64_t chunk; };
  for (Case c : {Case{1, 4, -INFINITY, 600}, Case{50, 16, -INFINITY, 600},
                 Case{50, 16, -INFINITY, 97}, Case{50, 0, -INFINITY, 600},
                 Case{10, 8, 0.3f, 600}, Case{2048, 16, -INFINITY, 600}}) {
    SCOPED_TRACE("k=" + std::to_string(c.k) + " margin=" + std::to_string(c.margin) +
                 " chunk=" + std::to_string(c.chunk));
    Compare r = compare(x, 600, 37, c.k, c.margin, c.min_score, c.chunk);
    EXPECT_TRUE(r.certified_rows_equal) << r.rows_differ << " rows differ, " << r.uncertified
                                        << " uncertified";
    std::printf("d=37 k=%d margin=%d chunk=%lld: %lld rows differ, %lld uncertified, recall %.5f\n",
                c.k, c.margin, (long long)c.chunk, (long long)r.rows_differ,
                (long long)r.uncertified, r.wanted ? (double)r.hits / r.wanted : 1.0);
  }
  // N < k: every row gets all N - 1 others, then -1 / -inf slots; certified.
  auto small = aft::random_unit(20, 37, 2);
  Compare r = compare(small, 20, 37, 50, 16, -INFINITY, 20);
  EXPECT_EQ(r.rows_differ, 0);
  EXPECT_EQ(r.uncertified, 0);
}

Compare compare_device(const af_device &dev, const std::vector<float> &x, int64_t N, int d, int k,
                       int margin, float min_score, int64_t row0, int64_t row1);

// Real embeddings: the first 1,500 Instacart product names through MiniLM
// (fp32, CPU), all pairs, k = 50, margin 16.
TEST(ScoreBf16, RecallOnInstacartEmbeddings) {
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_load((aft::source_dir() + "/weights/all-MiniLM-L6-v2.h5").c_str(), &m, &err),
            AF_OK)
      << err.msg;
  std::ifstream in(aft::shared_dir() + "/instacart/products.csv");
  ASSERT_TRUE(in) << aft::shared_dir() << "/instacart/products.csv";
  std::string line;
  std::getline(in, line);
  std::vector<std::string> names;
  while ((int)names.size() < 1500 && std::getline(in, line)) {
    // product_id,product_name,aisle_id,department_id; quoted names may hold commas
    size_t a = line.find(','), b = line.rfind(','), c = line.rfind(',', b - 1);
    std::string s = line.substr(a + 1, c - a - 1);
    if (s.size() >= 2 && s.front() == '"') s = s.substr(1, s.size() - 2);
    names.push_back(s);
  }
  std::vector<const char *> texts;
  for (auto &s : names) texts.push_back(s.c_str());
  const int64_t N = (int64_t)names.size();
  const int d = m.cfg.hidden_size;
  af_tokenizer *tok = nullptr;
  af_encoder *enc = nullptr;
  af_device dev = af_device_cpu(0);
  ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &err), AF_OK) << err.msg;
  af_embed_options opt;
  af_embed_default_options(&opt);
  std::vector<float> x((size_t)N * d);
  ASSERT_EQ(af_embed_texts(enc, tok, texts.data(), N, &opt, x.data(), &err), AF_OK) << err.msg;
  af_encoder_free(enc);
  af_tokenizer_free(tok);
  af_model_free(&m);
  Compare r = compare(x, N, d, 50, 16, -INFINITY, N);
  double recall = (double)r.hits / r.wanted;
  EXPECT_TRUE(r.certified_rows_equal) << r.rows_differ << " rows differ, " << r.uncertified
                                      << " uncertified";
  EXPECT_GE(recall, 0.999);
  std::printf("Instacart N=%lld d=%d k=50 margin=16: recall %.6f, %lld of %lld rows differ from the "
              "CPU scorer, %lld uncertified\n",
              (long long)N, d, recall, (long long)r.rows_differ, (long long)N,
              (long long)r.uncertified);
  // The GPU scorer's algorithm op for op on the same embeddings: the device
  // driver on the CPU backend, i.e. the fused kernel's twin (k' = 66 <= 96).
  af_device cpu = af_device_cpu(0);
  Compare g = compare_device(cpu, x, N, d, 50, 16, -INFINITY, 0, N);
  EXPECT_TRUE(g.certified_rows_equal) << g.rows_differ << " rows differ, " << g.uncertified;
  EXPECT_GE((double)g.hits / g.wanted, 0.999);
  std::printf("Instacart, fused kernel's twin: recall %.6f, %lld rows differ, %lld uncertified\n",
              (double)g.hits / g.wanted, (long long)g.rows_differ, (long long)g.uncertified);
}


// The device driver (af_bf16_topk_device) through the op interface on the CPU
// backend: the same contract as the emulation. N = 9,000 > 8,192 so the
// column tiles of the GEMM and the merge are exercised.
Compare compare_device(const af_device &dev, const std::vector<float> &x, int64_t N, int d, int k,
                       int margin, float min_score, int64_t row0, int64_t row1) {
  Compare r;
  af_error err{};
  const int64_t R = row1 - row0;
  std::vector<int64_t> en((size_t)R * k), gn((size_t)R * k);
  std::vector<float> es((size_t)R * k), gs((size_t)R * k);
  EXPECT_EQ(af_topk_all_pairs(x.data(), N, d, k, min_score, row0, row1, en.data(), es.data(),
                              nullptr, &err),
            AF_OK)
      << err.msg;
  EXPECT_EQ(af_bf16_topk_device(&dev, x.data(), N, d, k, margin, min_score, row0, row1, gn.data(),
                                gs.data(), &r.uncertified, &err),
            AF_OK)
      << err.msg;
  for (int64_t q = 0; q < R; q++) {
    bool same = true;
    std::set<int64_t> truth;
    for (int j = 0; j < k; j++) {
      size_t o = (size_t)q * k + j;
      same &= en[o] == gn[o] && std::memcmp(&es[o], &gs[o], 4) == 0;
      if (en[o] >= 0) truth.insert(en[o]), r.wanted++;
    }
    for (int j = 0; j < k; j++)
      r.hits += gn[(size_t)q * k + j] >= 0 && truth.count(gn[(size_t)q * k + j]);
    r.rows_differ += !same;
  }
  r.certified_rows_equal = r.rows_differ <= r.uncertified;
  return r;
}

TEST(ScoreBf16, DeviceDriverOnTheCpuBackend) {
  af_device cpu = af_device_cpu(0);
  auto x = aft::random_unit(9000, 16, 4);
  for (int i = 0; i < 10; i++)  // duplicates across column tiles
    std::copy(x.begin() + i * 16, x.begin() + (i + 1) * 16, x.begin() + (8500 + i) * 16);
  struct Case { int k, margin; float min_score; int64_t row0, row1; };
  for (Case c : {Case{1, 4, -INFINITY, 0, 300}, Case{50, 16, -INFINITY, 8400, 9000},
                 Case{10, 8, 0.8f, 0, 200}, Case{50, 0, -INFINITY, 0, 200}}) {
    SCOPED_TRACE("k=" + std::to_string(c.k) + " margin=" + std::to_string(c.margin));
    Compare r = compare_device(cpu, x, 9000, 16, c.k, c.margin, c.min_score, c.row0, c.row1);
    EXPECT_TRUE(r.certified_rows_equal) << r.rows_differ << " differ, " << r.uncertified
                                        << " uncertified";
    std::printf("device(cpu) N=9000 d=16 k=%d margin=%d: %lld of %lld rows differ, %lld "
                "uncertified, recall %.5f\n",
                c.k, c.margin, (long long)r.rows_differ, (long long)(c.row1 - c.row0),
                (long long)r.uncertified, (double)r.hits / r.wanted);
  }
  auto small = aft::random_unit(20, 37, 2);  // N < k
  Compare r = compare_device(cpu, small, 20, 37, 50, 16, -INFINITY, 0, 20);
  EXPECT_EQ(r.rows_differ, 0);
  EXPECT_EQ(r.uncertified, 0);
}

}  // namespace
