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
#include "baskets.h"
#include "embfile.h"
#include "fuse.h"
#include "model.h"
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
