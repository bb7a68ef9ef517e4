// FP-growth itemsets and association rules against
//  - a brute force over every subset of items (small random basket sets),
//  - a depth-first bitset enumeration (Eclat-style, written here) on Groceries,
//  - mlxtend and pyfim fixtures (tools/reference/rules_reference.py),
//  - the published arules count on Groceries (support 0.001, confidence 0.5: 5,668 rules),
// and malformed inputs through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"

extern "C" {
#include <cjson/cJSON.h>

#include "affinity.h"
}

namespace {
using Items = std::vector<int32_t>;
struct RuleVal {
  int64_t count;
  double support, confidence, lift, leverage, conviction;
};
using RuleKey = std::pair<Items, Items>;  // (antecedent, consequent), each sorted
using RuleSet = std::map<RuleKey, RuleVal>;

RuleSet to_map(const af_itemsets &fi, const af_rules &rs) {
  RuleSet m;
  for (int64_t i = 0; i < rs.n_rules; i++) {
    int32_t a[32], c[32];
    int na = af_rule_side(&fi, &rs.rules[i], 0, a), nc = af_rule_side(&fi, &rs.rules[i], 1, c);
    const af_rule &r = rs.rules[i];
    m[{Items(a, a + na), Items(c, c + nc)}] = {r.count, r.support, r.confidence, r.lift, r.leverage,
                                               r.conviction};
  }
  return m;
}

// Brute-force rules from a table of itemset counts (itemset -> count), with
// the definitions of rules.h / mlxtend written out again.
RuleSet rules_from_counts(const std::map<Items, int64_t> &cnt, int64_t n, double min_conf,
                          double min_lift, int max_cons) {
  RuleSet out;
  for (auto &kv : cnt) {
    const Items &s = kv.first;
    int k = s.size();
    if (k < 2) continue;
    for (uint32_t mask = 1; mask + 1 < (1u << k); mask++) {
      Items a, c;
      for (int i = 0; i < k; i++) ((mask >> i) & 1 ? a : c).push_back(s[i]);
      if (max_cons && (int)c.size() > max_cons) continue;
      double sab = (double)kv.second / n, sa = (double)cnt.at(a) / n, sc = (double)cnt.at(c) / n;
      double conf = sab / sa, lift = conf / sc;
      if (!(conf >= min_conf)) continue;
      if (min_lift > 0 && !(lift >= min_lift)) continue;
      double conv = conf < 1 ? (1 - sc) / (1 - conf) : INFINITY;
      out[{a, c}] = {kv.second, sab, conf, lift, sab - sa * sc, conv};
    }
  }
  return out;
}

// Exact equality: both sides evaluate the same IEEE double expressions on the
// same integer counts, so any difference is a bug (a wrong count or formula).
void expect_same(const RuleSet &got, const RuleSet &want) {
  ASSERT_EQ(got.size(), want.size());
  auto g = got.begin();
  for (auto &w : want) {
    ASSERT_EQ(g->first, w.first);
    EXPECT_EQ(g->second.count, w.second.count);
    EXPECT_EQ(g->second.support, w.second.support);
    EXPECT_EQ(g->second.confidence, w.second.confidence);
    EXPECT_EQ(g->second.lift, w.second.lift);
    EXPECT_EQ(g->second.leverage, w.second.leverage);
    EXPECT_EQ(g->second.conviction, w.second.conviction);
    ++g;
  }
}

struct Mined {
  af_itemsets fi{};
  af_rules rs{};
  ~Mined() {
    af_rules_free(&rs);
    af_itemsets_free(&fi);
  }
};

void mine(const af_baskets &b, double sup, int max_len, af_rules_options ro, Mined *m) {
  af_error err{};
  ASSERT_EQ(af_fpgrowth(&b, sup, max_len, &m->fi, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_rules_generate(&m->fi, &ro, &m->rs, &err), AF_OK) << err.msg;
}

std::map<Items, int64_t> itemset_map(const af_itemsets &fi) {
  std::map<Items, int64_t> m;
  for (int64_t s = 0; s < fi.n_itemsets; s++) {
    Items it(fi.items + fi.offsets[s], fi.items + fi.offsets[s + 1]);
    EXPECT_TRUE(m.emplace(it, fi.counts[s]).second) << "itemset emitted twice";
  }
  return m;
}

TEST(Rules, MinCountRounding) {
  EXPECT_EQ(af_min_count_for_support(0.07, 100), 7);  // 0.07*100 = 7.000000000000001 in double
  EXPECT_EQ(af_min_count_for_support(0.001, 9835), 10);
  EXPECT_EQ(af_min_count_for_support(0.5, 3), 2);
  EXPECT_EQ(af_min_count_for_support(1.0, 5), 5);
  EXPECT_EQ(af_min_count_for_support(1e-9, 5), 1);
  for (int64_t n : {7, 100, 9835, 10166})
    for (double s : {0.001, 0.003, 0.01, 0.07, 0.1, 0.3, 0.29}) {
      int64_t c = af_min_count_for_support(s, n);
      EXPECT_GE((double)c / n, s);
      if (c > 1) {
        EXPECT_LT((double)(c - 1) / n, s);
      }
    }
}

// Every subset of n_items items counted by scanning every basket.
TEST(Rules, RandomBasketsEqualBruteForceOverAllSubsets) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 24; trial++) {
    int n_items = 4 + trial % 9;  // up to 12 items: 4096 subsets
    int n_baskets = 20 + (int)(rng() % 80);
    std::vector<int64_t> off{0};
    std::vector<int32_t> items;
    std::vector<uint32_t> bmask;
    double density = 0.2 + 0.05 * (trial % 8);
    for (int b = 0; b < n_baskets; b++) {
      uint32_t m = 0;
      for (int i = 0; i < n_items; i++)
        if (std::uniform_real_distribution<double>(0, 1)(rng) < density) m |= 1u << i;
      // Items in a random order, one repeated, to exercise the cleaning.
      std::vector<int32_t> row;
      for (int i = 0; i < n_items; i++)
        if (m >> i & 1) row.push_back(i);
      std::shuffle(row.begin(), row.end(), rng);
      if (!row.empty()) row.push_back(row[0]);
      items.insert(items.end(), row.begin(), row.end());
      off.push_back(items.size());
      bmask.push_back(m);
    }
    af_baskets bk{};
    af_error err{};
    ASSERT_EQ(af_baskets_from_arrays(n_baskets, n_items, off.data(), items.data(), &bk, &err), AF_OK);
    double sup = std::vector<double>{0.05, 0.1, 0.15, 0.3}[trial % 4];
    int max_len = std::vector<int>{0, 0, 3, 2}[trial % 4];
    int max_cons = trial % 3 == 0 ? 1 : 0;
    double conf = std::vector<double>{0.0, 0.3, 0.6}[trial % 3];
    double lift = trial % 5 == 0 ? 1.1 : 0;
    // Brute force: all 2^n_items - 1 non-empty subsets.
    std::map<Items, int64_t> cnt;
    for (uint32_t s = 1; s < (1u << n_items); s++) {
      int64_t c = 0;
      for (uint32_t m : bmask) c += (m & s) == s;
      int len = __builtin_popcount(s);
      if ((double)c / n_baskets >= sup && (max_len == 0 || len <= max_len)) {
        Items it;
        for (int i = 0; i < n_items; i++)
          if (s >> i & 1) it.push_back(i);
        cnt[it] = c;
      }
    }
    Mined m;
    mine(bk, sup, max_len, {conf, lift, max_cons, 0}, &m);
    EXPECT_EQ(itemset_map(m.fi), cnt) << "trial " << trial;
    expect_same(to_map(m.fi, m.rs), rules_from_counts(cnt, n_baskets, conf, lift, max_cons));
    af_baskets_free(&bk);
  }
}

// Depth-first enumeration over item bitsets: extend an itemset with each later
// item while the intersection of basket bitsets keeps count >= min_count.
void dfs(const std::vector<std::vector<uint64_t>> &bits, int64_t min_count, int max_len, Items &cur,
         const std::vector<uint64_t> &acc, int from, std::map<Items, int64_t> *out) {
  for (int i = from; i < (int)bits.size(); i++) {
    std::vector<uint64_t> nx(acc.size());
    int64_t c = 0;
    for (size_t w = 0; w < acc.size(); w++) c += __builtin_popcountll(nx[w] = acc[w] & bits[i][w]);
    if (c < min_count) continue;
    cur.push_back(i);
    (*out)[cur] = c;
    if (max_len == 0 || (int)cur.size() < max_len) dfs(bits, min_count, max_len, cur, nx, i + 1, out);
    cur.pop_back();
  }
}

std::map<Items, int64_t> bitset_itemsets(const af_baskets &b, double sup, int max_len) {
  size_t words = (b.n_baskets + 63) / 64;
  std::vector<std::vector<uint64_t>> bits(b.n_items, std::vector<uint64_t>(words));
  for (int64_t k = 0; k < b.n_baskets; k++)
    for (int64_t j = b.offsets[k]; j < b.offsets[k + 1]; j++) bits[b.items[j]][k / 64] |= 1ull << (k % 64);
  int64_t min_count = (int64_t)std::ceil(sup * b.n_baskets);
  while (min_count > 1 && (double)(min_count - 1) / b.n_baskets >= sup) min_count--;
  while ((double)min_count / b.n_baskets < sup) min_count++;
  std::map<Items, int64_t> out;
  Items cur;
  std::vector<uint64_t> all(words, ~0ull);
  dfs(bits, min_count, max_len, cur, all, 0, &out);
  return out;
}

struct Groceries {
  af_baskets b{};
  Groceries() {
    af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
    af_error err{};
    std::string p = aft::shared_dir() + "/groceries/groceries.csv";
    EXPECT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  }
  ~Groceries() { af_baskets_free(&b); }
  std::string name(int32_t i) const { return b.item_ids[i]; }
};

TEST(Rules, GroceriesEqualsBitsetEnumeration) {
  Groceries g;
  ASSERT_EQ(g.b.n_baskets, 9835);
  ASSERT_EQ(g.b.n_items, 169);
  for (auto [sup, max_len, conf, max_cons] :
       std::vector<std::tuple<double, int, double, int>>{{0.002, 0, 0.2, 0}, {0.001, 0, 0.5, 1}, {0.0005, 3, 0.4, 0}}) {
    std::map<Items, int64_t> cnt = bitset_itemsets(g.b, sup, max_len);
    Mined m;
    mine(g.b, sup, max_len, {conf, 0, max_cons, 0}, &m);
    EXPECT_EQ(itemset_map(m.fi), cnt) << "support " << sup;
    expect_same(to_map(m.fi, m.rs), rules_from_counts(cnt, g.b.n_baskets, conf, 0, max_cons));
  }
}

std::vector<std::vector<std::string>> read_csv_rows(const std::string &path) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::vector<std::string>> rows;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    // Fixture fields never hold commas inside quotes except item names: split on
    // the csv module's quoting.
    std::vector<std::string> row;
    std::string cur;
    bool q = false;
    for (size_t i = 0; i < line.size(); i++) {
      char c = line[i];
      if (q) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', i++;
        else if (c == '"') q = false;
        else cur += c;
      } else if (c == '"') q = true;
      else if (c == ',') row.push_back(cur), cur.clear();
      else cur += c;
    }
    row.push_back(cur);
    rows.push_back(row);
  }
  return rows;
}

std::string join_names(const std::vector<std::string> &names) {
  std::string s;
  for (auto &n : names) s += (s.empty() ? "" : "|") + n;
  return s;
}

// Rules keyed by "ante names" -> "cons names" (each sorted by name, as the fixtures are).
std::map<std::pair<std::string, std::string>, RuleVal> by_names(const RuleSet &rs, char **ids) {
  std::map<std::pair<std::string, std::string>, RuleVal> m;
  for (auto &kv : rs) {
    std::vector<std::string> a, c;
    for (auto i : kv.first.first) a.push_back(ids[i]);
    for (auto i : kv.first.second) c.push_back(ids[i]);
    std::sort(a.begin(), a.end());
    std::sort(c.begin(), c.end());
    m[{join_names(a), join_names(c)}] = kv.second;
  }
  return m;
}

// mlxtend computes the same IEEE expressions from the same counts; 1e-12
// relative allows for numpy evaluating them in another order.
void expect_close(double got, double want, const char *what) {
  if (std::isinf(want)) {
    EXPECT_TRUE(std::isinf(got)) << what;
    return;
  }
  EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, std::fabs(want))) << what;
}

void check_mlxtend_fixture(const af_baskets &b, const std::string &fixture, double sup, double conf) {
  Mined m;
  mine(b, sup, 0, {conf, 0, 0, 0}, &m);
  auto got = by_names(to_map(m.fi, m.rs), b.item_ids);
  auto rows = read_csv_rows(aft::source_dir() + "/tests/data/" + fixture);
  ASSERT_EQ(got.size(), rows.size());
  for (auto &r : rows) {
    auto it = got.find({r[0], r[1]});
    ASSERT_NE(it, got.end()) << r[0] << " -> " << r[1];
    EXPECT_EQ(it->second.count, std::stoll(r[2]));
    expect_close(it->second.support, std::stod(r[3]), "support");
    expect_close(it->second.confidence, std::stod(r[4]), "confidence");
    expect_close(it->second.lift, std::stod(r[5]), "lift");
    expect_close(it->second.leverage, std::stod(r[6]), "leverage");
    expect_close(it->second.conviction, r[7] == "inf" ? INFINITY : std::stod(r[7]), "conviction");
  }
}

TEST(Rules, GroceriesMatchesMlxtend) {
  Groceries g;
  check_mlxtend_fixture(g.b, "rules_groceries_mlxtend.csv", 0.005, 0.3);
}

TEST(Rules, InstacartMatchesMlxtend) {
  af_baskets b{};
  af_baskets_options o{"long", "order_id", "product_id", ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/instacart/order_products__train_head.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  check_mlxtend_fixture(b, "rules_instacart_mlxtend.csv", 0.003, 0.1);
  af_baskets_free(&b);
}

// arules (R) reports 5,668 rules for apriori(Groceries, support 0.001,
// confidence 0.5); pyfim's arules (one-item consequents) gives the same set.
TEST(Rules, GroceriesArulesCountAndPyfimRules) {
  Groceries g;
  Mined m;
  mine(g.b, 0.001, 0, {0.5, 0, 1, 0}, &m);
  EXPECT_EQ(m.rs.n_rules, 5668);
  auto got = by_names(to_map(m.fi, m.rs), g.b.item_ids);
  auto rows = read_csv_rows(aft::source_dir() + "/tests/data/rules_groceries_pyfim.csv");
  ASSERT_EQ(rows.size(), 5668u);
  for (auto &r : rows) {
    auto it = got.find({r[0], r[1]});
    ASSERT_NE(it, got.end()) << r[0] << " -> " << r[1];
    EXPECT_EQ(it->second.count, std::stoll(r[2]));
    // pyfim computes in its own order of operations: relative 1e-12.
    expect_close(it->second.confidence, std::stod(r[3]), "confidence");
    expect_close(it->second.lift, std::stod(r[4]), "lift");
  }
}

TEST(Rules, SortedAndMaxRulesKeepsThePrefix) {
  Groceries g;
  Mined all, top;
  mine(g.b, 0.002, 0, {0.2, 0, 0, 0}, &all);
  mine(g.b, 0.002, 0, {0.2, 0, 0, 100}, &top);
  ASSERT_GT(all.rs.n_rules, 100);
  ASSERT_EQ(top.rs.n_rules, 100);
  for (int64_t i = 0; i < 100; i++) {
    EXPECT_EQ(top.rs.rules[i].itemset, all.rs.rules[i].itemset);
    EXPECT_EQ(top.rs.rules[i].ante_mask, all.rs.rules[i].ante_mask);
  }
  for (int64_t i = 1; i < all.rs.n_rules; i++) {
    const af_rule &p = all.rs.rules[i - 1], &q = all.rs.rules[i];
    ASSERT_TRUE(p.lift > q.lift || (p.lift == q.lift && p.confidence >= q.confidence)) << i;
  }
}

// ---- the CLI ------------------------------------------------------------------

TEST(RulesCli, JsonlAndCsvOutputs) {
  std::string dir = aft::temp_dir("rules-cli");
  std::string g = aft::shared_dir() + "/groceries/groceries.csv";
  std::string base = aft::cli() + " rules --baskets " + g +
                     " --baskets-format lines --min-support 0.001 --min-confidence 0.5 --max-consequent 1";
  std::string err;
  ASSERT_EQ(aft::run(base + " --out " + dir + "/r.jsonl", nullptr, &err), 0) << err;
  ASSERT_EQ(aft::run(base + " --out " + dir + "/r.csv", nullptr, &err), 0) << err;
  EXPECT_NE(err.find("9835 baskets"), std::string::npos) << err;
  std::istringstream js(aft::read_file(dir + "/r.jsonl"));
  std::string line;
  int n = 0;
  double prev_lift = INFINITY;
  while (std::getline(js, line)) {
    cJSON *o = cJSON_Parse(line.c_str());
    ASSERT_NE(o, nullptr) << line;
    ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(o, "antecedent")));
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(o, "consequent")), 1);
    double lift = cJSON_GetObjectItem(o, "lift")->valuedouble;
    EXPECT_LE(lift, prev_lift);
    prev_lift = lift;
    cJSON *conv = cJSON_GetObjectItem(o, "conviction");
    double conf = cJSON_GetObjectItem(o, "confidence")->valuedouble;
    if (conf == 1.0) EXPECT_TRUE(cJSON_IsNull(conv)) << line;
    else EXPECT_TRUE(cJSON_IsNumber(conv)) << line;
    EXPECT_GE(cJSON_GetObjectItem(o, "count")->valuedouble, 10);
    cJSON_Delete(o);
    n++;
  }
  EXPECT_EQ(n, 5668);
  auto rows = read_csv_rows(dir + "/r.csv");
  EXPECT_EQ(rows.size(), 5668u);
  // arules' top rule by lift on Groceries at these thresholds:
  // {Instant food products, soda} => {hamburger meat}, lift 18.99565.
  EXPECT_EQ(rows[0][0], "soda | Instant food products");
  EXPECT_EQ(rows[0][1], "hamburger meat");
  EXPECT_NEAR(std::stod(rows[0][4]), 18.99565, 1e-5);  // 7 significant digits as published
}

struct BadCase {
  const char *name;
  std::string baskets;
  std::string catalog;  // empty: no catalog
  std::string extra_flags;
  std::string want;     // substring of stderr, after the file name
};

TEST(RulesCli, MalformedInputsFailCleanly) {
  std::string header = "order_id,product_id,add_to_cart_order,reordered\n";
  std::vector<BadCase> cases = {
      {"unbalanced_quote", header + "1,10,1,0\n2,\"11,2,0\n3,12,1,0\n", "", "", ":3: unterminated"},
      {"wrong_columns", header + "1,10,1,0\n1,11,2\n", "", "", ":3: expected 4 fields"},
      {"invalid_utf8", header + "1,10,1,0\n1,1\xff,2,0\n", "", "", ":3: invalid UTF-8"},
      {"unknown_product", header + "1,1,1,0\n1,99999999,2,0\n",
       "product_id,product_name\n1,Milk\n2,Bread\n", "", ":3: unknown product id '99999999'"},
      {"empty_file", "", "", "", "empty file"},
      {"header_only", header, "", "", "no rows after the header"},
      {"missing_column", "order,product_id\n1,2\n", "", "", "no column 'order_id' (columns: order, product_id)"},
      {"missing_item_column", header + "1,2,1,0\n", "", "--item-column sku", "no column 'sku'"},
      {"duplicate_catalog_id", header + "1,1,1,0\n", "product_id,product_name\n1,Milk\n2,Bread\n1,Eggs\n",
       "", ":4: duplicate id '1' (first on line 2)"},
      {"bad_catalog_quote", header + "1,1,1,0\n", "product_id,product_name\n1,\"Milk\n", "",
       ":2: unterminated"},
  };
  for (auto &c : cases) {
    std::string dir = aft::temp_dir(std::string("bad-") + c.name);
    std::string bp = dir + "/baskets.csv", cp = dir + "/catalog.csv", out = dir + "/rules.csv";
    aft::write_file(bp, c.baskets);
    std::string cmd = aft::cli() + " rules --baskets " + bp + " --min-support 0.1 --min-confidence 0.1 --out " + out +
                      " " + c.extra_flags;
    if (!c.catalog.empty()) {
      aft::write_file(cp, c.catalog);
      cmd += " --catalog " + cp;
    }
    std::string err;
    int rc = aft::run(cmd, nullptr, &err);
    EXPECT_NE(rc, 0) << c.name;
    EXPECT_LT(rc, 128) << c.name << ": crashed";
    // The error names the file at fault: the catalog for catalog cases, else the baskets.
    std::string file = std::string(c.name).find("catalog") != std::string::npos ? cp : bp;
    EXPECT_NE(err.find(file), std::string::npos) << c.name << ": " << err;
    EXPECT_NE(err.find(c.want), std::string::npos) << c.name << ": " << err;
    auto files = aft::list_dir(dir);
    EXPECT_FALSE(aft::file_exists(out)) << c.name;
    for (auto &f : files) EXPECT_EQ(f.find("rules.csv"), std::string::npos) << c.name << ": left " << f;
  }
}

TEST(RulesCli, BadFlagsFail) {
  std::string g = aft::shared_dir() + "/groceries/groceries.csv";
  std::string err;
  EXPECT_NE(aft::run(aft::cli() + " rules --baskets " + g + " --min-support 0.01 --min-confidence 0.5 --out /tmp/x.txt", nullptr, &err), 0);
  EXPECT_NE(err.find(".csv or .jsonl"), std::string::npos) << err;
  EXPECT_NE(aft::run(aft::cli() + " rules --baskets " + g + " --min-support 0 --min-confidence 0.5 --out /tmp/x.csv", nullptr, &err), 0);
  EXPECT_NE(aft::run(aft::cli() + " rules --baskets " + g + " --min-confidence 0.5 --out /tmp/x.csv", nullptr, &err), 0);
  EXPECT_NE(err.find("--min-support"), std::string::npos) << err;
}
}  // namespace
