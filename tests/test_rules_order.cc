// The rules' output order (rules.h): lift desc, confidence desc, count desc,
// then antecedent items, then consequent items (lexicographic by item index).
// Reference: std::sort of the same rules with that comparison written out
// directly, on cases with many ties (Groceries at low support: 101,266 rules
// share 7,687 lifts; every split and one-item consequents; max_rules prefix;
// Instacart with 17k items, so the packed tie keys use 15-bit symbols).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {

struct Flat {
  double lift, conf;
  int64_t count;
  std::vector<int32_t> a, c;
  int64_t itemset;
  uint32_t mask;
};

Flat flat(const af_itemsets &fi, const af_rule &r) {
  int32_t a[32], c[32];
  int na = af_rule_side(&fi, &r, 0, a), nc = af_rule_side(&fi, &r, 1, c);
  return {r.lift, r.confidence, r.count, {a, a + na}, {c, c + nc}, r.itemset, r.ante_mask};
}

bool spec_less(const Flat &x, const Flat &y) {
  if (x.lift != y.lift) return x.lift > y.lift;
  if (x.conf != y.conf) return x.conf > y.conf;
  if (x.count != y.count) return x.count > y.count;
  if (x.a != y.a) return x.a < y.a;  // std::vector: lexicographic
  return x.c < y.c;
}

void check_order(const af_baskets &b, double sup, double conf, int max_cons, int64_t max_rules) {
  af_error err{};
  af_itemsets fi{};
  af_rules all{}, top{};
  ASSERT_EQ(af_fpgrowth(&b, sup, 0, &fi, &err), AF_OK) << err.msg;
  af_rules_options o{conf, 0, max_cons, 0};
  ASSERT_EQ(af_rules_generate(&fi, &o, &all, &err), AF_OK) << err.msg;
  std::vector<Flat> got, want;
  for (int64_t i = 0; i < all.n_rules; i++) got.push_back(flat(fi, all.rules[i]));
  want = got;
  std::sort(want.begin(), want.end(), spec_less);
  ASSERT_GT(got.size(), 1000u);
  size_t ties = 0;
  for (size_t i = 0; i < got.size(); i++) {
    ASSERT_EQ(got[i].itemset, want[i].itemset) << "position " << i;
    ASSERT_EQ(got[i].mask, want[i].mask) << "position " << i;
    if (i && got[i].lift == got[i - 1].lift && got[i].conf == got[i - 1].conf &&
        got[i].count == got[i - 1].count)
      ties++;
  }
  EXPECT_GT(ties, got.size() / 10) << "the case should exercise the item tie-break";
  if (max_rules) {
    o.max_rules = max_rules;
    ASSERT_EQ(af_rules_generate(&fi, &o, &top, &err), AF_OK) << err.msg;
    ASSERT_EQ(top.n_rules, max_rules);
    for (int64_t i = 0; i < max_rules; i++) {
      EXPECT_EQ(top.rules[i].itemset, all.rules[i].itemset);
      EXPECT_EQ(top.rules[i].ante_mask, all.rules[i].ante_mask);
    }
  }
  af_rules_free(&top);
  af_rules_free(&all);
  af_itemsets_free(&fi);
}

TEST(RulesOrder, GroceriesManyTies) {
  af_baskets b{};
  af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/groceries/groceries.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  check_order(b, 0.0005, 0.3, 0, 5000);
  check_order(b, 0.0005, 0.3, 1, 0);
  af_baskets_free(&b);
}

TEST(RulesOrder, InstacartWideItemIndices) {
  af_baskets b{};
  af_baskets_options o{nullptr, nullptr, nullptr, ',', 0};
  af_error err{};
  std::string p = aft::shared_dir() + "/instacart/order_products__train_head.csv";
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, nullptr, &err), AF_OK) << err.msg;
  check_order(b, 0.0005, 0.05, 0, 0);
  af_baskets_free(&b);
}

}  // namespace
