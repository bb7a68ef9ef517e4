// Evaluation harness: ranks and Recall/NDCG/MRR against hand-computed values
// and a method whose ranking is known by construction; the split (exact
// sizes, reproducible by seed, cold products absent from training); every
// method against a brute force written here (full sorts, itemsets enumerated
// by walking every basket); and the `affinity eval` CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
}

namespace {

af_baskets make_baskets(const std::vector<std::vector<int32_t>> &bs, int N) {
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  for (auto &b : bs) {
    items.insert(items.end(), b.begin(), b.end());
    off.push_back((int64_t)items.size());
  }
  af_baskets out{};
  af_error err{};
  EXPECT_EQ(af_baskets_from_arrays((int64_t)bs.size(), N, off.data(), items.data(), &out, &err), AF_OK);
  return out;
}

// Baskets of 2..6 distinct items drawn around a random centre (so pairs repeat).
std::vector<std::vector<int32_t>> random_baskets(int seed, int N, int n) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> bs;
  for (int k = 0; k < n; k++) {
    std::set<int32_t> s;
    int c = rng() % N, len = 2 + rng() % 5;
    while ((int)s.size() < len) s.insert((c + (int)(rng() % 8)) % N);
    bs.emplace_back(s.begin(), s.end());
  }
  return bs;
}

TEST(EvalMetrics, HandComputed) {
  // N = 5, hidden 3, query {1}
  float s[5] = {5, 4, 1, 2, 1};
  int32_t q[1] = {1};
  EXPECT_EQ(af_eval_rank(s, nullptr, 5, 3, q, 1), 2);  // 0, then 3 (1 is excluded)
  float t[5] = {1, 1, 1, 1, 1};                        // all tied: by index
  EXPECT_EQ(af_eval_rank(t, nullptr, 5, 3, q, 1), 3);  // 0, 2, 3
  float pop[5] = {0, 0, 0, 9, 0};                      // tie broken by popularity first
  EXPECT_EQ(af_eval_rank(t, pop, 5, 3, q, 1), 1);
  af_eval_metrics m{};
  af_eval_metrics_add(&m, 3);   // in both cut-offs
  af_eval_metrics_add(&m, 15);  // only @20
  af_eval_metrics_add(&m, 40);  // in neither
  af_eval_metrics_finish(&m);
  EXPECT_EQ(m.n, 3);
  EXPECT_DOUBLE_EQ(m.recall[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.recall[1], 2.0 / 3);
  EXPECT_NEAR(m.ndcg[0], (1 / 2.0) / 3, 1e-15);                     // 1/log2(4) = 1/2
  EXPECT_NEAR(m.ndcg[1], (1 / 2.0 + 1 / 4.0) / 3, 1e-15);           // 1/log2(16) = 1/4
  EXPECT_NEAR(m.mrr, (1 / 3.0 + 1 / 15.0 + 1 / 40.0) / 3, 1e-15);
}

TEST(EvalMetrics, RankMatchesFullSort) {
  std::mt19937 rng(5);
  for (int t = 0; t < 300; t++) {
    const int N = 40;
    std::vector<float> s(N), tie(N);
    for (int b = 0; b < N; b++) s[b] = (float)(rng() % 6), tie[b] = (float)(rng() % 3);
    std::set<int32_t> qs;
    int nq = rng() % 5;
    while ((int)qs.size() < nq) qs.insert(rng() % N);
    int32_t h;
    do h = rng() % N; while (qs.count(h));
    std::vector<int32_t> q(qs.begin(), qs.end());
    for (int use_tie = 0; use_tie < 2; use_tie++) {
      std::vector<int> order;
      for (int b = 0; b < N; b++)
        if (!qs.count(b)) order.push_back(b);
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        if (s[a] != s[b]) return s[a] > s[b];
        if (use_tie && tie[a] != tie[b]) return tie[a] > tie[b];
        return a < b;
      });
      int64_t want = std::find(order.begin(), order.end(), h) - order.begin() + 1;
      EXPECT_EQ(af_eval_rank(s.data(), use_tie ? tie.data() : nullptr, N, h, q.data(), nq), want);
    }
  }
}

// A method that ranks every product by its index: the hidden item's rank is
// 1 + #{b < h, b not in the query} by construction.
void by_index(void *, const int32_t *, int, float *scores) {
  for (int b = 0; b < 300; b++) scores[b] = -(float)b;
}

struct SplitFixture {
  std::vector<std::vector<int32_t>> bs;
  af_baskets all{};
  af_eval_split sp{};
  SplitFixture(int seed, uint64_t split_seed, int N = 300, int n = 1000) {
    bs = random_baskets(seed, N, n);
    all = make_baskets(bs, N);
    af_eval_split_options o;
    af_eval_split_default_options(&o);
    o.seed = split_seed;
    af_error err{};
    EXPECT_EQ(af_eval_split_random(&all, &o, &sp, &err), AF_OK) << err.msg;
  }
  ~SplitFixture() {
    af_eval_split_free(&sp);
    af_baskets_free(&all);
  }
};

TEST(EvalRun, FixedRankingGivesExactMetrics) {
  SplitFixture f(1, 42);
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_CUSTOM, "by-index");
  m.fn = by_index;
  m.popularity_ties = 0;
  af_eval_result r{};
  af_error err{};
  ASSERT_EQ(af_eval_run(&m, &f.sp, 2, &r, &err), AF_OK) << err.msg;
  af_eval_metrics want[2] = {};
  for (int64_t q = 0; q < f.sp.n_queries; q++) {
    int32_t h = f.sp.hidden[q];
    int64_t rank = 1 + h;
    for (int64_t j = f.sp.q_off[q]; j < f.sp.q_off[q + 1]; j++) rank -= f.sp.q_items[j] < h;
    auto &w = want[f.sp.group[q]];
    w.n++;
    for (int k = 0; k < 2; k++) {
      int K = k ? 20 : 10;
      w.recall[k] += rank <= K;
      w.ndcg[k] += rank <= K ? 1 / std::log2(rank + 1.0) : 0;
    }
    w.mrr += 1.0 / rank;
  }
  for (int g = 0; g < 2; g++) {
    ASSERT_EQ(r.group[g].n, want[g].n);
    ASSERT_GT(want[g].n, 0);
    for (int k = 0; k < 2; k++) {
      EXPECT_NEAR(r.group[g].recall[k], want[g].recall[k] / want[g].n, 1e-12);
      EXPECT_NEAR(r.group[g].ndcg[k], want[g].ndcg[k] / want[g].n, 1e-12);
    }
    EXPECT_NEAR(r.group[g].mrr, want[g].mrr / want[g].n, 1e-12);
  }
}

TEST(EvalSplit, SizesColdAndReproducibility) {
  SplitFixture a(2, 42), b(2, 42), c(2, 43);
  const af_eval_split &s = a.sp;
  EXPECT_EQ(s.n_test_baskets, 200);  // round(0.2 * 1000)
  EXPECT_EQ(s.n_queries, 200);       // every basket has >= 2 items
  std::set<int32_t> sold;
  for (auto &bk : a.bs) sold.insert(bk.begin(), bk.end());
  EXPECT_EQ(s.n_cold_products, std::llround(0.1 * sold.size()));
  int64_t ncold = 0;
  for (int i = 0; i < s.N; i++) ncold += s.cold[i];
  EXPECT_EQ(ncold, s.n_cold_products);
  // training = the other baskets minus the cold products, exactly
  std::set<int64_t> test(s.q_basket, s.q_basket + s.n_queries);
  std::multiset<std::vector<int32_t>> want_train, got_train;
  std::vector<int64_t> cnt(s.N, 0);
  for (size_t k = 0; k < a.bs.size(); k++) {
    if (test.count(k)) continue;
    std::vector<int32_t> v;
    for (int32_t x : a.bs[k])
      if (!s.cold[x]) v.push_back(x);
    if (!v.empty()) want_train.insert(v);
  }
  for (int64_t k = 0; k < s.train.n_baskets; k++) {
    std::vector<int32_t> v(s.train.items + s.train.offsets[k], s.train.items + s.train.offsets[k + 1]);
    for (int32_t x : v) {
      EXPECT_FALSE(s.cold[x]) << "cold product " << x << " in a training basket";
      cnt[x]++;
    }
    got_train.insert(v);
  }
  EXPECT_EQ(got_train, want_train);
  // queries: basket = query + hidden; group by training count
  int64_t seeded = 0;
  for (int64_t q = 0; q < s.n_queries; q++) {
    std::vector<int32_t> v(s.q_items + s.q_off[q], s.q_items + s.q_off[q + 1]);
    v.push_back(s.hidden[q]);
    std::sort(v.begin(), v.end());
    EXPECT_EQ(v, a.bs[s.q_basket[q]]);
    EXPECT_EQ(s.group[q], cnt[s.hidden[q]] > 0 ? AF_EVAL_WARM : AF_EVAL_COLD);
    seeded += s.group[q] == AF_EVAL_COLD && s.cold[s.hidden[q]];
  }
  EXPECT_EQ(seeded, s.n_cold_seeded);
  EXPECT_GT(s.n_cold_seeded, 0);
  // same seed: identical; another seed: a different split
  auto same = [](const af_eval_split &x, const af_eval_split &y) {
    return x.n_queries == y.n_queries &&
           std::equal(x.hidden, x.hidden + x.n_queries, y.hidden) &&
           std::equal(x.q_basket, x.q_basket + x.n_queries, y.q_basket) &&
           std::equal(x.cold, x.cold + x.N, y.cold) &&
           x.train.offsets[x.train.n_baskets] == y.train.offsets[y.train.n_baskets];
  };
  EXPECT_TRUE(same(a.sp, b.sp));
  EXPECT_FALSE(same(a.sp, c.sp));
  EXPECT_EQ(c.sp.n_test_baskets, 200);
}

TEST(EvalSplit, GivenTestBaskets) {
  auto tr = random_baskets(3, 50, 200);
  std::vector<std::vector<int32_t>> te = {{1, 2}, {3, 49}, {7}, {10, 11, 12}};
  for (auto &b : tr) b.erase(std::remove(b.begin(), b.end(), 49), b.end());  // 49 never trained
  tr.erase(std::remove_if(tr.begin(), tr.end(), [](auto &b) { return b.empty(); }), tr.end());
  af_baskets a = make_baskets(tr, 50), t = make_baskets(te, 50);
  af_eval_split s{};
  af_error err{};
  ASSERT_EQ(af_eval_split_given(&a, &t, 9, &s, &err), AF_OK) << err.msg;
  EXPECT_EQ(s.n_test_baskets, 4);
  EXPECT_EQ(s.n_test_too_small, 1);
  EXPECT_EQ(s.n_queries, 3);
  EXPECT_EQ(s.train.n_baskets, (int64_t)tr.size());
  for (int64_t q = 0; q < s.n_queries; q++)
    EXPECT_EQ(s.group[q], s.hidden[q] == 49 ? AF_EVAL_COLD : AF_EVAL_WARM);
  af_eval_split_free(&s);
  af_baskets_free(&a);
  af_baskets_free(&t);
}

// ---- methods against brute force -----------------------------------------------

struct Brute {
  const af_eval_split &s;
  std::vector<double> pop;
  explicit Brute(const af_eval_split &sp) : s(sp), pop(sp.N, 0) {
    for (int64_t i = 0; i < s.train.offsets[s.train.n_baskets]; i++) pop[s.train.items[i]]++;
  }
  std::vector<std::vector<int32_t>> train() const {
    std::vector<std::vector<int32_t>> v;
    for (int64_t k = 0; k < s.train.n_baskets; k++)
      v.emplace_back(s.train.items + s.train.offsets[k], s.train.items + s.train.offsets[k + 1]);
    return v;
  }
  // metrics of a float64 scoring function, ties by popularity then index
  template <class F>
  void metrics(F score, af_eval_metrics out[2]) const {
    for (int64_t q = 0; q < s.n_queries; q++) {
      std::vector<int32_t> qi(s.q_items + s.q_off[q], s.q_items + s.q_off[q + 1]);
      std::vector<double> sc = score(qi);
      std::set<int32_t> qs(qi.begin(), qi.end());
      std::vector<int> order;
      for (int b = 0; b < s.N; b++)
        if (!qs.count(b)) order.push_back(b);
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        if (sc[a] != sc[b]) return sc[a] > sc[b];
        if (pop[a] != pop[b]) return pop[a] > pop[b];
        return a < b;
      });
      int64_t rank = std::find(order.begin(), order.end(), s.hidden[q]) - order.begin() + 1;
      af_eval_metrics_add(&out[s.group[q]], rank);
    }
    for (int g = 0; g < 2; g++) af_eval_metrics_finish(&out[g]);
  }
};

// Float32 scores (ours) against float64 (brute force) can order two nearly
// equal candidates differently; allow that for at most 2 queries of a group:
// each changes a mean by at most 1/n.
void expect_close(const af_eval_result &r, const af_eval_metrics want[2], const char *what) {
  for (int g = 0; g < 2; g++) {
    ASSERT_EQ(r.group[g].n, want[g].n) << what;
    double tol = want[g].n ? 2.0 / want[g].n + 1e-12 : 0;
    for (int k = 0; k < 2; k++) {
      EXPECT_NEAR(r.group[g].recall[k], want[g].recall[k], tol) << what << " group " << g;
      EXPECT_NEAR(r.group[g].ndcg[k], want[g].ndcg[k], tol) << what << " group " << g;
    }
    EXPECT_NEAR(r.group[g].mrr, want[g].mrr, tol) << what << " group " << g;
  }
}

TEST(EvalMethods, MatchBruteForce) {
  SplitFixture f(4, 7, 60, 600);
  const af_eval_split &s = f.sp;
  Brute B(s);
  auto tr = B.train();
  const int N = s.N;
  af_error err{};
  // popularity (exact: integer scores)
  {
    af_eval_method m;
    af_eval_method_init(&m, AF_EVAL_POPULARITY, "popularity");
    af_eval_result r{};
    ASSERT_EQ(af_eval_run(&m, &s, 2, &r, &err), AF_OK) << err.msg;
    af_eval_metrics w[2] = {};
    B.metrics([&](const std::vector<int32_t> &) { return B.pop; }, w);
    for (int g = 0; g < 2; g++) EXPECT_NEAR(r.group[g].mrr, w[g].mrr, 1e-12);
    expect_close(r, w, "popularity");
  }
  // item-CF: sum of count(q,b)/sqrt(n_q n_b) over pairs with count >= 2
  {
    std::vector<double> pc((size_t)N * N, 0);
    for (auto &b : tr)
      for (int32_t x : b)
        for (int32_t y : b)
          if (x != y) pc[(size_t)x * N + y]++;
    af_eval_method m;
    af_eval_method_init(&m, AF_EVAL_ITEMCF, "itemcf");
    m.min_count = 2;
    af_eval_result r{};
    ASSERT_EQ(af_eval_run(&m, &s, 2, &r, &err), AF_OK) << err.msg;
    af_eval_metrics w[2] = {};
    B.metrics(
        [&](const std::vector<int32_t> &q) {
          std::vector<double> sc(N, 0);
          for (int32_t a : q)
            for (int b = 0; b < N; b++)
              if (pc[(size_t)a * N + b] >= 2) sc[b] += pc[(size_t)a * N + b] / std::sqrt(B.pop[a] * B.pop[b]);
          return sc;
        },
        w);
    expect_close(r, w, "itemcf");
  }
  // rules: every itemset of 2..3 items with support count >= 3, rule A -> {b}
  // with A a subset of the query, score = best confidence
  {
    std::map<std::vector<int32_t>, int> cnt;
    for (auto &b : tr) {
      int n = (int)b.size();
      for (int i = 0; i < n; i++) {
        cnt[{b[i]}]++;
        for (int j = i + 1; j < n; j++) {
          cnt[{b[i], b[j]}]++;
          for (int k = j + 1; k < n; k++) cnt[{b[i], b[j], b[k]}]++;
        }
      }
    }
    af_eval_method m;
    af_eval_method_init(&m, AF_EVAL_RULES, "rules");
    m.rules_min_count = 3;
    m.rules_max_len = 3;
    af_eval_result r{};
    ASSERT_EQ(af_eval_run(&m, &s, 2, &r, &err), AF_OK) << err.msg;
    af_eval_metrics w[2] = {};
    B.metrics(
        [&](const std::vector<int32_t> &q) {
          std::vector<double> sc(N, 0);
          for (auto &[set, c] : cnt) {
            if (set.size() < 2 || c < 3) continue;
            for (size_t h = 0; h < set.size(); h++) {
              std::vector<int32_t> ante;
              for (size_t i = 0; i < set.size(); i++)
                if (i != h) ante.push_back(set[i]);
              if (!std::includes(q.begin(), q.end(), ante.begin(), ante.end())) continue;
              sc[set[h]] = std::max(sc[set[h]], (double)(float)((double)c / cnt[ante]));
            }
          }
          return sc;
        },
        w);
    expect_close(r, w, "rules");
  }
  // text: cosine to the mean / the max over query embeddings
  {
    const int d = 8;
    std::mt19937 rng(8);
    std::normal_distribution<float> g(0, 1);
    std::vector<float> e((size_t)N * d);
    for (auto &x : e) x = g(rng);
    for (int i = 0; i < N; i++) {
      double n2 = 0;
      for (int c = 0; c < d; c++) n2 += e[i * d + c] * e[i * d + c];
      for (int c = 0; c < d; c++) e[i * d + c] = (float)(e[i * d + c] / std::sqrt(n2));
    }
    auto dot = [&](const std::vector<double> &v, int b) {
      double s2 = 0;
      for (int c = 0; c < d; c++) s2 += v[c] * e[b * d + c];
      return s2;
    };
    for (int mx = 0; mx < 2; mx++) {
      af_eval_method m;
      af_eval_method_init(&m, AF_EVAL_TEXT, "text");
      m.emb = e.data();
      m.d = d;
      m.text_max = mx;
      af_eval_result r{};
      ASSERT_EQ(af_eval_run(&m, &s, 2, &r, &err), AF_OK) << err.msg;
      af_eval_metrics w[2] = {};
      B.metrics(
          [&](const std::vector<int32_t> &q) {
            std::vector<double> sc(N, mx ? -1e9 : 0);
            std::vector<double> mean(d, 0);
            for (int32_t a : q)
              for (int c = 0; c < d; c++) mean[c] += e[a * d + c] / (double)q.size();
            for (int b = 0; b < N; b++) {
              if (!mx) sc[b] = dot(mean, b);
              for (int32_t a : q)
                if (mx) sc[b] = std::max(sc[b], dot(std::vector<double>(e.begin() + a * d, e.begin() + a * d + d), b));
            }
            return sc;
          },
          w);
      expect_close(r, w, mx ? "text max" : "text mean");
    }
  }
}

// Fusion with the adaptive text back-off (fuse.h, tested against its own
// brute force in test_fuse.cc): eval's plumbing -- the text pool taken from
// the dense mean-cosine row with the query items left out, batches, threads
// -- against a custom method that calls af_fuse_adaptive_scores with a pool
// sorted in float64. Tolerance: expect_close (near-equal cosines may enter
// the pool in another order for a couple of queries).
struct AdaptiveCtx {
  const af_fuse_model *m;
  af_fuse_scratch *s;
  const std::vector<float> *e;
  int d, N, pool;
};

void adaptive_custom(void *vctx, const int32_t *q, int nq, float *scores) {
  auto *c = (AdaptiveCtx *)vctx;
  std::vector<std::pair<double, int>> byc;
  for (int b = 0; b < c->N; b++) {
    if (std::find(q, q + nq, b) != q + nq) continue;
    double sc = 0;
    for (int k = 0; k < c->d; k++) {
      double mk = 0;
      for (int i = 0; i < nq; i++) mk += (*c->e)[(size_t)q[i] * c->d + k] / nq;
      sc += mk * (*c->e)[(size_t)b * c->d + k];
    }
    byc.push_back({-sc, b});
  }
  std::sort(byc.begin(), byc.end());
  std::vector<int32_t> pool;
  std::vector<float> pc;
  for (int j = 0; j < c->pool && j < (int)byc.size(); j++)
    pool.push_back(byc[j].second), pc.push_back((float)-byc[j].first);
  std::fill(scores, scores + c->N, 0.0f);
  const int32_t *touched;
  af_fuse_adaptive_scores(c->m, q, nq, pool.data(), pc.data(), (int)pool.size(), c->s, scores,
                          &touched);
}

TEST(EvalMethods, AdaptiveFusionMatchesLibraryScores) {
  SplitFixture f(4, 7, 60, 600);
  const af_eval_split &s = f.sp;
  const int N = s.N, d = 8;
  std::mt19937 rng(8);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> e((size_t)N * d);
  for (auto &x : e) x = g(rng);
  for (int i = 0; i < N; i++) {
    double n2 = 0;
    for (int c = 0; c < d; c++) n2 += e[i * d + c] * e[i * d + c];
    for (int c = 0; c < d; c++) e[i * d + c] = (float)(e[i * d + c] / std::sqrt(n2));
  }
  af_error err{};
  for (int mode : {AF_FUSE_TEXT_SCALED, AF_FUSE_TEXT_RANKS, AF_FUSE_TEXT_MERGE}) {
    af_eval_method m;
    af_eval_method_init(&m, AF_EVAL_FUSION, "fusion");
    m.emb = e.data();
    m.d = d;
    m.fuse.text_k = 5;
    m.fuse.text_alpha = 0.8;  // large enough that the text term moves most ranks
    m.fuse.text_beta = 20;
    m.fuse.text_pool = 20;
    m.fuse.text_mode = mode;
    af_eval_result r{};
    ASSERT_EQ(af_eval_run(&m, &s, 2, &r, &err), AF_OK) << err.msg;
    af_fuse_input in = {N, d, e.data(), &s.train, 0, nullptr};
    af_fuse_model *fm = nullptr;
    ASSERT_EQ(af_fuse_model_build(&m.fuse, &in, 0, &fm, &err), AF_OK) << err.msg;
    af_fuse_scratch *sc = nullptr;
    ASSERT_EQ(af_fuse_scratch_create(fm, &sc, &err), AF_OK);
    AdaptiveCtx ctx{fm, sc, &e, d, N, m.fuse.text_pool};
    af_eval_method c;
    af_eval_method_init(&c, AF_EVAL_CUSTOM, "custom");
    c.fn = adaptive_custom;
    c.ctx = &ctx;
    af_eval_result w{};
    ASSERT_EQ(af_eval_run(&c, &s, 1, &w, &err), AF_OK) << err.msg;  // 1 thread: one scratch
    // the pools agree exactly here (no near-equal cosines at a pool boundary):
    // MRR equal up to summation rounding; a pool half as large changes it by 0.004
    for (int g2 = 0; g2 < 2; g2++) EXPECT_NEAR(r.group[g2].mrr, w.group[g2].mrr, 1e-9);
    expect_close(r, w.group, mode == 0 ? "scaled" : mode == 1 ? "ranks" : "merge");
    // the text term reaches cold hidden items that F alone ranks by popularity only
    EXPECT_GT(r.group[AF_EVAL_COLD].mrr, 0.0);
    af_fuse_scratch_free(sc);
    af_fuse_model_free(fm);
  }
}

// ---- CLI ------------------------------------------------------------------------

std::string q(const std::string &s) { return "'" + s + "'"; }

struct EvalFiles {
  std::string dir, catalog, baskets, emb;
  EvalFiles(const std::string &tag) {
    dir = aft::temp_dir(tag);
    catalog = dir + "/products.csv";
    baskets = dir + "/orders.csv";
    emb = dir + "/emb.h5";
    const int N = 80, d = 6;
    std::string c = "product_id,product_name,aisle\n";
    for (int i = 0; i < N; i++)
      c += "id" + std::to_string(i) + ",\"item " + std::to_string(i) + ", size " +
           std::to_string(i % 4) + "\",a" + std::to_string(i % 5) + "\n";
    aft::write_file(catalog, c);
    auto bs = random_baskets(12, N, 500);
    std::string o = "order_id,product_id\n";
    for (size_t k = 0; k < bs.size(); k++)
      for (int32_t x : bs[k]) o += std::to_string(k) + ",id" + std::to_string(x) + "\n";
    aft::write_file(baskets, o);
    std::vector<std::string> ids;
    std::vector<char *> idp;
    std::vector<float> x;
    for (int i = 0; i < N; i++) {
      ids.push_back("id" + std::to_string(i));
      for (int c2 = 0; c2 < d; c2++) x.push_back(std::cos(0.7f * i + 1.3f * c2));
    }
    for (auto &s : ids) idp.push_back(const_cast<char *>(s.c_str()));
    af_embeddings e = {};
    e.n = N;
    e.d = d;
    e.ids = idp.data();
    e.emb = x.data();
    e.model = const_cast<char *>("toy");
    e.pooling = const_cast<char *>("mean");
    e.normalized = 0;
    af_error err{};
    EXPECT_EQ(af_embeddings_write(emb.c_str(), &e, &err), AF_OK) << err.msg;
  }
  std::string cmd(const std::string &extra) const {
    return aft::cli() + " eval --catalog " + q(catalog) +
           " --id-column product_id --text-column product_name --category-column aisle --baskets " +
           q(baskets) + " " + extra;
  }
};

TEST(EvalCli, TableAndJson) {
  EvalFiles f("eval-cli");
  std::string out = f.dir + "/eval.json", so, se;
  ASSERT_EQ(aft::run(f.cmd("--embeddings " + q(f.emb) + " --text-embeddings other=" + q(f.emb) +
                           " --text-agg both --out " + q(out)),
                     &so, &se),
            0)
      << se;
  for (const char *m : {"popularity", "rules", "itemcf", "text-pretrained-mean",
                        "text-pretrained-max", "fusion-pretrained", "text-other-mean", "fusion-other"}) {
    EXPECT_NE(so.find(m), std::string::npos) << m << "\n" << so;
    EXPECT_NE(aft::read_file(out).find(std::string("\"") + m + "\""), std::string::npos) << m;
  }
  std::string js = aft::read_file(out);
  EXPECT_NE(js.find("\"queries\": 100"), std::string::npos) << js;  // 0.2 * 500, all >= 2 items
  EXPECT_NE(js.find("\"recall@20\""), std::string::npos);
  // the same seed gives the same file; another seed another split
  std::string out2 = f.dir + "/eval2.json";
  ASSERT_EQ(aft::run(f.cmd("--embeddings " + q(f.emb) + " --text-embeddings other=" + q(f.emb) +
                           " --text-agg both --out " + q(out2)), nullptr, &se), 0);
  auto strip_seconds = [](std::string s) {
    for (size_t p; (p = s.find("\"seconds\": ")) != std::string::npos;) {
      size_t e = s.find(',', p);
      s.erase(p, e - p);
    }
    return s;
  };
  EXPECT_EQ(strip_seconds(aft::read_file(out2)), strip_seconds(js));
  ASSERT_EQ(aft::run(f.cmd("--methods popularity --seed 7 --out " + q(out2)), nullptr, &se), 0) << se;
  EXPECT_EQ(aft::read_file(out2).find("fusion"), std::string::npos);
  EXPECT_NE(aft::read_file(out2).find("\"seed\": 7"), std::string::npos);
}

TEST(EvalCli, GivenTestFileAndModel) {
  EvalFiles f("eval-given");
  std::string test = f.dir + "/test.csv", out = f.dir + "/eval.json", se, so;
  aft::write_file(test, "order_id,product_id\nt1,id1\nt1,id2\nt2,id3\nt2,id4\nt2,id5\n");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK);
  std::string model = f.dir + "/tiny.h5";
  ASSERT_EQ(af_model_save(model.c_str(), &m, &err), AF_OK) << err.msg;
  af_model_free(&m);
  ASSERT_EQ(aft::run(f.cmd("--test-baskets " + q(test) + " --embeddings " + q(f.emb) +
                           " --finetuned-model " + q(model) + " --out " + q(out)),
                     &so, &se),
            0)
      << se;
  std::string js = aft::read_file(out);
  EXPECT_NE(js.find("\"split\": \"given\""), std::string::npos) << js;
  EXPECT_NE(js.find("\"queries\": 2,"), std::string::npos) << js;
  EXPECT_NE(js.find("\"text-finetuned\""), std::string::npos) << js;
  EXPECT_NE(js.find("\"fusion-finetuned\""), std::string::npos) << js;
}

TEST(EvalCli, BadInputsFailCleanly) {
  EvalFiles f("eval-bad");
  std::string out = f.dir + "/eval.json", se;
  aft::write_file(f.dir + "/test.csv", "order_id,product_id\nt1,id1\nt1,nope\n");
  EXPECT_NE(aft::run(f.cmd("--methods popularity --test-baskets " + q(f.dir + "/test.csv") +
                           " --out " + q(out)), nullptr, &se), 0);
  EXPECT_NE(se.find("test.csv:3"), std::string::npos) << se;
  EXPECT_NE(aft::run(f.cmd("--methods popularity,magic --out " + q(out)), nullptr, &se), 0);
  EXPECT_NE(se.find("magic"), std::string::npos) << se;
  EXPECT_NE(aft::run(f.cmd("--methods text --out " + q(out)), nullptr, &se), 0);
  EXPECT_NE(se.find("--embeddings"), std::string::npos) << se;
  EXPECT_NE(aft::run(f.cmd("--text-model noequals --out " + q(out)), nullptr, &se), 0);
  EXPECT_NE(se.find("NAME=PATH"), std::string::npos) << se;
  EXPECT_NE(aft::run(f.cmd("--embeddings " + q(f.dir + "/missing.h5") + " --out " + q(out)),
                     nullptr, &se), 0);
  EXPECT_NE(se.find("missing.h5"), std::string::npos) << se;
  EXPECT_NE(aft::run(f.cmd("--methods popularity --test-fraction 1.5 --out " + q(out)), nullptr, &se), 0);
  EXPECT_NE(se.find("--test-fraction"), std::string::npos) << se;
  EXPECT_FALSE(aft::file_exists(out));
  for (auto &n : aft::list_dir(f.dir)) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
}

TEST(EvalCli, BundledSample) {
  // The bundled Instacart sample through the co-purchase methods (the text
  // methods need its embeddings: see docs/evaluation.md for the full run).
  std::string dir = aft::temp_dir("eval-sample"), out = dir + "/eval.json", so, se;
  std::string d = aft::source_dir() + "/datasets/instacart-sample";
  ASSERT_EQ(aft::run(aft::cli() + " eval --catalog " + q(d + "/products.csv") +
                         " --category-column aisle --baskets " + q(d + "/order_products.csv") +
                         " --methods popularity,rules,itemcf --out " + q(out),
                     &so, &se),
            0)
      << se;
  EXPECT_NE(aft::read_file(out).find("\"products\": 17528"), std::string::npos);
}

}  // namespace
