// Rules over wide item indices, where rule generation looks subset counts up
// in both of its indexes: with 2^20 items a packed key holds at most 3 items
// (21 bits each), so 4+-item subsets go through the hash index over the item
// arrays. Reference: a brute force that counts every subset of every basket
// (baskets of <= 9 items) and builds every rule from those counts with the
// formulas of rules.h; itemsets and rules must be equal exactly (same double
// expressions, so bitwise equal measures).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>
#include <vector>

extern "C" {
#include "affinity.h"
}

namespace {
using Items = std::vector<int32_t>;

TEST(RulesWide, PackedAndHashedSubsetsMatchBruteForce) {
  std::mt19937 rng(3);
  const int32_t n_items = 1 << 20;
  // 12 "hot" item ids spread over the index range, so long itemsets recur.
  std::vector<int32_t> hot;
  for (int i = 0; i < 12; i++) hot.push_back((int32_t)(rng() % n_items));
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  const int n_baskets = 400;
  for (int b = 0; b < n_baskets; b++) {
    std::vector<int32_t> bk;
    for (int32_t h : hot)
      if (rng() % 100 < 45) bk.push_back(h);
    if (bk.size() > 9) bk.resize(9);
    if (rng() % 3 == 0) bk.push_back((int32_t)(rng() % n_items));
    items.insert(items.end(), bk.begin(), bk.end());
    off.push_back((int64_t)items.size());
  }
  af_baskets b{};
  af_error err{};
  ASSERT_EQ(af_baskets_from_arrays(n_baskets, n_items, off.data(), items.data(), &b, &err), AF_OK)
      << err.msg;
  // Brute force itemset counts.
  std::map<Items, int64_t> cnt;
  for (int64_t k = 0; k < b.n_baskets; k++) {
    Items bk(b.items + b.offsets[k], b.items + b.offsets[k + 1]);
    for (uint32_t m = 1; m < (1u << bk.size()); m++) {
      Items s;
      for (size_t i = 0; i < bk.size(); i++)
        if (m >> i & 1) s.push_back(bk[i]);
      cnt[s]++;
    }
  }
  const double sup = 0.02, conf = 0.3;
  const int64_t min_count = af_min_count_for_support(sup, b.n_baskets);
  std::map<Items, int64_t> freq;
  size_t longest = 0;
  for (auto &[s, c] : cnt)
    if (c >= min_count) {
      freq[s] = c;
      longest = std::max(longest, s.size());
    }
  ASSERT_GE(longest, 5u) << "the case must have itemsets beyond the packed width (3 items)";
  af_itemsets fi{};
  af_rules rs{};
  ASSERT_EQ(af_fpgrowth(&b, sup, 0, &fi, &err), AF_OK) << err.msg;
  std::map<Items, int64_t> got_sets;
  for (int64_t s = 0; s < fi.n_itemsets; s++)
    got_sets[Items(fi.items + fi.offsets[s], fi.items + fi.offsets[s + 1])] = fi.counts[s];
  EXPECT_EQ(got_sets, freq);
  af_rules_options o{conf, 0, 0, 0};
  ASSERT_EQ(af_rules_generate(&fi, &o, &rs, &err), AF_OK) << err.msg;
  using Key = std::pair<Items, Items>;
  std::map<Key, std::tuple<double, double, double, double>> want, got;
  const double n = (double)b.n_baskets;
  for (auto &[s, c] : freq) {
    if (s.size() < 2) continue;
    for (uint32_t m = 1; m + 1 < (1u << s.size()); m++) {
      Items a, cs;
      for (size_t i = 0; i < s.size(); i++) (m >> i & 1 ? a : cs).push_back(s[i]);
      double s_ab = (double)c / n, s_a = (double)freq.at(a) / n, s_c = (double)freq.at(cs) / n;
      double cf = s_ab / s_a;
      if (!(cf >= conf)) continue;
      want[{a, cs}] = {s_ab, cf, cf / s_c, s_ab - s_a * s_c};
    }
  }
  for (int64_t i = 0; i < rs.n_rules; i++) {
    int32_t a[32], c[32];
    int na = af_rule_side(&fi, &rs.rules[i], 0, a), nc = af_rule_side(&fi, &rs.rules[i], 1, c);
    const af_rule &r = rs.rules[i];
    got[{Items(a, a + na), Items(c, c + nc)}] = {r.support, r.confidence, r.lift, r.leverage};
  }
  EXPECT_GT(want.size(), 1000u);
  EXPECT_EQ(got.size(), (size_t)rs.n_rules) << "a rule was emitted twice";
  EXPECT_TRUE(got == want) << got.size() << " rules vs " << want.size() << " expected";
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  af_baskets_free(&b);
}

}  // namespace
