// Co-occurrence counts and item-CF neighbours against brute force (pair
// counts from a std::map over every basket; neighbours by sorting every other
// item), pair measures against the mlxtend fixture, and the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {
using Pairs = std::map<std::pair<int32_t, int32_t>, int64_t>;

Pairs brute_pairs(const af_baskets &b) {
  Pairs p;
  for (int64_t k = 0; k < b.n_baskets; k++)
    for (int64_t i = b.offsets[k]; i < b.offsets[k + 1]; i++)
      for (int64_t j = i + 1; j < b.offsets[k + 1]; j++) p[{b.items[i], b.items[j]}]++;
  return p;
}

af_baskets random_baskets(int seed, int n_items, int n_baskets, int max_len) {
  std::mt19937 rng(seed);
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  for (int b = 0; b < n_baskets; b++) {
    int len = rng() % (max_len + 1);
    for (int i = 0; i < len; i++) items.push_back(rng() % n_items);  // repeats allowed
    off.push_back(items.size());
  }
  af_baskets bk{};
  af_error err{};
  EXPECT_EQ(af_baskets_from_arrays(n_baskets, n_items, off.data(), items.data(), &bk, &err), AF_OK);
  return bk;
}

void check_cooccur(const af_baskets &b, int64_t min_count) {
  af_cooccur co{};
  af_error err{};
  ASSERT_EQ(af_cooccur_build(&b, min_count, &co, &err), AF_OK) << err.msg;
  Pairs want = brute_pairs(b);
  Pairs got;
  int64_t pos = 0, cnt;
  int32_t row = 0, a, c;
  while (af_cooccur_next(&co, &pos, &row, &a, &c, &cnt)) {
    ASSERT_LT(a, c);
    got[{a, c}] = cnt;
    EXPECT_EQ(af_cooccur_count(&co, c, a), cnt);  // symmetric rows
  }
  for (auto it = want.begin(); it != want.end();) it = it->second < min_count ? want.erase(it) : std::next(it);
  EXPECT_EQ(got, want);
  EXPECT_EQ(af_cooccur_n_pairs(&co), (int64_t)want.size());
  std::vector<int64_t> ic(b.n_items);
  for (int64_t j = 0; j < b.offsets[b.n_baskets]; j++) ic[b.items[j]]++;
  for (int32_t i = 0; i < b.n_items; i++) {
    EXPECT_EQ(co.item_count[i], ic[i]);
    for (int64_t p = co.offsets[i] + 1; p < co.offsets[i + 1]; p++) EXPECT_LT(co.nbr[p - 1], co.nbr[p]);
  }
  af_cooccur_free(&co);
}

TEST(Cooccur, RandomBasketsEqualBruteForce) {
  for (int seed = 0; seed < 6; seed++) {
    af_baskets b = random_baskets(seed, 5 + seed * 60, 300 + seed * 50, 3 + seed * 3);
    for (int64_t mc : {1, 2, 3}) check_cooccur(b, mc);
    af_baskets_free(&b);
  }
}

TEST(Cooccur, InstacartTrainEqualsBruteForce) {
  af_baskets b{};
  af_baskets_options o{"long", nullptr, nullptr, ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/instacart/order_products__train_head.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  check_cooccur(b, 1);
  check_cooccur(b, 4);
  af_baskets_free(&b);
}

// One-item-to-one-item rules in the mlxtend fixture give the pair measures of
// (antecedent, consequent); relative 1e-12 for numpy's order of operations.
TEST(Cooccur, PairStatsMatchMlxtend) {
  af_baskets b{};
  af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/groceries/groceries.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  af_cooccur co{};
  ASSERT_EQ(af_cooccur_build(&b, 1, &co, &err), AF_OK);
  std::map<std::string, int32_t> id;
  for (int32_t i = 0; i < b.n_items; i++) id[b.item_ids[i]] = i;
  std::ifstream f(aft::source_dir() + "/tests/data/rules_groceries_mlxtend.csv");
  std::string line;
  std::getline(f, line);
  int checked = 0;
  while (std::getline(f, line)) {
    if (line.find('|') != std::string::npos || line.find('"') != std::string::npos) continue;
    std::vector<std::string> c;
    size_t s = 0, e;
    while ((e = line.find(',', s)) != std::string::npos) c.push_back(line.substr(s, e - s)), s = e + 1;
    c.push_back(line.substr(s));
    int32_t a = id.at(c[0]), d = id.at(c[1]);
    af_pair_stats st;
    af_pair_stats_compute(co.n_baskets, co.item_count[a], co.item_count[d], af_cooccur_count(&co, a, d), &st);
    auto near = [](double g, double w) { return std::fabs(g - w) <= 1e-12 * std::max(1.0, std::fabs(w)); };
    EXPECT_TRUE(near(st.support, std::stod(c[3]))) << line;
    EXPECT_TRUE(near(st.confidence_ab, std::stod(c[4]))) << line;
    EXPECT_TRUE(near(st.lift, std::stod(c[5]))) << line;
    EXPECT_TRUE(near(st.leverage, std::stod(c[6]))) << line;
    EXPECT_TRUE(near(st.conviction, std::stod(c[7]))) << line;
    checked++;
  }
  EXPECT_GT(checked, 100);
  // Jaccard and cosine by their definitions on one pair counted by hand below.
  int32_t milk = id.at("whole milk"), veg = id.at("other vegetables");
  int64_t both = 0, nm = 0, nv = 0;
  for (int64_t k = 0; k < b.n_baskets; k++) {
    bool hm = false, hv = false;
    for (int64_t j = b.offsets[k]; j < b.offsets[k + 1]; j++) hm |= b.items[j] == milk, hv |= b.items[j] == veg;
    both += hm && hv, nm += hm, nv += hv;
  }
  af_pair_stats st;
  af_pair_stats_compute(co.n_baskets, co.item_count[milk], co.item_count[veg], af_cooccur_count(&co, milk, veg), &st);
  EXPECT_DOUBLE_EQ(st.jaccard, (double)both / (nm + nv - both));
  EXPECT_DOUBLE_EQ(st.cosine, both / std::sqrt((double)nm * nv));
  af_cooccur_free(&co);
  af_baskets_free(&b);
}

void check_itemcf(const af_baskets &b, af_itemcf_measure m, int k, int64_t min_count) {
  af_cooccur co{};
  af_error err{};
  ASSERT_EQ(af_cooccur_build(&b, 1, &co, &err), AF_OK);
  std::vector<int32_t> nbr((size_t)b.n_items * k);
  std::vector<double> score((size_t)b.n_items * k);
  ASSERT_EQ(af_itemcf_topk(&co, m, k, min_count, nbr.data(), score.data(), &err), AF_OK) << err.msg;
  Pairs pc = brute_pairs(b);
  std::vector<int64_t> ic(b.n_items);
  for (int64_t j = 0; j < b.offsets[b.n_baskets]; j++) ic[b.items[j]]++;
  std::vector<std::vector<std::pair<double, int32_t>>> cand(b.n_items);
  for (auto &kv : pc) {
    if (kv.second < min_count) continue;
    auto [x, y] = kv.first;
    double s = m == AF_ITEMCF_COSINE ? kv.second / std::sqrt((double)ic[x] * ic[y])
                                     : (double)kv.second * b.n_baskets / ((double)ic[x] * ic[y]);
    cand[x].push_back({-s, y});
    cand[y].push_back({-s, x});
  }
  for (int32_t a = 0; a < b.n_items; a++) {
    std::sort(cand[a].begin(), cand[a].end());  // score desc, then lower index
    for (int r = 0; r < k; r++) {
      if (r < (int)cand[a].size()) {
        ASSERT_EQ(nbr[(size_t)a * k + r], cand[a][r].second) << "item " << a << " rank " << r;
        // Same formula, possibly different association of the product: 1e-14 relative.
        ASSERT_NEAR(score[(size_t)a * k + r], -cand[a][r].first, 1e-14 * -cand[a][r].first);
      } else {
        ASSERT_EQ(nbr[(size_t)a * k + r], -1);
      }
    }
  }
  af_cooccur_free(&co);
}

TEST(ItemCf, RandomBasketsEqualBruteForce) {
  for (int seed = 10; seed < 14; seed++) {
    // Few items and short baskets: many equal scores, so the tie-break is exercised.
    af_baskets b = random_baskets(seed, 8 + (seed - 10) * 40, 200, 4);
    for (int k : {1, 3, 10})
      for (int64_t mc : {1, 2}) {
        check_itemcf(b, AF_ITEMCF_COSINE, k, mc);
        check_itemcf(b, AF_ITEMCF_LIFT, k, mc);
      }
    af_baskets_free(&b);
  }
}

TEST(ItemCf, GroceriesEqualsBruteForce) {
  af_baskets b{};
  af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/groceries/groceries.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  check_itemcf(b, AF_ITEMCF_COSINE, 10, 3);
  check_itemcf(b, AF_ITEMCF_LIFT, 10, 5);
  af_baskets_free(&b);
}

TEST(ItemCf, Errors) {
  af_baskets b = random_baskets(1, 10, 50, 4);
  af_cooccur co{};
  af_error err{};
  ASSERT_EQ(af_cooccur_build(&b, 3, &co, &err), AF_OK);
  std::vector<int32_t> nbr(100);
  std::vector<double> score(100);
  EXPECT_EQ(af_itemcf_topk(&co, AF_ITEMCF_COSINE, 0, 3, nbr.data(), score.data(), &err), AF_ERR_ARG);
  EXPECT_EQ(af_itemcf_topk(&co, AF_ITEMCF_COSINE, 2, 2, nbr.data(), score.data(), &err), AF_ERR_ARG);
  af_itemcf_measure m;
  EXPECT_EQ(af_itemcf_measure_parse("jaccard", &m, &err), AF_ERR_ARG);
  EXPECT_EQ(af_cooccur_build(&b, 0, &co, &err), AF_ERR_ARG);
  af_cooccur_free(&co);
  af_baskets_free(&b);
}

TEST(CooccurCli, PairsAndNeighboursFiles) {
  std::string dir = aft::temp_dir("cooccur-cli");
  std::string g = aft::shared_dir() + "/groceries/groceries.csv";
  std::string err;
  ASSERT_EQ(aft::run(aft::cli() + " cooccur --baskets " + g + " --baskets-format lines --min-count 5 --out " + dir + "/p.csv", nullptr, &err), 0) << err;
  // Brute-force pair count at min count 5.
  af_baskets b{};
  af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
  af_error e{};
  ASSERT_EQ(af_baskets_load(g.c_str(), &o, nullptr, &b, nullptr, &e), AF_OK);
  int64_t want = 0;
  for (auto &kv : brute_pairs(b)) want += kv.second >= 5;
  af_baskets_free(&b);
  std::string text = aft::read_file(dir + "/p.csv");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), want + 1);
  EXPECT_EQ(text.rfind("item_a,item_b,count,support,confidence_ab,confidence_ba,lift,leverage,conviction,jaccard,cosine\n", 0), 0u);
  ASSERT_EQ(aft::run(aft::cli() + " itemcf --baskets " + g + " --baskets-format lines --k 3 --measure lift --out " + dir + "/n.csv", nullptr, &err), 0) << err;
  EXPECT_EQ(aft::read_file(dir + "/n.csv").rfind("item,rank,neighbor,score,count\n", 0), 0u);
  // Errors: bad measure, malformed baskets; no output left behind.
  EXPECT_NE(aft::run(aft::cli() + " itemcf --baskets " + g + " --baskets-format lines --measure dice --out " + dir + "/x.csv", nullptr, &err), 0);
  EXPECT_NE(err.find("dice"), std::string::npos) << err;
  aft::write_file(dir + "/bad.csv", "order_id,product_id\n1,2\n2,\"3\n");
  EXPECT_NE(aft::run(aft::cli() + " cooccur --baskets " + dir + "/bad.csv --out " + dir + "/y.csv", nullptr, &err), 0);
  EXPECT_NE(err.find("bad.csv:3: unterminated"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/x.csv"));
  EXPECT_FALSE(aft::file_exists(dir + "/y.csv"));
}
}  // namespace
