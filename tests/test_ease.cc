// EASE checked in float64 against the defining equations of its closed form
// (normal equations off the diagonal, zero diagonal) and against a per-column
// constrained least-squares solve written here (Gaussian elimination, no
// LAPACK); item-KNN with shrinkage against a brute force; the paired
// bootstrap against the exact bootstrap distribution (enumerated) and the
// normal approximation; tuning against separate runs; ranks against metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {

using Baskets = std::vector<std::vector<int32_t>>;

af_baskets make_baskets(const Baskets &bs, int N) {
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  for (auto &b : bs) {
    items.insert(items.end(), b.begin(), b.end());
    off.push_back((int64_t)items.size());
  }
  af_baskets out{};
  af_error err{};
  EXPECT_EQ(af_baskets_from_arrays((int64_t)bs.size(), N, off.data(), items.data(), &out, &err),
            AF_OK);
  return out;
}

Baskets random_baskets(unsigned seed, int N, int n, int spread = 8) {
  std::mt19937 rng(seed);
  Baskets bs;
  for (int k = 0; k < n; k++) {
    std::set<int32_t> s;
    int c = rng() % N, len = 2 + rng() % 5;
    while ((int)s.size() < len) s.insert((c + (int)(rng() % spread)) % N);
    bs.emplace_back(s.begin(), s.end());
  }
  return bs;
}

// (N, d) rows of Gaussian noise (seed) plus `lift` on coordinate centre(i)
// (none where it is -1), each scaled to unit length: text embeddings whose
// nearby rows share a direction.
std::vector<float> unit_rows(unsigned seed, int N, int d, float lift,
                             const std::function<int(int)> &centre) {
  std::vector<float> e((size_t)N * d);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  for (int i = 0; i < N; i++) {
    double n2 = 0;
    for (int c = 0; c < d; c++) {
      float &v = e[(size_t)i * d + c];
      v = g(rng) + lift * (float)(centre(i) == c);
      n2 += v * v;
    }
    for (int c = 0; c < d; c++) e[(size_t)i * d + c] /= (float)std::sqrt(n2);
  }
  return e;
}

// G = X^T X over items [0, n) in float64.
std::vector<double> gram(const Baskets &bs, int n) {
  std::vector<double> G((size_t)n * n, 0.0);
  for (auto &b : bs)
    for (int x : b)
      for (int y : b)
        if (x < n && y < n) G[(size_t)x * n + y] += 1;
  return G;
}

// Solves A x = rhs by Gaussian elimination with partial pivoting (float64).
std::vector<double> gauss(std::vector<double> A, std::vector<double> rhs) {
  const int n = (int)rhs.size();
  for (int c = 0; c < n; c++) {
    int p = c;
    for (int r = c + 1; r < n; r++)
      if (std::fabs(A[(size_t)r * n + c]) > std::fabs(A[(size_t)p * n + c])) p = r;
    for (int k = 0; k < n; k++) std::swap(A[(size_t)c * n + k], A[(size_t)p * n + k]);
    std::swap(rhs[c], rhs[p]);
    for (int r = c + 1; r < n; r++) {
      double f = A[(size_t)r * n + c] / A[(size_t)c * n + c];
      for (int k = c; k < n; k++) A[(size_t)r * n + k] -= f * A[(size_t)c * n + k];
      rhs[r] -= f * rhs[c];
    }
  }
  std::vector<double> x(n);
  for (int r = n - 1; r >= 0; r--) {
    double s = rhs[r];
    for (int k = r + 1; k < n; k++) s -= A[(size_t)r * n + k] * x[k];
    x[r] = s / A[(size_t)r * n + r];
  }
  return x;
}

TEST(Ease, SolveSatisfiesNormalEquationsAndZeroDiagonal) {
  const int n = 12;
  Baskets bs = random_baskets(3, n, 80, 7);
  for (double lambda : {0.5, 10.0, 200.0}) {
    std::vector<double> G = gram(bs, n), B = G;
    af_error err{};
    ASSERT_EQ(af_ease_solve(B.data(), n, lambda, &err), AF_OK) << err.msg;
    double gmax = *std::max_element(G.begin(), G.end());
    // Normal equations ((G + lambda I) B)[i, j] = G[i, j] for i != j. The
    // solve is a float64 Cholesky of a matrix with condition number
    // <= (||G|| + lambda) / lambda < 1e3 here, so the residual is ~1e-13 of
    // ||G||; 1e-9 relative leaves room and still fails on any wrong B
    // (a wrong lambda or a missing diagonal correction is off by O(1)).
    for (int i = 0; i < n; i++) {
      EXPECT_EQ(B[(size_t)i * n + i], 0.0) << "diagonal " << i;
      for (int j = 0; j < n; j++) {
        if (i == j) continue;
        double s = lambda * B[(size_t)i * n + j];
        for (int k = 0; k < n; k++) s += G[(size_t)i * n + k] * B[(size_t)k * n + j];
        EXPECT_NEAR(s, G[(size_t)i * n + j], 1e-9 * gmax) << i << "," << j << " lambda " << lambda;
      }
    }
    // Column j is the ridge regression of item j on the others:
    // B[-j, j] = (G[-j,-j] + lambda I)^{-1} G[-j, j] (Gaussian elimination).
    for (int j = 0; j < n; j++) {
      std::vector<double> A, rhs;
      std::vector<int> idx;
      for (int i = 0; i < n; i++)
        if (i != j) idx.push_back(i);
      for (int r : idx) {
        for (int c : idx) A.push_back(G[(size_t)r * n + c] + (r == c ? lambda : 0.0));
        rhs.push_back(G[(size_t)r * n + j]);
      }
      std::vector<double> x = gauss(A, rhs);
      for (size_t t = 0; t < idx.size(); t++)
        EXPECT_NEAR(B[(size_t)idx[t] * n + j], x[t], 1e-10 * (1 + std::fabs(x[t])));
    }
  }
}

TEST(Ease, NotPositiveDefiniteIsAnError) {
  std::vector<double> G = {1, 2, 2, 1};  // eigenvalues 3 and -1: G + 0.5 I is indefinite
  af_error err{};
  EXPECT_NE(af_ease_solve(G.data(), 2, 0.5, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("positive definite"), std::string::npos) << err.msg;
  EXPECT_NE(af_ease_solve(G.data(), 2, 0.0, &err), AF_OK);
}

TEST(Ease, FitSelectsProductsAndMatchesTheSolve) {
  const int N = 30;
  Baskets bs = random_baskets(9, N, 200, 10);
  af_baskets b = make_baskets(bs, N);
  std::vector<int64_t> cnt(N, 0);
  for (auto &x : bs)
    for (int i : x) cnt[i]++;
  for (int64_t cap : {1000, 7}) {
    af_ease_options o = AF_EASE_DEFAULT_OPTIONS;
    o.lambda = 5;
    o.min_count = 20;
    o.max_items = cap;
    // expected selection: count >= 20, then the cap most-bought (ties: lower row)
    std::vector<int> elig;
    for (int i = 0; i < N; i++)
      if (cnt[i] >= 20) elig.push_back(i);
    std::vector<int> sel = elig;
    std::stable_sort(sel.begin(), sel.end(), [&](int x, int y) { return cnt[x] > cnt[y]; });
    if ((int64_t)sel.size() > cap) sel.resize(cap);
    std::sort(sel.begin(), sel.end());
    ASSERT_GT(sel.size(), 3u);
    af_ease_model m{};
    af_error err{};
    ASSERT_EQ(af_ease_fit(&b, &o, &m, &err), AF_OK) << err.msg;
    EXPECT_EQ(m.n_eligible, (int64_t)elig.size());
    ASSERT_EQ(m.n, (int64_t)sel.size());
    for (size_t i = 0; i < sel.size(); i++) EXPECT_EQ(m.items[i], sel[i]);
    // reference: our Gram of the selected products, solved in float64
    const int n = (int)sel.size();
    std::vector<double> G((size_t)n * n, 0);
    for (auto &x : bs)
      for (size_t p = 0; p < sel.size(); p++)
        for (size_t q = 0; q < sel.size(); q++)
          G[p * n + q] += std::count(x.begin(), x.end(), sel[p]) && std::count(x.begin(), x.end(), sel[q]);
    ASSERT_EQ(af_ease_solve(G.data(), n, o.lambda, &err), AF_OK);
    // B is stored in float: 2^-24 relative rounding, 1e-6 absolute on |B| < 1
    for (size_t k = 0; k < G.size(); k++) EXPECT_NEAR(m.B[k], G[k], 1e-6);
    // a query's score is the sum of its modelled items' rows; others score 0
    int32_t q[3] = {sel[0], sel[2], N - 1};
    std::vector<float> s(N, 0.0f);
    af_ease_query_scores(&m, q, 3, s.data());
    for (int j = 0; j < N; j++) {
      double want = 0;
      auto it = std::find(sel.begin(), sel.end(), j);
      if (it != sel.end())
        for (int t = 0; t < 3; t++) {
          auto iq = std::find(sel.begin(), sel.end(), q[t]);
          if (iq != sel.end()) want += G[(size_t)(iq - sel.begin()) * n + (it - sel.begin())];
        }
      EXPECT_NEAR(s[j], want, 1e-5) << j;
    }
    af_ease_free(&m);
  }
  af_baskets_free(&b);
}

TEST(ItemKnn, MatchesBruteForce) {
  const int N = 40;
  Baskets bs = random_baskets(4, N, 300);
  af_baskets b = make_baskets(bs, N);
  af_cooccur co{};
  af_error err{};
  ASSERT_EQ(af_cooccur_build(&b, 2, &co, &err), AF_OK);
  std::map<std::pair<int, int>, int> pair;
  std::vector<int> cnt(N, 0);
  for (auto &x : bs) {
    for (int i : x) cnt[i]++;
    for (int i : x)
      for (int j : x)
        if (i != j) pair[{i, j}]++;
  }
  const int k = 5;
  const double shrink = 7;
  af_itemknn m{};
  ASSERT_EQ(af_itemknn_build(&co, k, shrink, 2, &m, &err), AF_OK) << err.msg;
  for (int a = 0; a < N; a++) {
    std::vector<std::pair<double, int>> all;
    for (int c = 0; c < N; c++) {
      auto it = pair.find({a, c});
      if (it != pair.end() && it->second >= 2)
        all.push_back({-(it->second / (std::sqrt((double)cnt[a] * cnt[c]) + shrink)), c});
    }
    std::sort(all.begin(), all.end());
    if ((int)all.size() > k) all.resize(k);
    ASSERT_EQ(m.off[a + 1] - m.off[a], (int64_t)all.size()) << a;
    for (size_t t = 0; t < all.size(); t++) {
      EXPECT_EQ(m.nbr[m.off[a] + t], all[t].second);
      EXPECT_NEAR(m.sim[m.off[a] + t], -all[t].first, 1e-6);  // float storage
    }
  }
  af_itemknn_free(&m);
  af_cooccur_free(&co);
  af_baskets_free(&b);
}

// The exact bootstrap distribution of the mean of d over n draws with
// replacement (n^n equally likely resamples, enumerated).
std::map<int, double> exact_bootstrap(const std::vector<int> &d) {
  const int n = (int)d.size();
  std::map<int, double> p;  // sum -> probability
  int64_t total = 1;
  for (int i = 0; i < n; i++) total *= n;
  for (int64_t code = 0; code < total; code++) {
    int64_t c = code;
    int s = 0;
    for (int i = 0; i < n; i++, c /= n) s += d[c % n];
    p[s] += 1.0 / (double)total;
  }
  return p;
}

TEST(Bootstrap, MatchesTheExactDistribution) {
  // 5 queries: A finds 3 that B misses, B finds 1 that A misses
  std::vector<int64_t> ra = {1, 3, 50, 2, 60}, rb = {40, 30, 5, 50, 70};
  std::vector<int> d;
  for (size_t q = 0; q < ra.size(); q++) d.push_back((ra[q] <= 10) - (rb[q] <= 10));
  std::map<int, double> p = exact_bootstrap(d);
  // the exact percentile ends: the first sum whose CDF reaches 2.5% / 97.5%
  double cdf = 0;
  int lo = 99, hi = 99;
  for (auto &[s, pr] : p) {
    double before = cdf;
    cdf += pr;
    if (lo == 99 && cdf >= 0.025) {
      lo = s;
      // well separated from the sampling noise of 40,000 resamples (sd 0.0008)
      ASSERT_GT(cdf - 0.025, 0.004);
      ASSERT_GT(0.025 - before, 0.004);
    }
    if (hi == 99 && cdf >= 0.975) {
      hi = s;
      ASSERT_GT(cdf - 0.975, 0.004);
      ASSERT_GT(0.975 - before, 0.004);
    }
  }
  af_eval_interval iv{};
  af_error err{};
  ASSERT_EQ(af_eval_bootstrap(ra.data(), rb.data(), nullptr, -1, 5, 10, 40000, 7, &iv, &err),
            AF_OK);
  EXPECT_EQ(iv.n, 5);
  EXPECT_DOUBLE_EQ(iv.diff, 2.0 / 5);
  EXPECT_DOUBLE_EQ(iv.lo, lo / 5.0);
  EXPECT_DOUBLE_EQ(iv.hi, hi / 5.0);
}

TEST(Bootstrap, NormalApproximationGroupsAndSeeds) {
  std::mt19937 rng(11);
  const int n = 4000;
  std::vector<int64_t> ra(n), rb(n);
  std::vector<unsigned char> g(n);
  for (int q = 0; q < n; q++) {
    ra[q] = 1 + rng() % 40;  // P(ra <= 10) = 1/4
    rb[q] = 1 + rng() % 50;  // P(rb <= 10) = 1/5
    g[q] = q % 3 == 0;
  }
  af_eval_interval iv{}, again{}, other{}, grp{};
  af_error err{};
  ASSERT_EQ(af_eval_bootstrap(ra.data(), rb.data(), g.data(), 0, n, 10, 4000, 1, &iv, &err), AF_OK);
  // direct computation over the same queries: mean and the normal interval
  double m = 0, m2 = 0;
  int64_t cnt = 0;
  for (int q = 0; q < n; q++)
    if (g[q] == 0) {
      double x = (ra[q] <= 10) - (rb[q] <= 10);
      m += x, m2 += x * x, cnt++;
    }
  m /= cnt;
  double se = std::sqrt((m2 / cnt - m * m) / cnt);
  EXPECT_EQ(iv.n, cnt);
  EXPECT_NEAR(iv.diff, m, 1e-15);
  // half-widths within 10% of 1.96 se: the bootstrap of a mean of ~2,700
  // bounded values is close to normal; 4,000 resamples put ~3% noise on the
  // 2.5% quantile
  EXPECT_NEAR(m - iv.lo, 1.96 * se, 0.1 * 1.96 * se);
  EXPECT_NEAR(iv.hi - m, 1.96 * se, 0.1 * 1.96 * se);
  ASSERT_EQ(af_eval_bootstrap(ra.data(), rb.data(), g.data(), 0, n, 10, 4000, 1, &again, &err), AF_OK);
  EXPECT_EQ(iv.lo, again.lo);
  EXPECT_EQ(iv.hi, again.hi);
  ASSERT_EQ(af_eval_bootstrap(ra.data(), rb.data(), g.data(), 0, n, 10, 4000, 2, &other, &err), AF_OK);
  EXPECT_TRUE(other.lo != iv.lo || other.hi != iv.hi);
  ASSERT_EQ(af_eval_bootstrap(ra.data(), rb.data(), g.data(), 1, n, 10, 100, 1, &grp, &err), AF_OK);
  EXPECT_EQ(grp.n, n - cnt);
}

struct Split {
  af_baskets all{};
  af_eval_split sp{};
  explicit Split(unsigned seed) {
    all = make_baskets(random_baskets(seed, 200, 1500), 200);
    af_eval_split_options o;
    af_eval_split_default_options(&o);
    af_error err{};
    EXPECT_EQ(af_eval_split_random(&all, &o, &sp, &err), AF_OK) << err.msg;
  }
  ~Split() {
    af_eval_split_free(&sp);
    af_baskets_free(&all);
  }
};

TEST(EvalEase, RanksAgreeWithMetricsAndTuningPicksTheBest) {
  Split s(21);
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_EASE, "ease");
  std::vector<int64_t> ranks(s.sp.n_queries, -1);
  af_eval_result r{};
  af_error err{};
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &r, ranks.data(), &err), AF_OK) << err.msg;
  af_eval_metrics want[2] = {};
  for (int64_t q = 0; q < s.sp.n_queries; q++) af_eval_metrics_add(&want[s.sp.group[q]], ranks[q]);
  for (int g = 0; g < 2; g++) {
    af_eval_metrics_finish(&want[g]);
    EXPECT_EQ(r.group[g].n, want[g].n);
    EXPECT_DOUBLE_EQ(r.group[g].recall[0], want[g].recall[0]);
    EXPECT_DOUBLE_EQ(r.group[g].mrr, want[g].mrr);
  }
  EXPECT_GT(r.group[AF_EVAL_WARM].recall[0], 0.05);  // the data has structure EASE finds
  double grid[3] = {1, 30, 1000}, score[3];
  int best = -1;
  ASSERT_EQ(af_eval_tune(&m, AF_EVAL_TUNE_EASE_LAMBDA, grid, 3, &s.sp, 2, score, &best, &err), AF_OK);
  for (int i = 0; i < 3; i++) {
    af_eval_method t = m;
    t.ease.lambda = grid[i];
    ASSERT_EQ(af_eval_run(&t, &s.sp, 1, &r, &err), AF_OK);
    double all = (r.group[0].recall[0] * r.group[0].n + r.group[1].recall[0] * r.group[1].n) /
                 (double)(r.group[0].n + r.group[1].n);
    EXPECT_DOUBLE_EQ(score[i], all);
    EXPECT_LE(score[i], score[best]);
  }
}

}  // namespace

namespace {

std::string q(const std::string &s) { return "'" + s + "'"; }

// An orders CSV (order_id,product_id) of bs: order "oK", products "pI".
void write_orders(const std::string &path, const Baskets &bs) {
  std::string b = "order_id,product_id\n";
  for (size_t k = 0; k < bs.size(); k++)
    for (int x : bs[k]) b += "o" + std::to_string(k) + ",p" + std::to_string(x) + "\n";
  aft::write_file(path, b);
}

// A catalog of 80 products and 800 baskets around random centres.
struct CliFiles {
  std::string dir, catalog, baskets;
  explicit CliFiles(const char *tag) : dir(aft::temp_dir(tag)) {
    catalog = dir + "/products.csv";
    baskets = dir + "/baskets.csv";
    std::string c = "product_id,product_name\n";
    for (int i = 0; i < 80; i++) c += "p" + std::to_string(i) + ",product " + std::to_string(i) + "\n";
    aft::write_file(catalog, c);
    write_orders(baskets, random_baskets(5, 80, 800));
  }
  std::string cmd(const std::string &c, const std::string &extra) const {
    return aft::cli() + " " + c + " --catalog " + q(catalog) +
           " --id-column product_id --text-column product_name --baskets " + q(baskets) + " " + extra;
  }
};

// The number after `key` in the object of method `name` of eval.json.
double json_metric(const std::string &js, const std::string &name, const std::string &group,
                   const std::string &key) {
  size_t p = js.find("{\"name\": \"" + name + "\"");
  p = js.find("\"" + group + "\": {", p);
  p = js.find("\"" + key + "\": ", p);
  return std::stod(js.substr(p + key.size() + 4));
}

TEST(EvalCliEase, RanksOutMatchesTheMetricsAndTheBootstrapIsSeeded) {
  CliFiles f("ease-cli");
  std::string out = f.dir + "/eval.json", ranks = f.dir + "/ranks.csv", se;
  ASSERT_EQ(aft::run(f.cmd("eval", "--methods popularity,itemcf,itemknn,ease --ranks-out " + q(ranks) +
                                       " --out " + q(out)), nullptr, &se), 0) << se;
  std::string js = aft::read_file(out), csv = aft::read_file(ranks);
  // header, then one line per query with a rank per method
  std::vector<std::string> lines;
  for (size_t p = 0, e; (e = csv.find('\n', p)) != std::string::npos; p = e + 1)
    lines.push_back(csv.substr(p, e - p));
  ASSERT_EQ(lines[0], "query,basket,group,hidden_id,popularity,itemcf,itemknn,ease");
  const char *names[4] = {"popularity", "itemcf", "itemknn", "ease"};
  double hits[2][4] = {}, rr[2][4] = {};
  int64_t nq[2] = {};
  for (size_t i = 1; i < lines.size(); i++) {
    std::vector<std::string> c;
    std::string cell;
    for (char ch : lines[i] + ",") {
      if (ch == ',') c.push_back(cell), cell.clear();
      else cell += ch;
    }
    ASSERT_EQ(c.size(), 8u) << lines[i];
    int g = c[2] == "cold";
    nq[g]++;
    for (int m = 0; m < 4; m++) {
      long r = std::stol(c[4 + m]);
      hits[g][m] += r <= 10;
      rr[g][m] += 1.0 / r;
    }
  }
  EXPECT_EQ((int64_t)lines.size() - 1, nq[0] + nq[1]);
  for (int m = 0; m < 4; m++)
    for (int g = 0; g < 2; g++) {
      const char *gn = g ? "cold" : "warm";
      if (!nq[g]) continue;
      EXPECT_NEAR(json_metric(js, names[m], gn, "recall@10"), hits[g][m] / nq[g], 1e-12) << names[m];
      EXPECT_NEAR(json_metric(js, names[m], gn, "mrr"), rr[g][m] / nq[g], 1e-12) << names[m];
    }
  // the lambda grid and its validation scores are recorded; the intervals too
  EXPECT_NE(js.find("\"param\": \"lambda\""), std::string::npos) << js;
  EXPECT_NE(js.find("\"bootstrap\": {\"reference\": "), std::string::npos) << js;
  EXPECT_NE(js.find("\"recall@10_diff\": {\"diff\": "), std::string::npos) << js;
  // the same seed gives the same intervals
  std::string out2 = f.dir + "/eval2.json";
  ASSERT_EQ(aft::run(f.cmd("eval", "--methods popularity,itemcf,itemknn,ease --out " + q(out2)),
                     nullptr, &se), 0) << se;
  for (const char *m : names)
    EXPECT_EQ(json_metric(aft::read_file(out2), m, "warm", "lo"), json_metric(js, m, "warm", "lo"));
  EXPECT_NE(aft::run(f.cmd("eval", "--methods ease --ease-max-items 0 --out " + q(out2)), nullptr, &se), 0);
  EXPECT_NE(se.find("--ease-max-items"), std::string::npos) << se;
}

}  // namespace

namespace {

TEST(EvalLearned, DeterministicForASeedAndAcrossThreadCounts) {
  Split s(33);
  const int N = 200, d = 8;
  std::vector<float> emb = unit_rows(2, N, d, 1, [](int i) { return (i / 8) % 4; });
  std::vector<int32_t> cat(N);
  for (int i = 0; i < N; i++) cat[i] = i / 10;  // baskets are drawn around centres: nearby rows
  const int32_t *cats[1] = {cat.data()};
  int32_t n_codes[1] = {N / 10};
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_LEARNED, "learned");
  m.emb = emb.data(), m.d = d, m.n_levels = 1, m.category = cats, m.n_codes = n_codes;
  m.learn_pool = 20;
  std::vector<int64_t> r1(s.sp.n_queries), r2(s.sp.n_queries), r3(s.sp.n_queries);
  af_eval_result a{}, b{}, c{};
  af_error err{};
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 1, &a, r1.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &b, r2.data(), &err), AF_OK) << err.msg;
  EXPECT_GT(a.train_pairs, 1000);
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) EXPECT_EQ(a.weights[k], b.weights[k]) << k;
  EXPECT_EQ(r1, r2);
  m.learn_seed = 99;  // another validation split: other weights
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &c, r3.data(), &err), AF_OK) << err.msg;
  int differ = 0;
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) differ += c.weights[k] != a.weights[k];
  EXPECT_GT(differ, 0);
  m.learn_seed = 43, m.learn_cold_weight = 8;  // cold queries weigh more: other weights
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &c, r3.data(), &err), AF_OK) << err.msg;
  differ = 0;
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) differ += c.weights[k] != a.weights[k];
  EXPECT_GT(differ, 0);
  m.learn_cold_weight = 1;
  // folds: the queries of K validation splits (seeds 43, 44, ...) fitted
  // together: more pairs than one split gives, other weights, the same for
  // any thread count; one fold is the first split alone
  af_eval_result f1{}, f3{}, f3b{};
  m.learn_folds = 1;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &f1, r3.data(), &err), AF_OK) << err.msg;
  m.learn_folds = 3;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 1, &f3, r1.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &f3b, r2.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(r1, r2);
  EXPECT_GT(f3.train_pairs, 2 * f1.train_pairs);
  EXPECT_LT(f3.train_pairs, 4 * f1.train_pairs);
  differ = 0;
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) {
    EXPECT_EQ(f3.weights[k], f3b.weights[k]) << k;
    differ += f3.weights[k] != f1.weights[k];
  }
  EXPECT_GT(differ, 0);
  m.learn_folds = AF_EVAL_MAX_LEARN_FOLDS + 1;
  EXPECT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &f3, r1.data(), &err), AF_ERR_ARG);
  m.learn_folds = 6;  // the default, as for a
  // text max (off by default): a feature and a pool source when on; off, the
  // feature is the constant 0 and keeps weight 0
  EXPECT_EQ(a.weights[AF_EVAL_F_TEXT_MAX], 0.0);
  m.learn_text_max = 1;
  af_eval_result t1{}, t2{};
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 1, &t1, r1.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &t2, r2.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(r1, r2);
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) EXPECT_EQ(t1.weights[k], t2.weights[k]) << k;
  EXPECT_NE(t1.weights[AF_EVAL_F_TEXT_MAX], 0.0);
  EXPECT_GT(t1.train_pairs, a.train_pairs);  // a larger pool
  m.learn_text_max = 0;
  // the ranker learns something: co-purchase structure beats popularity
  af_eval_method p;
  af_eval_method_init(&p, AF_EVAL_POPULARITY, "popularity");
  af_eval_result pr{};
  ASSERT_EQ(af_eval_run(&p, &s.sp, 2, &pr, &err), AF_OK);
  EXPECT_GT(a.group[AF_EVAL_WARM].recall[0], 2 * pr.group[AF_EVAL_WARM].recall[0]);
  // the listwise (softmax over the pool) loss: the same for any thread count,
  // other weights than the pairwise loss, and it learns too
  m.learn_listwise = 1;
  af_eval_result l1{}, l2{};
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 1, &l1, r1.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &l2, r2.data(), &err), AF_OK) << err.msg;
  differ = 0;
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) {
    EXPECT_EQ(l1.weights[k], l2.weights[k]) << k;
    differ += l1.weights[k] != a.weights[k];
  }
  EXPECT_EQ(r1, r2);
  EXPECT_GT(differ, 0);
  EXPECT_GT(l1.group[AF_EVAL_WARM].recall[0], 2 * pr.group[AF_EVAL_WARM].recall[0]);
}

}  // namespace

namespace {

TEST(Ease, ComplementsAreTheTopPositiveWeightsAndKeepSubstitutes) {
  const int N = 30;
  Baskets bs = random_baskets(12, N, 300, 6);
  af_baskets b = make_baskets(bs, N);
  af_ease_options o = AF_EASE_DEFAULT_OPTIONS;
  o.lambda = 3;
  af_ease_model m{};
  af_error err{};
  ASSERT_EQ(af_ease_fit(&b, &o, &m, &err), AF_OK) << err.msg;
  // a fusion result with one substitute row for product 4 and a complement to be replaced
  af_fuse_result res{};
  res.n = 2;
  res.rows = (af_association *)malloc(2 * sizeof(af_association));
  res.rows[0] = {4, 7, AF_ASSOC_COMPLEMENT, 9.0f, 0, 0, 0};
  res.rows[1] = {4, 9, AF_ASSOC_SUBSTITUTE, 0.8f, 0, 0, 0.8f};
  const int k = 3;
  ASSERT_EQ(af_ease_complements(&m, &b, k, nullptr, 0, &res, &err), AF_OK) << err.msg;
  int subs = 0;
  for (int a = 0; a < N; a++) {
    // expected: the k largest positive B[a, j], j != a, ties to the lower row
    std::vector<std::pair<float, int>> want;
    int la = m.local[a];
    for (int64_t j = 0; la >= 0 && j < m.n; j++)
      if (m.B[(int64_t)la * m.n + j] > 0) want.push_back({-m.B[(int64_t)la * m.n + j], m.items[j]});
    std::sort(want.begin(), want.end());
    if ((int)want.size() > k) want.resize(k);
    std::vector<int> got;
    for (int64_t i = 0; i < res.n; i++)
      if (res.rows[i].product == a) {
        if (res.rows[i].type == AF_ASSOC_SUBSTITUTE) {
          subs++;
          continue;
        }
        got.push_back(res.rows[i].related);
        int64_t c = 0;
        for (auto &x : bs) c += std::count(x.begin(), x.end(), a) && std::count(x.begin(), x.end(), res.rows[i].related);
        EXPECT_EQ(res.rows[i].count, c);
      }
    ASSERT_EQ(got.size(), want.size()) << a;
    for (size_t t = 0; t < got.size(); t++) EXPECT_EQ(got[t], want[t].second) << a;
  }
  EXPECT_EQ(subs, 1);
  af_fuse_result_free(&res);
  af_ease_free(&m);
  af_baskets_free(&b);
}

}  // namespace

namespace {

TEST(EvalLearned, ComplementsOfEveryProductAreItsPoolsBest) {
  const int N = 120, d = 8;
  Baskets bs = random_baskets(41, N, 1200);
  af_baskets b = make_baskets(bs, N);
  std::vector<float> emb = unit_rows(3, N, d, 0, [](int) { return -1; });
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_LEARNED, "learned");
  m.emb = emb.data(), m.d = d, m.learn_pool = 10;
  const int k = 5;
  std::vector<int32_t> rel((size_t)N * k), rel2((size_t)N * k);
  std::vector<float> sc((size_t)N * k), sc2((size_t)N * k);
  af_error err{};
  ASSERT_EQ(af_eval_learned_complements(&m, &b, k, 1, rel.data(), sc.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_learned_complements(&m, &b, k, 2, rel2.data(), sc2.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(rel, rel2);  // the same for any thread count
  EXPECT_EQ(sc, sc2);
  int64_t filled = 0, partners = 0;
  for (int a = 0; a < N; a++)
    for (int j = 0; j < k; j++) {
      int32_t r = rel[(size_t)a * k + j];
      if (r < 0) continue;
      filled++;
      EXPECT_NE(r, a);
      if (j > 0 && rel[(size_t)a * k + j - 1] >= 0) {
        EXPECT_GE(sc[(size_t)a * k + j - 1], sc[(size_t)a * k + j]);
      }
      for (auto &x : bs) partners += std::count(x.begin(), x.end(), a) && std::count(x.begin(), x.end(), r);
    }
  EXPECT_EQ(filled, (int64_t)N * k);  // pools of 5 sources x 10 hold >= 5 candidates
  // most complements were bought with the product (baskets are drawn around centres)
  EXPECT_GT(partners, filled);
  af_baskets_free(&b);
}

}  // namespace

namespace {

// Cold slots (docs/evaluation.md, "Cold slots"): ranks 11 - s .. 10 hold
// never-bought products, the ranks above them are the plain ranker's, and
// the ranks below continue its order; the same for any thread count.
TEST(EvalLearned, ColdSlotsHoldNeverBoughtProductsBelowTheRankersTop) {
  const int N = 120, sold = 80, d = 8, slots = 3;
  Baskets bs = random_baskets(7, sold, 1500);  // products 80..119 are never bought
  af_baskets b = make_baskets(bs, N);
  // an unsold product resembles a sold one: rows i and i - 80 share a centre
  std::vector<float> emb = unit_rows(5, N, d, 2, [&](int i) { return ((i % sold) / 10) % d; });
  std::vector<float> pop(N, 0);
  for (auto &x : bs)
    for (int i : x) pop[i]++;
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_LEARNED, "learned");
  m.emb = emb.data(), m.d = d, m.learn_pool = 10;
  af_error err{};
  int inserted = 0;
  for (int a = 0; a < sold; a += 7) {
    const int32_t q[2] = {a, a + 1};
    std::vector<float> s0(N), s3(N), s3b(N);
    m.learn_cold_slots = 0;
    ASSERT_EQ(af_eval_learned_query(&m, &b, q, 2, 2, s0.data(), &err), AF_OK) << err.msg;
    m.learn_cold_slots = slots;
    ASSERT_EQ(af_eval_learned_query(&m, &b, q, 2, 2, s3.data(), &err), AF_OK) << err.msg;
    ASSERT_EQ(af_eval_learned_query(&m, &b, q, 2, 1, s3b.data(), &err), AF_OK) << err.msg;
    EXPECT_EQ(s3, s3b);  // any thread count
    // eval's order of each row: score, then popularity, then the lower row
    auto order = [&](const std::vector<float> &s) {
      std::vector<int> o;
      for (int i = 0; i < N; i++)
        if (s[i] > -FLT_MAX) o.push_back(i);
      std::sort(o.begin(), o.end(), [&](int x, int y) {
        if (s[x] != s[y]) return s[x] > s[y];
        if (pop[x] != pop[y]) return pop[x] > pop[y];
        return x < y;
      });
      return o;
    };
    std::vector<int> o0 = order(s0), o3 = order(s3);
    ASSERT_GE(o0.size(), 10u);
    for (int p = 0; p < 10 - slots; p++) EXPECT_EQ(o3[p], o0[p]) << a;  // the ranker's top 7
    std::set<int> top(o3.begin(), o3.begin() + 10 - slots);
    int cold_here = 0;
    for (int p = 10 - slots; p < 10; p++) {
      EXPECT_EQ(pop[o3[p]], 0) << a << " rank " << p + 1;  // never bought
      EXPECT_FALSE(top.count(o3[p]));
      cold_here += pop[o3[p]] == 0;
    }
    inserted += cold_here;
    std::vector<int> rest;  // below: the ranker's order without what moved up
    std::set<int> placed(o3.begin(), o3.begin() + 10);
    for (size_t p = 10 - slots; p < o0.size(); p++)
      if (!placed.count(o0[p])) rest.push_back(o0[p]);
    ASSERT_EQ(rest.size(), o3.size() - 10) << a;
    for (size_t p = 0; p < rest.size(); p++) EXPECT_EQ(o3[10 + p], rest[p]) << a;
    for (int qi : q) EXPECT_EQ(s3[qi], -FLT_MAX);  // never the query's own items
  }
  EXPECT_EQ(inserted, slots * ((sold + 6) / 7));
  // the cold ranker is fitted (deterministically) on the cold validation queries
  Split s(33);
  std::vector<float> e2 = unit_rows(2, 200, d, 1, [](int i) { return (i / 8) % 4; });
  m.emb = e2.data(), m.learn_pool = 20, m.learn_cold_slots = 2;
  std::vector<int64_t> r1(s.sp.n_queries), r2(s.sp.n_queries), r0(s.sp.n_queries);
  af_eval_result x{}, y{}, z{};
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 1, &x, r1.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &y, r2.data(), &err), AF_OK) << err.msg;
  EXPECT_GT(x.cold_pairs, 0);
  EXPECT_EQ(r1, r2);
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) EXPECT_EQ(x.cold_weights[k], y.cold_weights[k]) << k;
  m.learn_cold_slots = 0;  // off: no cold ranker, and the main ranker is unchanged by it
  ASSERT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &z, r0.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(z.cold_pairs, 0);
  for (int k = 0; k < AF_EVAL_N_FEATURES; k++) EXPECT_EQ(z.weights[k], x.weights[k]) << k;
  m.learn_cold_slots = AF_EVAL_MAX_COLD_SLOTS + 1;
  EXPECT_EQ(af_eval_run_ranks(&m, &s.sp, 2, &z, r0.data(), &err), AF_ERR_ARG);
  af_baskets_free(&b);
}

}  // namespace

namespace {

// associate --complements learned from the CLI, with cold slots: 80 sold
// products and 10 never bought; with 2 slots each product's 9th and 10th
// complements are never-bought products (unless the ranker's own 8 above
// them already hold all but one), without slots fewer are; --learn-folds
// and --cold-slots belong to the learned ranker only.
TEST(AssociateCli, LearnedComplementsTakeColdSlots) {
  std::string dir = aft::temp_dir("assoc-learned"), se;
  std::string catalog = dir + "/products.csv", baskets = dir + "/baskets.csv";
  std::string c = "product_id,product_name\n";
  const char *w[8] = {"milk", "bread", "apple", "cheese", "soap", "rice", "tea", "jam"};
  for (int i = 0; i < 90; i++)
    c += "p" + std::to_string(i) + "," + w[(i % 80) % 8] + " " + w[((i % 80) / 8) % 8] + " " + std::to_string(i) + "\n";
  aft::write_file(catalog, c);
  write_orders(baskets, random_baskets(5, 80, 800));
  ASSERT_EQ(aft::run(aft::cli() + " import-hf " + q(aft::source_dir() + "/tests/data/tiny_bert_a") +
                     " --out " + q(dir + "/m.h5"), nullptr, &se), 0) << se;
  const std::string base = aft::cli() + " associate --catalog " + q(catalog) +
                           " --id-column product_id --text-column product_name --baskets " +
                           q(baskets) + " --model " + q(dir + "/m.h5") + " --k 10 --threads 2 ";
  // per product: its complements' rows (catalog index), best first
  auto complements = [&](const std::string &file) {
    std::map<int, std::vector<std::pair<double, int>>> by;
    std::string s = aft::read_file(file);
    size_t p = s.find('\n') + 1;
    for (size_t e; (e = s.find('\n', p)) != std::string::npos; p = e + 1) {
      std::vector<std::string> f;
      std::string cell;
      for (char ch : s.substr(p, e - p) + ",") {
        if (ch == ',') f.push_back(cell), cell.clear();
        else cell += ch;
      }
      if (f.size() < 6 || f[4] != "complement") continue;
      by[std::stoi(f[0].substr(1))].push_back({-std::stod(f[5]), std::stoi(f[2].substr(1))});
    }
    for (auto &kv : by) std::sort(kv.second.begin(), kv.second.end());
    return by;
  };
  ASSERT_EQ(aft::run(base + "--complements learned --cold-slots 2 --out " + q(dir + "/s2.csv"),
                     nullptr, &se), 0) << se;
  ASSERT_EQ(aft::run(base + "--complements learned --learn-folds 1 --out " + q(dir + "/s0.csv"),
                     nullptr, &se), 0) << se;
  auto s2 = complements(dir + "/s2.csv"), s0 = complements(dir + "/s0.csv");
  ASSERT_EQ(s2.size(), 90u);
  int cold2 = 0, cold0 = 0;
  for (auto &kv : s2) {
    ASSERT_EQ(kv.second.size(), 10u) << kv.first;
    // never-bought products not already in the top 8 (the cold pool holds
    // all 10, less the product itself): the slots take min(2, that many)
    int above = 0;
    for (int r = 0; r < 8; r++) above += kv.second[r].second >= 80;
    const int left = 10 - (kv.first >= 80) - above;
    ASSERT_GE(left, 1) << "product " << kv.first;
    EXPECT_GE(kv.second[8].second, 80) << "product " << kv.first;  // never bought
    if (left >= 2) {
      EXPECT_GE(kv.second[9].second, 80) << "product " << kv.first;
    }
    for (auto &x : kv.second) cold2 += x.second >= 80;
  }
  for (auto &kv : s0)
    for (auto &x : kv.second) cold0 += x.second >= 80;
  EXPECT_GT(cold2, cold0);
  EXPECT_NE(aft::run(base + "--learn-folds 3 --out " + q(dir + "/x.csv"), nullptr, &se), 0);
  EXPECT_NE(se.find("--learn-folds: a choice of the learned ranker"), std::string::npos) << se;
  EXPECT_NE(aft::run(base + "--complements learned --learn-folds 9 --out " + q(dir + "/x.csv"),
                     nullptr, &se), 0);
  EXPECT_NE(se.find("learn-folds"), std::string::npos) << se;
}

}  // namespace
