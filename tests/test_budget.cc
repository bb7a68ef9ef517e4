// Memory budgets (engine/base/budget.h): pathological inputs whose itemsets,
// rules or co-occurrence pairs explode stop with a message naming the flag
// that bounds them, before the allocation, and leave no output file. Each
// case here would need gigabytes to terabytes without the budget (the sizes
// are stated at each case); with a 64 MiB limit they stop within a second.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {

// n baskets, each holding items i0 .. i(m-1).
std::string identical_baskets(const std::string &dir, int n, int m) {
  std::string path = dir + "/same_" + std::to_string(n) + "x" + std::to_string(m) + ".txt", text;
  for (int b = 0; b < n; b++) {
    for (int i = 0; i < m; i++) text += (i ? "," : "") + std::string("i") + std::to_string(i);
    text += "\n";
  }
  aft::write_file(path, text);
  return path;
}

// Runs the CLI; expects exit 1, every string of `want` in stderr, no file at out.
void expect_budget_error(const std::string &cmd, const std::string &out,
                         const std::vector<std::string> &want) {
  std::string err;
  int rc = aft::run(cmd + " --out '" + out + "'", nullptr, &err);
  EXPECT_EQ(rc, 1) << err;
  for (auto &w : want) EXPECT_NE(err.find(w), std::string::npos) << "missing '" << w << "' in: " << err;
  EXPECT_FALSE(aft::file_exists(out));
}

TEST(Budget, ParseAndDefault) {
  int64_t v = 0;
  af_error err{};
  EXPECT_EQ(af_memory_limit_parse("64M", &v, &err), AF_OK);
  EXPECT_EQ(v, 64ll << 20);
  EXPECT_EQ(af_memory_limit_parse("8GiB", &v, &err), AF_OK);
  EXPECT_EQ(v, 8ll << 30);
  EXPECT_EQ(af_memory_limit_parse("2t", &v, &err), AF_OK);
  EXPECT_EQ(v, 2ll << 40);
  EXPECT_EQ(af_memory_limit_parse("1048576", &v, &err), AF_OK);
  EXPECT_EQ(v, 1ll << 20);
  for (const char *bad : {"", "abc", "12Q", "-5G", "1K", "99999999999999999999"})
    EXPECT_EQ(af_memory_limit_parse(bad, &v, &err), AF_ERR_ARG) << bad;
  EXPECT_GE(af_memory_limit_default(), 256ll << 20);
  char buf[32];
  EXPECT_STREQ(af_format_bytes(3ll << 29, buf), "1.5 GiB");
}

// 40 identical baskets of 60 items at support 0.5: every one of the 2^60 - 1
// subsets is frequent (exabytes of itemsets).
TEST(Budget, RulesItemsetExplosionNamesTheFlags) {
  std::string dir = aft::temp_dir("budget-itemsets");
  std::string b = identical_baskets(dir, 40, 60);
  std::string cmd = aft::cli() + " rules --baskets '" + b +
                    "' --baskets-format lines --min-support 0.5 --min-confidence 0.5";
  expect_budget_error(cmd + " --memory-limit 64M", dir + "/r.csv",
                      {"frequent itemsets", "limit 64.0 MiB", "--max-len", "--memory-limit"});
  expect_budget_error(cmd + " --max-itemsets 1000", dir + "/r.csv",
                      {"more than 1000 frequent itemsets", "--max-itemsets"});
  // The default limit (here set through the environment, as a run would on a
  // small machine) applies without any flag.
  expect_budget_error("AF_MEMORY_LIMIT=64M " + cmd, dir + "/r.csv", {"limit 64.0 MiB", "--max-len"});
  std::string err;
  EXPECT_NE(aft::run(cmd + " --memory-limit lots --out '" + dir + "/r.csv'", nullptr, &err), 0);
  EXPECT_NE(err.find("--memory-limit"), std::string::npos) << err;
}

// 16 identical items: 65,535 itemsets fit easily, but they split into
// 3^16 - 2^17 + 1 = 42.9 million rules (~11 GB of candidates and sort keys).
TEST(Budget, RuleExplosionNamesTheFlags) {
  std::string dir = aft::temp_dir("budget-rules");
  std::string b = identical_baskets(dir, 10, 16);
  std::string cmd = aft::cli() + " rules --baskets '" + b +
                    "' --baskets-format lines --min-support 0.5 --min-confidence 0.5 "
                    "--memory-limit 64M";
  expect_budget_error(cmd, dir + "/r.csv", {"association rules", "--max-consequent", "--memory-limit"});
  // Bounded by the flags the message names, the same input succeeds.
  std::string err;
  EXPECT_EQ(aft::run(cmd + " --max-len 3 --out '" + dir + "/ok.csv'", nullptr, &err), 0) << err;
}

// 3 baskets of 20,000 distinct items: 2e8 pairs, ~4.8 GB of pair lists.
TEST(Budget, CooccurHugeBasketsNamesTheFlags) {
  std::string dir = aft::temp_dir("budget-cooccur");
  std::string b = identical_baskets(dir, 3, 20000);
  expect_budget_error(aft::cli() + " cooccur --baskets '" + b +
                          "' --baskets-format lines --memory-limit 64M",
                      dir + "/p.csv", {"co-occurrence pairs", "--min-count", "--memory-limit"});
}

}  // namespace
