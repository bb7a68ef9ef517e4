// Memory budgets (engine/base/budget.h): pathological inputs whose itemsets,
// rules or co-occurrence pairs explode stop with a message naming the flag
// that bounds them, before the allocation, and leave no output file. Each
// case here would need gigabytes to terabytes without the budget (the sizes
// are stated at each case); with a 64 MiB limit they stop within a second.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

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

// ---- fusion (engine/assoc/fuse.c) ----------------------------------------------

// A catalog of n products, their embeddings (d 4, written by affinity) and
// baskets (lines format, catalog ids): `full` baskets holding every product,
// plus one basket of the first two.
struct FusionFiles {
  std::string dir, catalog, baskets, emb;
  FusionFiles(const std::string &tag, int n, int full) {
    dir = aft::temp_dir(tag);
    catalog = dir + "/products.csv", baskets = dir + "/baskets.txt", emb = dir + "/emb.h5";
    std::string c = "product_id,product_name\n", all, b;
    std::vector<std::string> ids;
    for (int i = 0; i < n; i++) {
      ids.push_back("p" + std::to_string(i));
      c += ids.back() + ",product " + std::to_string(i) + "\n";
      all += (i ? "," : "") + ids.back();
    }
    aft::write_file(catalog, c);
    for (int k = 0; k < full; k++) b += all + "\n";
    aft::write_file(baskets, b + "p0,p1\n");
    std::vector<char *> idp;
    for (auto &s : ids) idp.push_back(const_cast<char *>(s.c_str()));
    std::vector<float> x((size_t)n * 4);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < 4; j++) x[(size_t)i * 4 + j] = (float)((i * 7 + j * 3) % 11) + 1;
    af_embeddings e = {};
    e.n = n, e.d = 4, e.ids = idp.data(), e.emb = x.data();
    e.model = const_cast<char *>("budget"), e.pooling = const_cast<char *>("mean");
    af_error err{};
    EXPECT_EQ(af_embeddings_write(emb.c_str(), &e, &err), AF_OK) << err.msg;
  }
  std::string cmd() const {
    return aft::cli() + " associate --catalog '" + catalog +
           "' --id-column product_id --text-column product_name --baskets '" + baskets +
           "' --baskets-format lines --embeddings '" + emb + "' --threads 1";
  }
};

// 3,000 products with --sub-pool 2000: the substitute pools alone are
// 3,000 x 2,000 x 12 bytes = 72 MB, over a 16 MiB limit.
TEST(Budget, FusionPoolsNameTheFlags) {
  FusionFiles f("budget-fuse-pools", 3000, 0);
  expect_budget_error(f.cmd() + " --sub-pool 2000 --memory-limit 16M", f.dir + "/a.csv",
                      {"fusion (3000 products, 2000 text neighbours each", "--sub-pool",
                       "--memory-limit"});
  std::string err;  // the same input within the limit's reach runs
  EXPECT_EQ(aft::run(f.cmd() + " --sub-pool 20 --memory-limit 64M --out '" + f.dir + "/ok.csv'",
                     nullptr, &err), 0) << err;
}

// 2 baskets of 3,000 products: every pair is stored (fusion counts pairs at
// any count), 9e6 entries x 12 bytes = 108 MB, over a 16 MiB limit.
TEST(Budget, FusionPairsNameTheFlag) {
  FusionFiles f("budget-fuse-pairs", 3000, 2);
  expect_budget_error(f.cmd() + " --sub-pool 5 --memory-limit 16M", f.dir + "/a.csv",
                      {"every pair bought together", "largest baskets", "--memory-limit"});
}

// The default limit (half the RAM, or $AF_MEMORY_LIMIT) protects a caller
// that sets none: a catalog sized so that its substitute pools alone need
// twice the default stops before any allocation, within a second (the
// embeddings, d 1, are a lazily zeroed calloc never touched).
TEST(Budget, FusionDefaultLimitStopsBeforeAllocating) {
  const int64_t limit = af_memory_limit_default();
  const int pool = 2000;
  const int64_t N = 2 * limit / (12 * pool) + 1;
  ASSERT_LT(N, (int64_t)INT32_MAX);
  float *emb = static_cast<float *>(calloc((size_t)N, sizeof(float)));
  ASSERT_NE(emb, nullptr);
  int64_t off[1] = {0};
  int32_t none[1] = {0};
  af_baskets b{};
  af_error err{};
  ASSERT_EQ(af_baskets_from_arrays(0, (int32_t)N, off, none, &b, &err), AF_OK) << err.msg;
  af_fuse_options o;
  af_fuse_default_options(&o);
  o.sub_pool = pool;
  af_fuse_input in = {N, 1, emb, &b, 0, nullptr};
  af_fuse_result r{};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(af_fuse_run(&o, &in, &r, &err), AF_ERR_LIMIT);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0);
  EXPECT_NE(std::string(err.msg).find("--memory-limit"), std::string::npos) << err.msg;
  EXPECT_NE(std::string(err.msg).find("--sub-pool"), std::string::npos) << err.msg;
  EXPECT_EQ(r.n, 0);
  af_baskets_free(&b);
  free(emb);
}

// A budget refusal has its own status, AF_ERR_LIMIT (fusion tells it from a
// failed allocation by the code, not by the message): co-occurrence of one
// 300-item basket (44,850 pairs, 359 KB of CSR) within 64 KiB.
TEST(Budget, RefusalIsAfErrLimitNotNomem) {
  std::vector<int32_t> items(300);
  for (int i = 0; i < 300; i++) items[i] = i;
  int64_t off[2] = {0, 300};
  af_baskets b{};
  af_error err{};
  ASSERT_EQ(af_baskets_from_arrays(1, 300, off, items.data(), &b, &err), AF_OK) << err.msg;
  af_cooccur co{};
  EXPECT_EQ(af_cooccur_build_limited(&b, 1, 64 << 10, &co, &err), AF_ERR_LIMIT);
  EXPECT_NE(std::string(err.msg).find("--memory-limit"), std::string::npos) << err.msg;
  EXPECT_STREQ(af_status_name(AF_ERR_LIMIT), "memory limit");
  EXPECT_EQ(af_cooccur_build_limited(&b, 1, 64 << 20, &co, &err), AF_OK) << err.msg;
  EXPECT_EQ(co.offsets[300], 2 * 44850);
  af_cooccur_free(&co);
  af_baskets_free(&b);
}

}  // namespace
