// All-pairs top-k against two brute-force references written here:
//  * exact: every score as the float32 fma chain over components 0..d-1 (the
//    computation score.h promises), then a full sort by (score desc, index
//    asc). Our output must match it bit for bit: this checks the selection,
//    tie-breaking, exclusion, min_score and padding, with no tolerance.
//  * double: dot products in float64 and a full sort. This checks that the
//    kernel computes the right products at all. Tolerance per pair:
//    d * 2^-24 * sum_t |x_t y_t| (the standard bound for a length-d float32
//    fma chain), and neighbour sets are compared modulo pairs whose
//    float64 scores lie within twice that bound of the k-th score (a float32
//    kernel may order such near-ties either way).
// Then: identical bits for every thread count, block size, row range and
// shard split, and the CLI's shard + merge equal to the unsharded file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
}

namespace {

using Mat = std::vector<float>;

// (N, d) rows of unit norm; rows listed in dups copy an earlier row (exact ties).
Mat make_data(int N, int d, unsigned seed, int dup_every = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g;
  Mat x((size_t)N * d);
  for (int i = 0; i < N; i++) {
    double n2 = 0;
    std::vector<double> v(d);
    for (int t = 0; t < d; t++) n2 += (v[t] = g(rng)) * v[t];
    for (int t = 0; t < d; t++) x[(size_t)i * d + t] = (float)(v[t] / std::sqrt(n2));
    if (dup_every && i > 0 && i % dup_every == 0)
      std::copy(x.begin() + (size_t)(i / 2) * d, x.begin() + (size_t)(i / 2 + 1) * d,
                x.begin() + (size_t)i * d);
  }
  return x;
}

struct Result {
  std::vector<int64_t> nbr;  // (M, k)
  std::vector<float> scr;    // (M, k)
};

// Exact reference. exclude (M) or empty; skip (N) or empty.
Result ref_exact(const Mat &base, int N, const Mat &q, int M, int d, int k, float min_score,
                 const std::vector<int64_t> &exclude, const std::vector<unsigned char> &skip) {
  Result r;
  r.nbr.assign((size_t)M * k, -1);
  r.scr.assign((size_t)M * k, -INFINITY);
  std::vector<std::pair<float, int64_t>> all;
  for (int i = 0; i < M; i++) {
    all.clear();
    for (int j = 0; j < N; j++) {
      if ((!exclude.empty() && exclude[i] == j) || (!skip.empty() && skip[j])) continue;
      float s = 0.0f;
      for (int t = 0; t < d; t++) s = std::fmaf(q[(size_t)i * d + t], base[(size_t)j * d + t], s);
      if (s >= min_score) all.push_back({s, j});
    }
    std::sort(all.begin(), all.end(), [](auto &a, auto &b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int c = 0; c < k && c < (int)all.size(); c++) {
      r.nbr[(size_t)i * k + c] = all[c].second;
      r.scr[(size_t)i * k + c] = all[c].first;
    }
  }
  return r;
}

void expect_exact(const Result &got, const Result &want) {
  ASSERT_EQ(got.nbr.size(), want.nbr.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.nbr.size(); i++)
    if (got.nbr[i] != want.nbr[i] ||
        std::memcmp(&got.scr[i], &want.scr[i], sizeof(float)) != 0) {
      if (++bad <= 5)
        ADD_FAILURE() << "entry " << i << ": got (" << got.nbr[i] << ", " << got.scr[i]
                      << ") want (" << want.nbr[i] << ", " << want.scr[i] << ")";
    }
  EXPECT_EQ(bad, 0u);
}

// float64 check of all-pairs output rows [row0, row0 + M).
void expect_close_to_double(const Mat &x, int N, int d, int k, int64_t row0, const Result &got) {
  int M = (int)(got.nbr.size() / (k ? k : 1));
  std::vector<double> s(N), bound(N);
  for (int i = 0; i < M; i++) {
    int64_t qi = row0 + i;
    double max_bound = 0;
    for (int j = 0; j < N; j++) {
      double acc = 0, abs_acc = 0;
      for (int t = 0; t < d; t++) {
        double p = (double)x[qi * d + t] * x[(size_t)j * d + t];
        acc += p;
        abs_acc += std::fabs(p);
      }
      s[j] = acc;
      bound[j] = d * std::ldexp(1.0, -24) * abs_acc + 1e-30;
      max_bound = std::max(max_bound, bound[j]);
    }
    std::vector<int> order;
    for (int j = 0; j < N; j++)
      if (j != qi) order.push_back(j);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    int kk = std::min<int>(k, (int)order.size());
    double kth = kk ? s[order[kk - 1]] : INFINITY;
    std::vector<char> in(N, 0);
    for (int c = 0; c < kk; c++) {
      int64_t j = got.nbr[(size_t)i * k + c];
      ASSERT_GE(j, 0) << "row " << qi << " slot " << c << " empty";
      ASSERT_NE(j, qi) << "row " << qi << " lists itself";
      in[j] = 1;
      EXPECT_LE(std::fabs(got.scr[(size_t)i * k + c] - s[j]), bound[j]) << "row " << qi << " nbr " << j;
      EXPECT_GE(s[j], kth - 2 * max_bound) << "row " << qi << ": " << j << " is not a top-" << k;
      if (c > 0) {
        EXPECT_GE(got.scr[(size_t)i * k + c - 1], got.scr[(size_t)i * k + c]);
      }
    }
    for (int c = kk; c < k; c++) EXPECT_EQ(got.nbr[(size_t)i * k + c], -1);
    for (int c = 0; c < kk; c++)
      if (s[order[c]] > kth + 2 * max_bound) {
        EXPECT_TRUE(in[order[c]]) << "row " << qi << " misses " << order[c];
      }
  }
}

Result all_pairs(const Mat &x, int N, int d, int k, float min_score, int64_t row0, int64_t row1,
                 const af_score_options *opt) {
  Result r;
  r.nbr.assign((size_t)(row1 - row0) * k, 7);
  r.scr.assign((size_t)(row1 - row0) * k, 7.0f);
  af_error err = {};
  EXPECT_EQ(AF_OK, af_topk_all_pairs(x.data(), N, d, k, min_score, row0, row1, r.nbr.data(),
                                     r.scr.data(), opt, &err))
      << err.msg;
  return r;
}

std::vector<int64_t> self_ids(int64_t row0, int64_t M) {
  std::vector<int64_t> e(M);
  std::iota(e.begin(), e.end(), row0);
  return e;
}

struct Case {
  int N, d, k;
  float min_score;
  int dup_every;
};

TEST(Score, MatchesBruteForce) {
  const Case cases[] = {
      {1, 8, 5, -INFINITY, 0},    // nobody else: all slots empty
      {2, 3, 1, -INFINITY, 0},
      {37, 16, 5, -INFINITY, 3},  // duplicates: exact ties go to the lower index
      {200, 384, 10, -INFINITY, 0},
      {300, 33, 2048, -INFINITY, 0},  // k > N-1: all others, then padding
      {257, 70, 50, -INFINITY, 4},    // N not a multiple of any block size
      {700, 384, 50, -INFINITY, 5},
      {1000, 20, 7, 0.3f, 0},         // min_score leaves rows partly empty
      {150, 12, 2048, 0.0f, 2},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " d=" + std::to_string(c.d) +
                 " k=" + std::to_string(c.k));
    Mat x = make_data(c.N, c.d, 1000 + c.N, c.dup_every);
    Result got = all_pairs(x, c.N, c.d, c.k, c.min_score, 0, c.N, nullptr);
    expect_exact(got, ref_exact(x, c.N, x, c.N, c.d, c.k, c.min_score, self_ids(0, c.N), {}));
    if (!std::isfinite(c.min_score)) expect_close_to_double(x, c.N, c.d, c.k, 0, got);
  }
}

TEST(Score, TiesGoToTheLowerIndex) {
  // Rows 0..5 are identical: row 3's neighbours are 0, 1, 2, 4, 5 in that order.
  int N = 40, d = 9;
  Mat x = make_data(N, d, 7);
  for (int i = 1; i < 6; i++) std::copy(x.begin(), x.begin() + d, x.begin() + (size_t)i * d);
  Result got = all_pairs(x, N, d, 5, -INFINITY, 3, 4, nullptr);
  EXPECT_EQ(got.nbr, (std::vector<int64_t>{0, 1, 2, 4, 5}));
}

TEST(Score, SameBitsForAnyThreadsBlocksAndRowRanges) {
  int N = 523, d = 40, k = 20;
  Mat x = make_data(N, d, 99, 6);
  Result whole = all_pairs(x, N, d, k, -INFINITY, 0, N, nullptr);
  expect_exact(whole, ref_exact(x, N, x, N, d, k, -INFINITY, self_ids(0, N), {}));
  for (int threads : {1, 2, 3})
    for (int64_t br : {1, 5, 256, 1000})
      for (int64_t bc : {1, 33, 100, 4096}) {
        SCOPED_TRACE("threads " + std::to_string(threads) + " rows " + std::to_string(br) +
                     " cols " + std::to_string(bc));
        af_score_options opt = {threads, br, bc, 0};
        expect_exact(all_pairs(x, N, d, k, -INFINITY, 0, N, &opt), whole);
      }
  for (int shards = 1; shards <= 4; shards++) {
    Result cat;
    for (int s = 0; s < shards; s++) {
      int64_t r0, r1;
      af_shard_rows(N, s, shards, &r0, &r1);
      af_score_options opt = {s + 1, 64, 0, 0};
      Result part = all_pairs(x, N, d, k, -INFINITY, r0, r1, &opt);
      cat.nbr.insert(cat.nbr.end(), part.nbr.begin(), part.nbr.end());
      cat.scr.insert(cat.scr.end(), part.scr.begin(), part.scr.end());
    }
    SCOPED_TRACE("shards " + std::to_string(shards));
    expect_exact(cat, whole);
  }
}

TEST(Score, QueriesAgainstABaseWithSkips) {
  int N = 300, M = 61, d = 24, k = 12;
  Mat base = make_data(N, d, 5, 7), q = make_data(M, d, 6);
  std::copy(base.begin() + 10 * d, base.begin() + 11 * d, q.begin());  // query 0 = base row 10
  std::vector<unsigned char> skip(N, 0);
  for (int j = 0; j < N; j += 5) skip[j] = 1;  // cold-start: these rows are never returned
  std::vector<int64_t> exclude(M, -1);
  exclude[0] = 11;
  exclude[3] = 250;
  af_score_index *ix = nullptr;
  af_error err = {};
  ASSERT_EQ(AF_OK, af_score_index_build(base.data(), N, d, &ix, &err)) << err.msg;
  Result got;
  got.nbr.resize((size_t)M * k);
  got.scr.resize((size_t)M * k);
  ASSERT_EQ(AF_OK, af_score_index_search(ix, q.data(), M, exclude.data(), skip.data(), k,
                                         -INFINITY, got.nbr.data(), got.scr.data(), nullptr,
                                         &err))
      << err.msg;
  expect_exact(got, ref_exact(base, N, q, M, d, k, -INFINITY, exclude, skip));
  EXPECT_EQ(AF_ERR_ARG, af_score_index_search(ix, q.data(), M, nullptr, nullptr, 2049, 0,
                                              got.nbr.data(), got.scr.data(), nullptr, &err));
  af_score_index_free(ix);
}

// ---- the CLI and the neighbours file ----------------------------------------

std::string write_embeddings(const std::string &path, const Mat &x, int N, int d) {
  std::vector<std::string> ids;
  std::vector<char *> p;
  for (int i = 0; i < N; i++) ids.push_back("item-" + std::to_string(i));
  for (auto &s : ids) p.push_back(const_cast<char *>(s.c_str()));
  af_embeddings e = {N, d, p.data(), const_cast<float *>(x.data()),
                     const_cast<char *>("test-model"), const_cast<char *>("mean"), 1};
  af_error err = {};
  EXPECT_EQ(AF_OK, af_embeddings_write(path.c_str(), &e, &err)) << err.msg;
  return path;
}

af_neighbors read_nbr(const std::string &path) {
  af_neighbors nb;
  af_error err = {};
  EXPECT_EQ(AF_OK, af_neighbors_read(path.c_str(), &nb, &err)) << err.msg;
  return nb;
}

void expect_same_rows(const af_neighbors &a, const af_neighbors &b) {
  ASSERT_EQ(a.row_count, b.row_count);
  ASSERT_EQ(a.k, b.k);
  size_t n = (size_t)a.row_count * a.k;
  EXPECT_EQ(0, std::memcmp(a.nbr, b.nbr, n * sizeof(int64_t)));
  EXPECT_EQ(0, std::memcmp(a.scr, b.scr, n * sizeof(float)));
}

TEST(ScoreCli, ShardsMergeToTheUnshardedFile) {
  std::string dir = aft::temp_dir("score-cli");
  int N = 403, d = 24, k = 9;
  Mat x = make_data(N, d, 31, 8);
  std::string emb = write_embeddings(dir + "/emb.h5", x, N, d);
  std::string base = aft::cli() + " score --embeddings " + emb + " --k " + std::to_string(k);
  std::string serr;
  ASSERT_EQ(0, aft::run(base + " --out " + dir + "/all.h5", nullptr, &serr)) << serr;
  af_neighbors all = read_nbr(dir + "/all.h5");
  EXPECT_EQ(all.n_total, N);
  EXPECT_EQ(all.row_count, N);
  EXPECT_STREQ(all.ids[17], "item-17");
  EXPECT_STREQ(all.model, "test-model");
  Result want = ref_exact(x, N, x, N, d, k, -INFINITY, self_ids(0, N), {});
  Result got{std::vector<int64_t>(all.nbr, all.nbr + (size_t)N * k),
             std::vector<float>(all.scr, all.scr + (size_t)N * k)};
  expect_exact(got, want);

  ASSERT_EQ(0, aft::run(base + " --threads 1 --block-rows 7 --block-cols 40 --out " + dir +
                            "/t1.h5",
                        nullptr, &serr))
      << serr;
  af_neighbors t1 = read_nbr(dir + "/t1.h5");
  expect_same_rows(all, t1);
  af_neighbors_free(&t1);

  for (int n = 1; n <= 4; n++) {
    SCOPED_TRACE("shards " + std::to_string(n));
    std::string files;
    for (int i = n - 1; i >= 0; i--) {  // merge must not depend on argument order
      std::string f = dir + "/s" + std::to_string(i) + "of" + std::to_string(n) + ".h5";
      ASSERT_EQ(0, aft::run(base + " --threads 2 --shard " + std::to_string(i) + "/" +
                                std::to_string(n) + " --out " + f,
                            nullptr, &serr))
          << serr;
      files += " " + f;
    }
    std::string merged = dir + "/merged" + std::to_string(n) + ".h5";
    ASSERT_EQ(0, aft::run(aft::cli() + " score --merge --out " + merged + files, nullptr, &serr))
        << serr;
    af_neighbors m = read_nbr(merged);
    expect_same_rows(all, m);
    EXPECT_EQ(m.shard_n, 1);
    EXPECT_EQ(m.row0, 0);
    af_neighbors_free(&m);
  }
  af_neighbors_free(&all);
}

TEST(ScoreCli, MinScoreAndKClamp) {
  std::string dir = aft::temp_dir("score-cli-min");
  int N = 50, d = 6;
  Mat x = make_data(N, d, 41);
  std::string emb = write_embeddings(dir + "/emb.h5", x, N, d);
  std::string serr;
  ASSERT_EQ(0, aft::run(aft::cli() + " score --embeddings " + emb +
                            " --k 2048 --min-score 0.25 --out " + dir + "/n.h5",
                        nullptr, &serr))
      << serr;
  af_neighbors nb = read_nbr(dir + "/n.h5");
  EXPECT_EQ(nb.k, N - 1);  // k >= N-1: all others
  EXPECT_EQ(nb.k_requested, 2048);
  EXPECT_EQ(nb.min_score, 0.25);
  Result want = ref_exact(x, N, x, N, d, N - 1, 0.25f, self_ids(0, N), {});
  Result got{std::vector<int64_t>(nb.nbr, nb.nbr + (size_t)N * (N - 1)),
             std::vector<float>(nb.scr, nb.scr + (size_t)N * (N - 1))};
  expect_exact(got, want);
  int empty = 0;
  for (auto j : got.nbr) empty += j == -1;
  EXPECT_GT(empty, 0);  // the threshold did drop entries
  af_neighbors_free(&nb);
}

TEST(ScoreCli, BadArgumentsAndBadMergesFailCleanly) {
  std::string dir = aft::temp_dir("score-cli-bad");
  int N = 30, d = 4;
  Mat x = make_data(N, d, 3);
  std::string emb = write_embeddings(dir + "/emb.h5", x, N, d);
  std::string base = aft::cli() + " score --embeddings " + emb;
  std::string serr;
  EXPECT_EQ(2, aft::run(base + " --k 0 --out " + dir + "/a.h5", nullptr, &serr));
  EXPECT_NE(serr.find("--k"), std::string::npos) << serr;
  EXPECT_EQ(2, aft::run(base + " --k 3 --shard 4/4 --out " + dir + "/a.h5", nullptr, &serr));
  EXPECT_NE(serr.find("--shard"), std::string::npos) << serr;
  EXPECT_EQ(2, aft::run(base + " --k 3 --out " + dir + "/a.h5 --bogus", nullptr, &serr));
  ASSERT_EQ(0, aft::run(base + " --k 3 --shard 0/3 --out " + dir + "/s0.h5", nullptr, &serr));
  ASSERT_EQ(0, aft::run(base + " --k 3 --shard 2/3 --out " + dir + "/s2.h5", nullptr, &serr));
  ASSERT_EQ(0, aft::run(base + " --k 4 --shard 1/3 --out " + dir + "/k4.h5", nullptr, &serr));
  std::string merge = aft::cli() + " score --merge --out " + dir + "/m.h5 ";
  EXPECT_NE(0, aft::run(merge + dir + "/s0.h5 " + dir + "/s2.h5", nullptr, &serr));
  EXPECT_NE(serr.find("missing"), std::string::npos) << serr;
  EXPECT_NE(0, aft::run(merge + dir + "/s0.h5 " + dir + "/s0.h5", nullptr, &serr));
  EXPECT_NE(serr.find("overlapping"), std::string::npos) << serr;
  EXPECT_NE(0, aft::run(merge + dir + "/s0.h5 " + dir + "/k4.h5 " + dir + "/s2.h5", nullptr,
                        &serr));
  EXPECT_NE(serr.find("attribute k differs"), std::string::npos) << serr;
  EXPECT_NE(0, aft::run(merge + emb, nullptr, &serr));  // an embeddings file is not a shard
  EXPECT_NE(serr.find(emb), std::string::npos) << serr;
  for (auto &name : aft::list_dir(dir)) {
    EXPECT_NE(name, "a.h5");
    EXPECT_EQ(name.find("m.h5"), std::string::npos) << name;
  }
}

}  // namespace

// Symmetric all-pairs (each pair computed once, both rows fed) against the
// asymmetric scorer, bit for bit, on real embeddings: 1,500 Instacart product
// names through the tiny test BERT (real text: many near-duplicate vectors and
// exact duplicates, so ties and k-th-place near-ties are exercised), any
// threads and block sizes, min_score, and shards of the asymmetric path
// concatenated (what --merge does) against one symmetric run.
// bf16 candidates rescored in fp32 (af_score_all_pairs_bf16) against the fp32
// symmetric scorer: every row equal bit for bit except rows the bf16 error
// bound flags as unsure (a true neighbour may be outside the candidates).
// No more rows may differ than are flagged (the flag is the rigorous worst-case
// bound, |bf16 - fp32| <= ~2^-7 |x||y|, so on these tightly clustered tiny-BERT
// vectors it flags nearly every row: printed). The quality claim: with a
// margin of k candidates, at most 1% of rows differ from fp32 (measured here:
// 3 of 1,500 at k = 10, none at k = 50; with no margin most rows differ, which
// shows the rescoring step is what makes the output exact).
void real_embeddings_bf16_check(const Mat &x, int N, int d) {
  af_device probe = af_device_cpu(0);
  af_error err = {};
  if (af_device_set_precision(&probe, "bf16", &err) != AF_OK) {
    std::printf("[ skip ] bf16 scoring: %s\n", err.msg);
    return;
  }
  af_score_index *ix = nullptr;
  ASSERT_EQ(AF_OK, af_score_index_build(x.data(), N, d, &ix, &err)) << err.msg;
  for (int k : {10, 50}) {
    for (int margin : {0, k}) {
      for (float min_score : {-INFINITY, 0.95f}) {
        Result f32, b16;
        f32.nbr.resize((size_t)N * k);
        f32.scr.resize((size_t)N * k);
        b16 = f32;
        ASSERT_EQ(AF_OK, af_score_all_pairs_symmetric(ix, x.data(), k, min_score, f32.nbr.data(),
                                                      f32.scr.data(), nullptr, &err));
        int64_t unsure = -1;
        af_score_options opt = {2, 0, 0, 0};
        ASSERT_EQ(AF_OK, af_score_all_pairs_bf16(ix, x.data(), k, margin, min_score, b16.nbr.data(),
                                                 b16.scr.data(), &opt, &unsure, &err))
            << err.msg;
        int64_t differ = 0;  // the flags are a count, so: differing rows <= flagged rows
        for (int i = 0; i < N; i++) {
          bool same = std::memcmp(&f32.nbr[(size_t)i * k], &b16.nbr[(size_t)i * k], k * 8) == 0 &&
                      std::memcmp(&f32.scr[(size_t)i * k], &b16.scr[(size_t)i * k], k * 4) == 0;
          differ += !same;
        }
        std::printf("  bf16 k=%d margin=%d min_score=%g: %lld of %d rows differ from fp32, %lld flagged unsure\n",
                    k, margin, min_score, (long long)differ, N, (long long)unsure);
        EXPECT_LE(differ, unsure) << "k " << k << " margin " << margin;
        if (margin == k) {
          EXPECT_LE(differ, N / 100) << "k " << k;
        }
      }
    }
  }
  af_score_index_free(ix);
}

TEST(Score, SymmetricEqualsAsymmetricOnRealEmbeddings) {
  std::vector<std::string> names;
  {
    FILE *f = std::fopen((aft::source_dir() + "/datasets/instacart-sample/products.csv").c_str(), "r");
    ASSERT_NE(f, nullptr);
    char line[4096];
    ASSERT_NE(std::fgets(line, sizeof line, f), nullptr);  // header
    while (names.size() < 1500 && std::fgets(line, sizeof line, f)) {
      std::string s(line);
      size_t a = s.find(','), b = s.find(',', a + 1);
      if (a == std::string::npos || b == std::string::npos || s.find('"') != std::string::npos) continue;
      names.push_back(s.substr(a + 1, b - a - 1));
    }
    std::fclose(f);
  }
  const int N = (int)names.size();
  ASSERT_EQ(N, 1500);
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  m.cfg.normalize = 1;
  af_device dev = af_device_cpu(0);
  af_encoder *enc = nullptr;
  af_tokenizer *tok = nullptr;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &err), AF_OK) << err.msg;
  std::vector<const char *> texts;
  for (auto &s : names) texts.push_back(s.c_str());
  const int d = m.cfg.hidden_size;
  Mat x((size_t)N * d);
  ASSERT_EQ(af_embed_texts(enc, tok, texts.data(), N, nullptr, x.data(), &err), AF_OK) << err.msg;
  af_tokenizer_free(tok);
  af_encoder_free(enc);
  af_model_free(&m);
  for (int i = 0; i < 40; i++)  // plus exact duplicates of real rows
    std::copy(x.begin() + (size_t)(7 * i) * d, x.begin() + (size_t)(7 * i + 1) * d, x.begin() + (size_t)(N - 1 - i) * d);

  real_embeddings_bf16_check(x, N, d);
  for (float min_score : {-INFINITY, 0.9f}) {
    for (int k : {1, 50, 300}) {
      SCOPED_TRACE("k " + std::to_string(k) + " min_score " + std::to_string(min_score));
      af_score_options asym = {2, 0, 0, 1};
      Result ref = all_pairs(x, N, d, k, min_score, 0, N, &asym);
      for (int threads : {1, 3})
        for (int64_t br : {1, 256, 2000}) {
          SCOPED_TRACE("threads " + std::to_string(threads) + " block " + std::to_string(br));
          af_score_options opt = {threads, br, 0, 0};
          expect_exact(all_pairs(x, N, d, k, min_score, 0, N, &opt), ref);
        }
      Result cat;
      for (int s = 0; s < 3; s++) {
        int64_t r0, r1;
        af_shard_rows(N, s, 3, &r0, &r1);
        Result part = all_pairs(x, N, d, k, min_score, r0, r1, nullptr);
        cat.nbr.insert(cat.nbr.end(), part.nbr.begin(), part.nbr.end());
        cat.scr.insert(cat.scr.end(), part.scr.begin(), part.scr.end());
      }
      expect_exact(cat, all_pairs(x, N, d, k, min_score, 0, N, nullptr));
    }
  }
}
