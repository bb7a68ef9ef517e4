// Fusion: the fused complement score F = T A T^T against a dense float64
// brute force written from the definitions in fuse.h (pair counts by walking
// every basket, text neighbours by sorting every product); substitutes
// against the same brute force; a hand-built catalog where complements,
// substitutes and a cold product's back-off are known by construction; and the
// `affinity associate` CLI (columns, atomic output, errors naming file/line).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
}

namespace {

struct Data {
  int N = 0, d = 0;
  std::vector<float> emb;  // (N, d) unit rows
  std::vector<std::vector<int32_t>> baskets;
  af_baskets b{};
  ~Data() { af_baskets_free(&b); }
};

void normalize(std::vector<float> &e, int N, int d) {
  for (int i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (double)e[i * d + c] * e[i * d + c];
    for (int c = 0; c < d; c++) e[i * d + c] = (float)(e[i * d + c] / std::sqrt(s));
  }
}

void make_baskets(Data &D) {
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  for (auto &bk : D.baskets) {
    for (int32_t x : bk) items.push_back(x);
    off.push_back((int64_t)items.size());
  }
  af_error err{};
  ASSERT_EQ(af_baskets_from_arrays((int64_t)D.baskets.size(), D.N, off.data(), items.data(), &D.b,
                                   &err),
            AF_OK)
      << err.msg;
}

// Random catalog: N products, d dims, products >= n_warm never sold.
void random_data(Data &D, int seed, int N, int d, int n_warm, int n_baskets) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  D.N = N;
  D.d = d;
  D.emb.resize((size_t)N * d);
  for (auto &x : D.emb) x = g(rng);
  normalize(D.emb, N, d);
  for (int k = 0; k < n_baskets; k++) {
    std::set<int32_t> s;
    int len = 1 + rng() % 5;
    int base = rng() % n_warm;
    for (int i = 0; i < len; i++)  // clustered so that pairs repeat
      s.insert((base + (int)(rng() % 6)) % n_warm);
    D.baskets.emplace_back(s.begin(), s.end());
  }
  make_baskets(D);
}

// Dense float64 brute force of the definitions in fuse.h.
struct Brute {
  int N;
  std::vector<double> n;     // (N) basket counts
  std::vector<double> pair;  // (N, N) co-purchase counts
  std::vector<double> F;     // (N, N) T A T^T
  std::vector<double> cos;   // (N, N)
  double nb;
};

Brute brute(const Data &D, const af_fuse_options &o) {
  Brute B;
  const int N = D.N;
  B.N = N;
  B.nb = (double)D.baskets.size();
  B.n.assign(N, 0);
  B.pair.assign((size_t)N * N, 0);
  for (auto &bk : D.baskets) {
    for (size_t i = 0; i < bk.size(); i++) {
      B.n[bk[i]]++;
      for (size_t j = 0; j < bk.size(); j++)
        if (i != j) B.pair[(size_t)bk[i] * N + bk[j]]++;
    }
  }
  B.cos.assign((size_t)N * N, 0);
  for (int a = 0; a < N; a++)
    for (int b = 0; b < N; b++) {
      double s = 0;
      for (int c = 0; c < D.d; c++) s += (double)D.emb[a * D.d + c] * D.emb[b * D.d + c];
      B.cos[(size_t)a * N + b] = s;
    }
  std::vector<double> A((size_t)N * N, 0), T((size_t)N * N, 0);
  for (int x = 0; x < N; x++)
    for (int y = 0; y < N; y++) {
      double c = B.pair[(size_t)x * N + y];
      if (x != y && c >= (double)o.min_count) A[(size_t)x * N + y] = c / std::sqrt(B.n[x] * B.n[y]);
    }
  for (int x = 0; x < N; x++) {
    double w = B.n[x] > 0 ? (o.history_prior == 0 ? 1.0 : B.n[x] / (B.n[x] + o.history_prior)) : 0;
    std::vector<std::pair<double, int>> nb;
    for (int y = 0; y < N; y++)
      if (y != x && B.n[y] > 0) nb.push_back({-B.cos[(size_t)x * N + y], y});
    std::sort(nb.begin(), nb.end());
    if ((int)nb.size() > o.text_k) nb.resize(o.text_k);
    double sum = 0, sum2 = 0;
    for (auto &p : nb)
      if (-p.first >= o.text_min_cosine && -p.first > 0) sum += -p.first, sum2 += p.first * p.first;
    double beta = sum > 0 ? (1 - w) * sum2 / sum : 0;
    if (B.n[x] > 0) T[(size_t)x * N + x] += 1 - beta;
    for (auto &p : nb)
      if (-p.first >= o.text_min_cosine && -p.first > 0)
        T[(size_t)x * N + p.second] += beta * -p.first / sum;
  }
  std::vector<double> TA((size_t)N * N, 0);
  for (int a = 0; a < N; a++)
    for (int x = 0; x < N; x++)
      if (T[(size_t)a * N + x] != 0)
        for (int y = 0; y < N; y++) TA[(size_t)a * N + y] += T[(size_t)a * N + x] * A[(size_t)x * N + y];
  B.F.assign((size_t)N * N, 0);
  for (int a = 0; a < N; a++)
    for (int b = 0; b < N; b++) {
      double s = 0;
      for (int y = 0; y < N; y++) s += TA[(size_t)a * N + y] * T[(size_t)b * N + y];
      B.F[(size_t)a * N + b] = s;
    }
  return B;
}

// Float32 sparse accumulation against float64: relative 1e-4 of the row's
// largest score (a few hundred float adds, each off by at most 2^-24).
constexpr double kRel = 1e-4;

TEST(Fuse, QueryScoresMatchDenseBruteForce) {
  for (double prior : {0.0, 5.0}) {
    Data D;
    random_data(D, 7, 60, 8, 45, 400);
    af_fuse_options o;
    af_fuse_default_options(&o);
    o.text_k = 6;
    o.history_prior = prior;
    o.min_count = 2;
    o.text_min_cosine = 0.2;
    Brute B = brute(D, o);
    af_fuse_input in = {D.N, D.d, D.emb.data(), &D.b, 0, nullptr};
    af_fuse_model *m = nullptr;
    af_error err{};
    ASSERT_EQ(af_fuse_model_build(&o, &in, 0, &m, &err), AF_OK) << err.msg;
    af_fuse_scratch *s = nullptr;
    ASSERT_EQ(af_fuse_scratch_create(m, &s, &err), AF_OK);
    std::mt19937 rng(3);
    std::vector<float> out(D.N);
    double worst = 0;
    int nonzero_cold = 0;
    for (int t = 0; t < 80; t++) {
      std::vector<int32_t> q;
      int nq = 1 + t % 3;
      for (int i = 0; i < nq; i++) q.push_back(rng() % D.N);
      std::fill(out.begin(), out.end(), 0.0f);
      const int32_t *touched;
      int64_t nt = af_fuse_query_scores(m, q.data(), nq, s, out.data(), &touched);
      std::set<int32_t> tset(touched, touched + nt);
      double mx = 1e-12;
      std::vector<double> want(D.N, 0);
      for (int b = 0; b < D.N; b++) {
        for (int32_t a : q) want[b] += B.F[(size_t)a * D.N + b];
        mx = std::max(mx, std::abs(want[b]));
      }
      for (int b = 0; b < D.N; b++) {
        double e = std::abs(out[b] - want[b]) / mx;
        worst = std::max(worst, e);
        EXPECT_LE(e, kRel) << "query " << t << " product " << b;
        if (out[b] != 0) {
          EXPECT_TRUE(tset.count(b)) << "nonzero score not listed as touched";
        }
        if (b >= 45 && want[b] > 0) nonzero_cold++;
      }
    }
    // the cold products (45..59, never sold) are scored through their text neighbours
    EXPECT_GT(nonzero_cold, 0);
    printf("prior %g: worst relative error %.3g\n", prior, worst);
    af_fuse_scratch_free(s);
    af_fuse_model_free(m);
  }
}

TEST(Fuse, RunMatchesBruteForceComplementsAndSubstitutes) {
  Data D;
  random_data(D, 11, 50, 6, 40, 300);
  af_fuse_options o;
  af_fuse_default_options(&o);
  o.k = 5;
  o.text_k = 5;
  o.sub_pool = 10;
  o.sub_min_cosine = 0.3;
  o.text_min_cosine = 0.0;
  o.text_alpha = 0;  // complements ranked by F itself (the adaptive score: below)
  Brute B = brute(D, o);
  // two category levels; level 0 unknown for some products
  std::vector<std::string> c0(D.N), c1(D.N);
  std::vector<const char *> p0(D.N), p1(D.N);
  for (int i = 0; i < D.N; i++) {
    c0[i] = i % 7 == 0 ? "" : "aisle" + std::to_string(i % 3);
    c1[i] = "dept" + std::to_string(i % 2);
    p0[i] = c0[i].c_str();
    p1[i] = c1[i].c_str();
  }
  const char *const *levels[2] = {p0.data(), p1.data()};
  af_fuse_input in = {D.N, D.d, D.emb.data(), &D.b, 2, levels};
  af_fuse_result r{};
  af_error err{};
  ASSERT_EQ(af_fuse_run(&o, &in, &r, &err), AF_OK) << err.msg;
  std::map<int, std::vector<af_association>> comp, sub;
  for (int64_t i = 0; i < r.n; i++)
    (r.rows[i].type == AF_ASSOC_COMPLEMENT ? comp : sub)[r.rows[i].product].push_back(r.rows[i]);
  auto same_cat = [&](int a, int b) {
    if (!c0[a].empty() && !c0[b].empty()) return c0[a] == c0[b];
    return c1[a] == c1[b];
  };
  int n_comp = 0, n_sub = 0;
  for (int a = 0; a < D.N; a++) {
    // complements: the k largest positive F[a, b], b != a
    std::vector<std::pair<double, int>> want;
    for (int b = 0; b < D.N; b++)
      if (b != a && B.F[(size_t)a * D.N + b] > 1e-9) want.push_back({-B.F[(size_t)a * D.N + b], b});
    std::sort(want.begin(), want.end());
    auto &got = comp[a];
    ASSERT_EQ(got.size(), std::min<size_t>(o.k, want.size())) << "product " << a;
    double mx = want.empty() ? 1 : -want[0].first;
    for (size_t j = 0; j < got.size(); j++) {
      n_comp++;
      EXPECT_NEAR(got[j].score, B.F[(size_t)a * D.N + got[j].related], kRel * mx);
      EXPECT_NEAR(got[j].score, -want[j].first, kRel * mx) << "rank " << j << " of " << a;
      if (j) {
        EXPECT_LE(got[j].score, got[j - 1].score);
      }
      EXPECT_EQ(got[j].count, (int64_t)B.pair[(size_t)a * D.N + got[j].related]);
      EXPECT_NEAR(got[j].cosine, B.cos[(size_t)a * D.N + got[j].related], 1e-5);
      if (got[j].count > 0)
        EXPECT_NEAR(got[j].lift, got[j].count * B.nb / (B.n[a] * B.n[got[j].related]), 1e-9);
      else
        EXPECT_TRUE(std::isnan(got[j].lift));
    }
    // substitutes: walk the sub_pool nearest by cosine, filter, first k
    std::vector<std::pair<double, int>> nn;
    for (int b = 0; b < D.N; b++)
      if (b != a) nn.push_back({-B.cos[(size_t)a * D.N + b], b});
    std::sort(nn.begin(), nn.end());
    std::vector<int> wsub;
    for (int j = 0; j < o.sub_pool && (int)wsub.size() < o.k; j++) {
      int b = nn[j].second;
      double c = -nn[j].first;
      if (c < o.sub_min_cosine) break;
      if (!same_cat(a, b)) continue;
      double cnt = B.pair[(size_t)a * D.N + b];
      if (cnt > 0 && cnt * B.nb / (B.n[a] * B.n[b]) > o.sub_max_lift) continue;
      wsub.push_back(b);
    }
    std::vector<int> gsub;
    for (auto &s : sub[a]) gsub.push_back(s.related);
    EXPECT_EQ(gsub, wsub) << "substitutes of " << a;
    n_sub += (int)gsub.size();
  }
  EXPECT_GT(n_comp, 100);
  EXPECT_GT(n_sub, 20);
  af_fuse_result_free(&r);
}

// The adaptive score from its definition in fuse.h, in float64: F_Q from the
// dense brute force, the text pool by sorting every product by cosine to the
// mean query vector, competition ranks by counting. Float32 F and cosines may
// order near-equal values differently from float64, so a rank is bounded by
//   1 + #{c : x_c > x_b + tol} <= rank <= 1 + #{c : x_c > x_b - tol}
// (tol: kRel of the row maximum for F, 1e-5 for cosines of unit float32
// vectors), and each score must lie within the bounds that follow; with no
// near-ties the rank bounds are equal.
struct AdaptiveWant {
  std::vector<double> lo, hi;  // (N) score bounds
};

AdaptiveWant adaptive_brute(const Data &D, const Brute &B, const af_fuse_options &o,
                            const std::vector<int32_t> &q) {
  const int N = D.N;
  std::set<int32_t> qs(q.begin(), q.end());
  std::vector<double> F(N, 0), c(N, 0), qv(D.d, 0);
  for (int32_t a : q)
    for (int k = 0; k < D.d; k++) qv[k] += D.emb[(size_t)a * D.d + k] / q.size();
  double fmax = 0;
  for (int b = 0; b < N; b++) {
    for (int32_t a : q) F[b] += B.F[(size_t)a * N + b];
    for (int k = 0; k < D.d; k++) c[b] += qv[k] * D.emb[(size_t)b * D.d + k];
    if (!qs.count(b)) fmax = std::max(fmax, F[b]);
  }
  bool evidence = false;
  for (int x = 0; x < N; x++)
    for (int y = 0; y < N; y++) evidence |= x != y && B.pair[(size_t)x * N + y] >= o.min_count;
  double qf = 1;  // query_history: mean of 1 / (1 + n_q / text_beta) over the query items
  if (o.query_history) {
    qf = 0;
    for (int32_t a : q) qf += 1 / (1 + B.n[a] / o.text_beta) / q.size();
  }
  // text pool: the text_pool best non-query products by cosine (ties: lower row)
  std::vector<std::pair<double, int>> byc;
  for (int b = 0; b < N; b++)
    if (!qs.count(b)) byc.push_back({-c[b], b});
  std::sort(byc.begin(), byc.end());
  std::vector<char> in_pool(N, 0);
  int np = std::min<int>(o.text_pool, (int)byc.size());
  for (int j = 0; j < np; j++) in_pool[byc[j].second] = 1;
  const double c_first = np ? -byc[0].first : 0, c_last = np ? -byc[np - 1].first : 0;
  const double tolF = kRel * std::max(fmax, 1e-300), tolC = 1e-5, k0 = o.rank_k;
  const double fref = fmax > 0 ? fmax : 1.0;
  AdaptiveWant w{std::vector<double>(N, 0), std::vector<double>(N, 0)};
  if (o.text_mode == AF_FUSE_TEXT_MERGE) {
    // two lists: with history by W = F + warm_text_weight cos, without by
    // C = F + cos (cos only for pool members; the cold list needs the text
    // term on); each ranked within its list
    const bool text_on = evidence && o.text_alpha > 0;
    std::vector<double> v(N, 0);
    std::vector<int> list(N, -1);  // 0 warm, 1 cold, -1 unscored
    for (int b = 0; b < N; b++) {
      if (qs.count(b)) continue;
      bool cold = B.n[b] == 0;
      if (cold && !text_on) continue;
      v[b] = F[b] + (in_pool[b] ? (cold ? 1.0 : o.warm_text_weight) * c[b] : 0.0);
      if (v[b] > 0) list[b] = cold;
    }
    const double tol = tolF + tolC;
    for (int b = 0; b < N; b++) {
      if (list[b] < 0) {
        // a value within tol of 0 may come out positive in float32: rank it last or not at all
        if (!qs.count(b) && std::abs(v[b]) <= tol) w.hi[b] = (B.n[b] == 0 ? o.text_alpha * qf : 1.0) / (k0 + 1);
        continue;
      }
      int rlo = 1, rhi = 1;
      for (int x = 0; x < N; x++)
        if (list[x] == list[b]) rlo += v[x] > v[b] + tol, rhi += v[x] > v[b] - tol && x != b;
      double wt = list[b] ? o.text_alpha * qf : 1.0;
      w.lo[b] = v[b] > tol ? wt / (k0 + rhi) : 0;
      w.hi[b] = wt / (k0 + rlo);
    }
    return w;
  }
  for (int b = 0; b < N; b++) {
    if (qs.count(b)) continue;
    double flo = 0, fhi = 0;  // the F term
    if (o.text_mode == AF_FUSE_TEXT_RANKS) {
      if (F[b] > tolF) {
        int rlo = 1, rhi = 1;
        for (int x = 0; x < N; x++)
          if (!qs.count(x) && F[x] > 0) rlo += F[x] > F[b] + tolF, rhi += F[x] > F[b] - tolF && x != b;
        flo = 1 / (k0 + rhi), fhi = 1 / (k0 + rlo);
      } else if (F[b] > 0) {  // tiny positive F: float32 may round it to 0 or rank it last
        fhi = 1 / (k0 + 1);
      }
    } else {
      flo = std::max(0.0, F[b] - tolF), fhi = F[b] + tolF;
    }
    double lam = evidence ? o.text_alpha / (1 + B.n[b] / o.text_beta) * qf : 0;
    if (!(lam > 0 && in_pool[b])) {
      w.lo[b] = flo, w.hi[b] = fhi;
      continue;
    }
    if (o.text_mode == AF_FUSE_TEXT_RANKS) {
      int rlo = 1, rhi = 1;
      for (int x = 0; x < N; x++)
        if (in_pool[x]) rlo += c[x] > c[b] + tolC, rhi += c[x] > c[b] - tolC && x != b;
      double rho = std::min(lam, 1.0);
      w.lo[b] = (1 - rho) * flo + rho / (k0 + rhi);
      w.hi[b] = (1 - rho) * fhi + rho / (k0 + rlo);
    } else {
      double tn = c_first > c_last ? (c[b] - c_last) / (c_first - c_last) : 1.0;
      // cosines off by tolC move tn by about 3 tolC / (c_first - c_last)
      double ttol = c_first > c_last ? 3 * tolC / (c_first - c_last) : 0;
      double fr_lo = fmax > 0 ? fref - tolF : 1, fr_hi = fmax > 0 ? fref + tolF : 1;
      double rho = std::min(lam, 1.0);
      w.lo[b] = (1 - rho) * flo + rho * fr_lo * std::max(0.0, tn - ttol);
      w.hi[b] = (1 - rho) * fhi + rho * fr_hi * (tn + ttol);
    }
  }
  return w;
}

TEST(Fuse, AdaptiveScoresMatchBruteForce) {
  for (int variant = 0; variant < 6; variant++) {
  const int mode = variant % 3, qh = variant / 3;  // qh: query_history
  Data D;
  random_data(D, 5, 60, 8, 45, 400);
  af_fuse_options o;
  af_fuse_default_options(&o);
  o.text_k = 6;
  o.text_min_cosine = 0.2;
  o.sub_pool = 5;
  o.text_pool = 15;  // < N: the pool cut-off is exercised
  o.text_alpha = 0.7;
  o.text_beta = 3;
  o.rank_k = 4;
  o.text_mode = mode;
  o.query_history = qh;
  if (qh) o.text_alpha = 2.5;  // the query factor is below 1: rho still reaches its cap 1 sometimes
  Brute B = brute(D, o);
  af_fuse_input in = {D.N, D.d, D.emb.data(), &D.b, 0, nullptr};
  af_fuse_model *m = nullptr;
  af_error err{};
  // substitutes != 0: the model keeps max(sub_pool, text_pool) text neighbours
  ASSERT_EQ(af_fuse_model_build(&o, &in, 1, &m, &err), AF_OK) << err.msg;
  af_fuse_scratch *s = nullptr;
  ASSERT_EQ(af_fuse_scratch_create(m, &s, &err), AF_OK);
  std::mt19937 rng(9);
  std::vector<float> out(D.N, 0.0f);
  int checked = 0, cold_text = 0, exact = 0;
  for (int t = 0; t < 90; t++) {
    std::vector<int32_t> q;
    int nq = 1 + t % 3;
    while ((int)q.size() < nq) {
      int32_t x = rng() % D.N;
      if (std::find(q.begin(), q.end(), x) == q.end()) q.push_back(x);
    }
    std::sort(q.begin(), q.end());
    AdaptiveWant w = adaptive_brute(D, B, o, q);
    // multi-item queries: the caller's pool (eval: from the dense cosine row),
    // here the float64 one; one item: the model's own neighbours (pool NULL)
    std::vector<int32_t> pool;
    std::vector<float> pcos;
    if (nq > 1) {
      std::vector<std::pair<double, int>> byc;
      for (int b = 0; b < D.N; b++) {
        if (std::find(q.begin(), q.end(), b) != q.end()) continue;
        double c = 0;
        for (int k = 0; k < D.d; k++) {
          double qk = 0;
          for (int32_t a : q) qk += D.emb[(size_t)a * D.d + k] / nq;
          c += qk * D.emb[(size_t)b * D.d + k];
        }
        byc.push_back({-c, b});
      }
      std::sort(byc.begin(), byc.end());
      for (int j = 0; j < o.text_pool; j++) pool.push_back(byc[j].second), pcos.push_back((float)-byc[j].first);
    }
    const int32_t *touched;
    int64_t nt = af_fuse_adaptive_scores(m, q.data(), nq, nq > 1 ? pool.data() : nullptr,
                                         nq > 1 ? pcos.data() : nullptr, (int)pool.size(), s,
                                         out.data(), &touched);
    std::set<int32_t> tset(touched, touched + nt);
    double rowmax = 1e-300;
    for (int b = 0; b < D.N; b++) rowmax = std::max(rowmax, w.hi[b]);
    for (int b = 0; b < D.N; b++) {
      // bounds are sums of reciprocals: float32 rounding of the stored score (1e-6 relative)
      EXPECT_GE(out[b], w.lo[b] - 1e-6) << "query " << t << " product " << b;
      EXPECT_LE(out[b], w.hi[b] + 1e-6) << "query " << t << " product " << b;
      if (out[b] != 0) {
        EXPECT_TRUE(tset.count(b)) << "nonzero score not listed as touched";
      }
      checked++;
      exact += w.hi[b] - w.lo[b] <= 1e-3 * rowmax;
      if (b >= 45 && w.lo[b] > 0) cold_text++;
    }
    for (int32_t b : tset) out[b] = 0;
    for (float x : out) ASSERT_EQ(x, 0.0f) << "an untouched entry was written";
  }
  EXPECT_GT(cold_text, 50);             // never-sold products are reached through the text term
  EXPECT_GT(exact, checked * 9 / 10);   // most bounds are tight: the check has teeth
  printf("mode %d query_history %d: %d of %d scores checked to 0.1%% of the row maximum\n", mode, qh, exact, checked);
  af_fuse_scratch_free(s);
  af_fuse_model_free(m);
  }
}

TEST(Fuse, RunAdaptiveComplementsMatchBruteForce) {
  Data D;
  random_data(D, 13, 50, 6, 38, 300);
  af_fuse_options o;
  af_fuse_default_options(&o);
  o.k = 6;
  o.text_k = 5;
  o.sub_pool = 10;
  o.text_pool = 12;
  o.text_min_cosine = 0.0;
  Brute B = brute(D, o);
  af_fuse_input in = {D.N, D.d, D.emb.data(), &D.b, 0, nullptr};
  af_fuse_result r{};
  af_error err{};
  ASSERT_EQ(af_fuse_run(&o, &in, &r, &err), AF_OK) << err.msg;
  std::map<int, std::vector<af_association>> comp;
  for (int64_t i = 0; i < r.n; i++)
    if (r.rows[i].type == AF_ASSOC_COMPLEMENT) comp[r.rows[i].product].push_back(r.rows[i]);
  int n_cold_listed = 0;
  for (int a = 0; a < D.N; a++) {
    AdaptiveWant w = adaptive_brute(D, B, o, {a});
    // the k best by the brute force's bounds: every listed product's score is
    // within its bounds, listed best first, and no unlisted product's lower
    // bound exceeds the last listed score
    auto &got = comp[a];
    int positive = 0;
    for (int b = 0; b < D.N; b++) positive += w.hi[b] > 0;
    ASSERT_GE((int)got.size(), std::min(o.k, positive) - 1) << "product " << a;
    std::set<int> listed;
    for (size_t j = 0; j < got.size(); j++) {
      int b = got[j].related;
      listed.insert(b);
      EXPECT_GE(got[j].score, w.lo[b] - 1e-6);
      EXPECT_LE(got[j].score, w.hi[b] + 1e-6);
      if (j) {
        EXPECT_LE(got[j].score, got[j - 1].score);
      }
      n_cold_listed += B.n[b] == 0;
    }
    if ((int)got.size() == o.k)
      for (int b = 0; b < D.N; b++)
        if (b != a && !listed.count(b)) {
          EXPECT_LE(w.lo[b], got.back().score + 1e-6) << "product " << a << " misses " << b;
        }
  }
  EXPECT_GT(n_cold_listed, 10);
  af_fuse_result_free(&r);
}

TEST(Fuse, AdaptiveTextTermNeedsCoPurchaseEvidence) {
  // Baskets of single items: no pair, no complement evidence; the text term
  // is off and nothing is listed as a complement (text alone is a
  // substitute signal, not a complement one).
  Data D;
  random_data(D, 3, 30, 6, 30, 0);
  for (int i = 0; i < 30; i++) D.baskets.push_back({i});
  af_baskets_free(&D.b);
  D.b = af_baskets{};
  make_baskets(D);
  af_fuse_options o;
  af_fuse_default_options(&o);
  af_fuse_input in = {D.N, D.d, D.emb.data(), &D.b, 0, nullptr};
  af_fuse_result r{};
  af_error err{};
  ASSERT_EQ(af_fuse_run(&o, &in, &r, &err), AF_OK) << err.msg;
  for (int64_t i = 0; i < r.n; i++) EXPECT_EQ(r.rows[i].type, AF_ASSOC_SUBSTITUTE);
  af_fuse_result_free(&r);
}

// A catalog where the answers are known by construction:
//  0 "whole milk" / 1 "whole milk organic": same aisle, near-identical text,
//     never bought together -> substitutes;
//  0 and 2 "corn flakes cereal": bought together in every basket of 2 -> complement;
//  5 "corn flakes cereal family size": text next to 2, never sold -> gets
//     complements through its text neighbour (back-off): milk;
//  3 "white bread" / 4 "salted butter": bought together; 4's text is close to
//     3's but in another aisle -> not substitutes;
//  6 "shampoo" / 7 "conditioner": bought together often and similar, same
//     aisle, but lift > 1 -> complements, not substitutes.
struct Toy {
  std::vector<std::string> ids = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"};
  std::vector<std::string> names = {"whole milk", "whole milk organic", "corn flakes cereal",
                                    "white bread", "salted butter",
                                    "corn flakes cereal family size", "shampoo", "conditioner"};
  std::vector<std::string> aisle = {"milk", "milk", "cereal", "bread", "butter", "cereal", "hair", "hair"};
  std::vector<float> emb;
  std::vector<std::vector<int32_t>> baskets;
  Toy() {
    // 5 dims: milk, cereal, bread/butter, hair, noise
    float e[8][5] = {{1, 0, 0, 0, 0.05f}, {1, 0, 0, 0, 0.12f}, {0.1f, 1, 0, 0, 0},
                     {0, 0, 1, 0, 0},     {0, 0, 1, 0, 0.6f},  {0.1f, 1, 0, 0, 0.08f},
                     {0, 0, 0, 1, 0},     {0, 0, 0, 1, 0.3f}};
    for (auto &r : e) emb.insert(emb.end(), r, r + 5);
    normalize(emb, 8, 5);
    for (int i = 0; i < 10; i++) baskets.push_back({0, 2});
    for (int i = 0; i < 8; i++) baskets.push_back({3, 4});
    for (int i = 0; i < 6; i++) baskets.push_back({1, 3});
    for (int i = 0; i < 6; i++) baskets.push_back({6, 7});
    for (int i = 0; i < 4; i++) baskets.push_back({6});
    for (int i = 0; i < 4; i++) baskets.push_back({7});
    for (int i = 0; i < 3; i++) baskets.push_back({1});
  }
};

TEST(Fuse, KnownByConstruction) {
  Toy t;
  Data D;
  D.N = 8;
  D.d = 5;
  D.emb = t.emb;
  D.baskets = t.baskets;
  make_baskets(D);
  std::vector<const char *> cat;
  for (auto &s : t.aisle) cat.push_back(s.c_str());
  const char *const *levels[1] = {cat.data()};
  af_fuse_options o;
  af_fuse_default_options(&o);
  o.k = 3;
  o.text_k = 2;
  af_fuse_input in = {8, 5, D.emb.data(), &D.b, 1, levels};
  af_fuse_result r{};
  af_error err{};
  ASSERT_EQ(af_fuse_run(&o, &in, &r, &err), AF_OK) << err.msg;
  auto first = [&](int a, af_assoc_type ty) {
    for (int64_t i = 0; i < r.n; i++)
      if (r.rows[i].product == a && r.rows[i].type == ty) return (int)r.rows[i].related;
    return -1;
  };
  auto has = [&](int a, int b, af_assoc_type ty) {
    for (int64_t i = 0; i < r.n; i++)
      if (r.rows[i].product == a && r.rows[i].related == b && r.rows[i].type == ty) return true;
    return false;
  };
  EXPECT_EQ(first(0, AF_ASSOC_COMPLEMENT), 2);
  EXPECT_EQ(first(2, AF_ASSOC_COMPLEMENT), 0);
  EXPECT_EQ(first(3, AF_ASSOC_COMPLEMENT), 4);
  EXPECT_EQ(first(0, AF_ASSOC_SUBSTITUTE), 1);
  EXPECT_EQ(first(1, AF_ASSOC_SUBSTITUTE), 0);
  EXPECT_FALSE(has(3, 4, AF_ASSOC_SUBSTITUTE));  // other aisle
  EXPECT_FALSE(has(6, 7, AF_ASSOC_SUBSTITUTE));  // bought together, lift > 1
  EXPECT_TRUE(has(6, 7, AF_ASSOC_COMPLEMENT));
  // the never-sold product gets milk as a complement via its text neighbour 2
  EXPECT_EQ(first(5, AF_ASSOC_COMPLEMENT), 0);
  EXPECT_TRUE(has(5, 2, AF_ASSOC_SUBSTITUTE));
  for (int64_t i = 0; i < r.n; i++)
    if (r.rows[i].product == 5) {
      EXPECT_EQ(r.rows[i].count, 0);
    }
  af_fuse_result_free(&r);
}

// Cold start, known by construction. Product 0 "peanut butter" (22 baskets)
// is bought with 1 "strawberry jam" in 12 baskets (strong co-purchase) and
// with each of 2..6 (household products, 30 baskets each) in exactly 2
// baskets (weak co-purchase noise: F about a tenth of the jam's). 7 "peanut
// butter crunchy" is new (never sold) and its title is next to 0's. The
// adaptive back-off must list 7 above every noise product (its text match is
// strong evidence, the noise is weak), and the jam above 7 (a strong
// co-purchase outweighs a text match: rho_jam = alpha/13 is small, so the
// jam keeps (1 - rho) of the largest F, more than 7's alpha times it, for
// any alpha < 12/13 -- the test uses 0.5 and 0.25). With text_alpha 0 (F
// alone) 7 has no score at all: F[0, 7] = 0 here because 0 has no text
// neighbour with history to lend 7.
TEST(Fuse, ColdTextMatchOutranksNoiseButNotStrongCoPurchase) {
  const int N = 8, d = 6;
  Data D;
  D.N = N;
  D.d = d;
  // dims: peanut butter, jam, household 1..3, noise
  float e[N][d] = {{1, 0, 0, 0, 0, 0.05f},   {0.2f, 1, 0, 0, 0, 0},     {0, 0, 1, 0, 0, 0},
                   {0, 0, 1, 0.5f, 0, 0},    {0, 0, 0, 1, 0, 0},        {0, 0, 0, 0, 1, 0},
                   {0, 0, 0, 0.5f, 1, 0},    {1, 0, 0, 0, 0, 0.2f}};
  for (auto &r : e) D.emb.insert(D.emb.end(), r, r + d);
  normalize(D.emb, N, d);
  for (int i = 0; i < 12; i++) D.baskets.push_back({0, 1});
  for (int x = 2; x <= 6; x++) {
    for (int i = 0; i < 2; i++) D.baskets.push_back({0, x});
    for (int i = 0; i < 28; i++) D.baskets.push_back({x});
  }
  make_baskets(D);
  for (double alpha : {0.0, 0.25, 0.5}) {
    af_fuse_options o;
    af_fuse_default_options(&o);
    o.k = 7;
    o.text_alpha = alpha;
    o.text_beta = 1;
    af_fuse_input in = {N, d, D.emb.data(), &D.b, 0, nullptr};
    af_fuse_result r{};
    af_error err{};
    ASSERT_EQ(af_fuse_run(&o, &in, &r, &err), AF_OK) << err.msg;
    std::vector<int> order;  // complements of 0, best first
    for (int64_t i = 0; i < r.n; i++)
      if (r.rows[i].product == 0 && r.rows[i].type == AF_ASSOC_COMPLEMENT)
        order.push_back(r.rows[i].related);
    auto pos = [&](int b) {
      auto it = std::find(order.begin(), order.end(), b);
      return it == order.end() ? 1000 : (int)(it - order.begin());
    };
    EXPECT_EQ(pos(1), 0) << "alpha " << alpha << ": the strong co-purchase comes first";
    for (int x = 2; x <= 6; x++) EXPECT_LT(pos(x), 1000) << "alpha " << alpha;
    if (alpha == 0) {
      EXPECT_EQ(pos(7), 1000) << "F alone cannot reach the new product here";
    } else {
      EXPECT_EQ(pos(7), 1) << "alpha " << alpha << ": the new product's text match beats the noise";
    }
    af_fuse_result_free(&r);
  }
}

// ---- CLI ------------------------------------------------------------------------

std::string q(const std::string &s) { return "'" + s + "'"; }

struct ToyFiles {
  std::string dir, catalog, baskets, emb;
  explicit ToyFiles(const std::string &tag) {
    Toy t;
    dir = aft::temp_dir(tag);
    catalog = dir + "/products.csv";
    baskets = dir + "/orders.csv";
    emb = dir + "/emb.h5";
    std::string c = "product_id,product_name,aisle,department\r\n";
    for (int i = 0; i < 8; i++)
      c += t.ids[i] + ",\"" + t.names[i] + "\"," + t.aisle[i] + ",dept\r\n";
    aft::write_file(catalog, c);
    std::string o = "order_id,product_id\n";
    for (size_t k = 0; k < t.baskets.size(); k++)
      for (int32_t x : t.baskets[k]) o += "o" + std::to_string(k) + "," + t.ids[x] + "\n";
    aft::write_file(baskets, o);
    // embeddings file in a shuffled order: rows are matched by id
    std::vector<int> perm = {3, 0, 7, 5, 1, 6, 2, 4};
    std::vector<char *> ids;
    std::vector<float> x;
    for (int p : perm) {
      ids.push_back(const_cast<char *>(t.ids[p].c_str()));
      x.insert(x.end(), t.emb.begin() + p * 5, t.emb.begin() + p * 5 + 5);
    }
    af_embeddings e = {};
    e.n = 8;
    e.d = 5;
    e.ids = ids.data();
    e.emb = x.data();
    e.model = const_cast<char *>("toy");
    e.pooling = const_cast<char *>("mean");
    e.normalized = 1;
    af_error err{};
    EXPECT_EQ(af_embeddings_write(emb.c_str(), &e, &err), AF_OK) << err.msg;
  }
  std::string cmd(const std::string &extra) const {
    return aft::cli() + " associate --catalog " + q(catalog) +
           " --id-column product_id --text-column product_name --category-column aisle "
           "--category-column department --baskets " + q(baskets) +
           " --order-column order_id --item-column product_id --k 3 --text-k 2 " + extra;
  }
};

std::vector<std::vector<std::string>> read_csv_simple(const std::string &text) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (char ch : line) {
      if (ch == '"') quoted = !quoted;
      else if (ch == ',' && !quoted) f.push_back(cur), cur.clear();
      else cur += ch;
    }
    f.push_back(cur);
    rows.push_back(f);
  }
  return rows;
}

TEST(AssociateCli, WritesComplementsAndSubstitutes) {
  ToyFiles t("assoc-cli");
  std::string out = t.dir + "/assoc.csv", err;
  ASSERT_EQ(aft::run(t.cmd("--embeddings " + q(t.emb) + " --out " + q(out)), nullptr, &err), 0)
      << err;
  auto rows = read_csv_simple(aft::read_file(out));
  ASSERT_GT(rows.size(), 5u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"product_id", "product", "related_id", "related",
                                               "type", "score", "count", "lift", "cosine"}));
  bool milk_cereal = false, milk_sub = false, cold_milk = false;
  for (size_t i = 1; i < rows.size(); i++) {
    auto &r = rows[i];
    ASSERT_EQ(r.size(), 9u);
    if (r[0] == "p0" && r[2] == "p2" && r[4] == "complement") {
      milk_cereal = true;
      EXPECT_EQ(r[6], "10");
      EXPECT_NEAR(std::stod(r[7]), 10.0 * 41 / (10 * 10), 1e-4);  // n_ab n / (n_a n_b)
    }
    if (r[0] == "p0" && r[2] == "p1" && r[4] == "substitute") {
      milk_sub = true;
      EXPECT_EQ(r[6], "0");
      EXPECT_EQ(r[7], "");  // never bought together: no lift
    }
    if (r[0] == "p5" && r[2] == "p0" && r[4] == "complement") cold_milk = true;
  }
  EXPECT_TRUE(milk_cereal);
  EXPECT_TRUE(milk_sub);
  EXPECT_TRUE(cold_milk);
}

TEST(AssociateCli, TextBackOffFlags) {
  // --text-alpha turns the adaptive back-off on: the never-sold p5 ("corn
  // flakes cereal family size", top text match of p2) enters p2's
  // complements right after milk (rho 0.5: half of F_max > the borrowed
  // F of anything else); bad values are errors naming the flag.
  ToyFiles t("assoc-backoff");
  std::string out = t.dir + "/assoc.csv", err;
  ASSERT_EQ(aft::run(t.cmd("--embeddings " + q(t.emb) + " --text-alpha 0.5 --text-beta 4 --out " +
                           q(out)),
                     nullptr, &err),
            0)
      << err;
  std::vector<std::string> p2;
  for (auto &r : read_csv_simple(aft::read_file(out)))
    if (r.size() == 9 && r[0] == "p2" && r[4] == "complement") p2.push_back(r[2]);
  ASSERT_GE(p2.size(), 2u);
  EXPECT_EQ(p2[0], "p0");
  EXPECT_EQ(p2[1], "p5");
  std::string out2 = t.dir + "/bad.csv";
  EXPECT_NE(aft::run(t.cmd("--embeddings " + q(t.emb) + " --text-beta 0 --out " + q(out2)), nullptr,
                     &err),
            0);
  EXPECT_NE(err.find("--text-beta"), std::string::npos) << err;
  EXPECT_NE(aft::run(t.cmd("--embeddings " + q(t.emb) + " --text-alpha -1 --out " + q(out2)),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("--text-alpha"), std::string::npos) << err;
  EXPECT_NE(aft::run(t.cmd("--embeddings " + q(t.emb) + " --text-alpha 0.5 --text-mode best --out " +
                           q(out2)),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("--text-mode"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(out2));
  // the other modes run; in merge mode the never-sold p5 is still listed for p2
  for (const char *mode : {"ranks", "merge"}) {
    ASSERT_EQ(aft::run(t.cmd("--embeddings " + q(t.emb) + " --text-alpha 0.5 --text-mode " + mode +
                             " --out " + q(out)),
                       nullptr, &err),
              0)
        << err;
    bool p5 = false;
    for (auto &r : read_csv_simple(aft::read_file(out)))
      if (r.size() == 9 && r[0] == "p2" && r[2] == "p5" && r[4] == "complement") p5 = true;
    EXPECT_TRUE(p5) << mode;
  }
}

TEST(AssociateCli, ModelInMemory) {
  // The tiny test model: checks the --model path end to end (its vectors are
  // meaningless, so only the shape of the output is checked).
  ToyFiles t("assoc-model");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err),
            AF_OK)
      << err.msg;
  std::string model = t.dir + "/tiny.h5";
  ASSERT_EQ(af_model_save(model.c_str(), &m, &err), AF_OK) << err.msg;
  af_model_free(&m);
  std::string out = t.dir + "/assoc.csv", e;
  ASSERT_EQ(aft::run(t.cmd("--model " + q(model) + " --out " + q(out)), nullptr, &e), 0) << e;
  auto rows = read_csv_simple(aft::read_file(out));
  ASSERT_GT(rows.size(), 1u);
  bool milk_cereal = false;
  for (auto &r : rows)
    if (r[0] == "p0" && r[2] == "p2" && r[4] == "complement") milk_cereal = true;
  EXPECT_TRUE(milk_cereal);  // warm co-purchase evidence does not depend on the text model
}

TEST(AssociateCli, BadInputsFailCleanly) {
  ToyFiles t("assoc-bad");
  std::string out = t.dir + "/assoc.csv", err;
  // unknown product id in the baskets: file and line
  aft::write_file(t.dir + "/bad_orders.csv", "order_id,product_id\no1,p0\no1,p999\n");
  std::string c = aft::cli() + " associate --catalog " + q(t.catalog) +
                  " --category-column aisle --embeddings " + q(t.emb) + " --out " + q(out);
  EXPECT_NE(aft::run(c + " --baskets " + q(t.dir + "/bad_orders.csv"), nullptr, &err), 0);
  EXPECT_NE(err.find("bad_orders.csv"), std::string::npos) << err;
  EXPECT_NE(err.find("3"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(out));
  // catalog row with a missing field
  aft::write_file(t.dir + "/bad_products.csv", "product_id,product_name,aisle\np0,milk,milk\np1,x\n");
  EXPECT_NE(aft::run(aft::cli() + " associate --catalog " + q(t.dir + "/bad_products.csv") +
                         " --baskets " + q(t.baskets) + " --embeddings " + q(t.emb) + " --out " +
                         q(out),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("bad_products.csv"), std::string::npos) << err;
  EXPECT_NE(err.find("bad_products.csv:3"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(out));
  // embeddings lacking a catalog id
  std::vector<char *> ids = {const_cast<char *>("p0")};
  std::vector<float> x = {1, 0, 0, 0, 0};
  af_embeddings e = {};
  e.n = 1;
  e.d = 5;
  e.ids = ids.data();
  e.emb = x.data();
  e.model = const_cast<char *>("toy");
  e.pooling = const_cast<char *>("mean");
  e.normalized = 1;
  af_error aerr{};
  ASSERT_EQ(af_embeddings_write((t.dir + "/short.h5").c_str(), &e, &aerr), AF_OK);
  EXPECT_NE(aft::run(t.cmd("--embeddings " + q(t.dir + "/short.h5") + " --out " + q(out)), nullptr,
                     &err),
            0);
  EXPECT_NE(err.find("short.h5"), std::string::npos) << err;
  EXPECT_NE(err.find("'p1'"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(out));
  // no text source; bad flag value
  EXPECT_NE(aft::run(t.cmd("--out " + q(out)), nullptr, &err), 0);
  EXPECT_NE(err.find("--embeddings"), std::string::npos) << err;
  EXPECT_NE(aft::run(t.cmd("--embeddings " + q(t.emb) + " --k 0 --out " + q(out)), nullptr, &err), 0);
  EXPECT_NE(err.find("--k"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(out));
  // an existing output is not truncated by a failing run
  aft::write_file(out, "keep");
  EXPECT_NE(aft::run(c + " --baskets " + q(t.dir + "/bad_orders.csv"), nullptr, &err), 0);
  EXPECT_EQ(aft::read_file(out), "keep");
  for (auto &n : aft::list_dir(t.dir)) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
}

}  // namespace
