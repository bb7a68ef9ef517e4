// A full disk, through the CLI: each command runs under RLIMIT_FSIZE (the
// shell's `ulimit -f`, with SIGXFSZ ignored so that a write past the limit
// fails with EFBIG, as on a full disk) after an earlier run of the same
// command succeeded. Each must exit 1 with an error message (not a signal, not
// a crash in HDF5's exit handler), leave no temporary file, and leave the
// previous outputs byte for byte as they were. Limits are chosen below each
// command's output size, at several sizes so that the failure hits different
// stages (file creation, datasets, the digest, the rename).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "io/digest.h"
}

namespace {

std::string q(const std::string &s) { return "'" + s + "'"; }

std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> s;
  for (auto &n : aft::list_dir(dir)) s[n] = aft::read_file(dir + "/" + n);
  return s;
}

// cmd under a file-size limit of kib KiB (stderr goes to a file under the same
// limit; our messages are far below it).
std::string limited(const std::string &cmd, int kib) {
  std::string inner = "trap '' XFSZ; ulimit -f " + std::to_string(kib) + "; exec " + cmd, quoted;
  for (char c : inner) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "bash -c '" + quoted + "'";
}

// Runs cmd under each limit; out_dir is compared with its state before, except
// for the names in `volatile_files` (written whole, atomically, on every run).
// rewritten_ok: a multi-stage command (run) may complete some stages first.
void expect_clean_failures(const std::string &cmd, const std::string &out_dir,
                           const std::vector<int> &limits_kib,
                           const std::vector<std::string> &volatile_files = {},
                           bool rewritten_ok = false) {
  auto before = snapshot(out_dir);
  ASSERT_FALSE(before.empty());
  for (const std::string &v : volatile_files) before.erase(v);
  for (int kib : limits_kib) {
    SCOPED_TRACE("ulimit -f " + std::to_string(kib));
    std::string err;
    int rc = aft::run(limited(cmd, kib), nullptr, &err);
    EXPECT_EQ(rc, 1) << err;
    EXPECT_NE(err.find("error"), std::string::npos) << err;
    for (const char *crash : {"Segmentation", "AddressSanitizer", "core dumped", "HDF5-DIAG"})
      EXPECT_EQ(err.find(crash), std::string::npos) << err;
    auto after = snapshot(out_dir);
    for (const std::string &v : volatile_files) after.erase(v);
    for (auto &kv : after) EXPECT_EQ(kv.first.find(".tmp."), std::string::npos) << kv.first;
    EXPECT_EQ(after.size(), before.size());
    for (auto &kv : before) {
      auto it = after.find(kv.first);
      ASSERT_NE(it, after.end()) << kv.first << " disappeared";
      if (it->second == kv.second) continue;
      // Rewritten by a stage that completed before the failing one: then it
      // must be whole (a rerun of a stage may write other bytes, e.g. a
      // different run.json; the digest of an .h5 file proves it complete).
      af_digest_state ds = AF_DIGEST_NONE;
      af_error e{};
      EXPECT_TRUE(rewritten_ok && af_digest_check((out_dir + "/" + kv.first).c_str(), &ds, &e) == AF_OK &&
                  ds == AF_DIGEST_OK)
          << kv.first << " changed " << e.msg;
    }
    size_t at = err.rfind("error");
    std::printf("  ulimit -f %d: %s", kib, at == std::string::npos ? err.c_str() : err.c_str() + at);
  }
}

struct Inputs {
  std::string dir, model, catalog, orders;
  Inputs() {
    dir = aft::temp_dir("disk-full");
    model = dir + "/tiny.h5";
    std::string err;
    EXPECT_EQ(aft::run(aft::cli() + " import-hf " + q(aft::source_dir() + "/tests/data/tiny_bert_a") +
                           " --out " + q(model),
                       nullptr, &err),
              0)
        << err;
    catalog = dir + "/products.csv";
    orders = dir + "/orders.csv";
    std::string c = "product_id,product_name\n", o = "order_id,product_id\n";
    const char *w[] = {"milk", "bread", "apple", "cheese", "soap", "rice", "tea", "jam"};
    for (int i = 0; i < 300; i++)
      c += "p" + std::to_string(i) + "," + w[i % 8] + " " + w[(i / 8) % 8] + " " + std::to_string(i) + "\n";
    for (int b = 0; b < 200; b++)
      for (int k = 0; k < 4; k++) o += "o" + std::to_string(b) + ",p" + std::to_string((b * 7 + k * 13) % 40) + "\n";
    aft::write_file(catalog, c);
    aft::write_file(orders, o);
  }
};

TEST(DiskFull, EmbedAndScore) {
  Inputs in;
  std::string out = in.dir + "/out";
  ASSERT_EQ(aft::run("mkdir -p " + q(out)), 0);
  std::string embed = aft::cli() + " embed --model " + q(in.model) + " --catalog " + q(in.catalog) +
                      " --id-column product_id --text-column product_name --threads 2 --out " + q(out + "/emb.h5");
  std::string score = aft::cli() + " score --embeddings " + q(out + "/emb.h5") + " --k 10 --out " +
                      q(out + "/nbr.h5");
  std::string err;
  ASSERT_EQ(aft::run(embed, nullptr, &err), 0) << err;
  ASSERT_EQ(aft::run(score, nullptr, &err), 0) << err;
  expect_clean_failures(embed, out, {8, 24, 64});  // emb.h5 is ~86 KB
  expect_clean_failures(score, out, {8, 16});      // nbr.h5 is ~30 KB
}

TEST(DiskFull, Rules) {
  Inputs in;
  std::string out = in.dir + "/out";
  ASSERT_EQ(aft::run("mkdir -p " + q(out)), 0);
  std::string rules = aft::cli() + " rules --baskets " + q(aft::shared_dir() + "/groceries/groceries.csv") +
                      " --baskets-format lines --min-support 0.005 --min-confidence 0.1 --out " +
                      q(out + "/rules.csv");
  std::string err;
  ASSERT_EQ(aft::run(rules, nullptr, &err), 0) << err;
  ASSERT_GT(aft::read_file(out + "/rules.csv").size(), 64u * 1024);
  expect_clean_failures(rules, out, {8, 48});
}

TEST(DiskFull, Train) {
  Inputs in;
  std::string out = in.dir + "/train";
  std::string train = aft::cli() + " train --model " + q(in.model) + " --catalog " + q(in.catalog) +
                      " --baskets " + q(in.orders) +
                      " --min-count 2 --max-val 20 --batch 8 --steps 2 --threads 2 --seed 7 --out " + q(out);
  std::string err;
  ASSERT_EQ(aft::run(train, nullptr, &err), 0) << err;
  // a checkpoint is ~1 MB; log.jsonl is appended to by every run
  expect_clean_failures(train, out, {64, 512}, {"log.jsonl"});
}

TEST(DiskFull, Run) {
  Inputs in;
  std::string out = in.dir + "/run";
  std::string run = aft::cli() + " run --catalog " + q(in.catalog) + " --baskets " + q(in.orders) +
                    " --model " + q(in.model) + " --min-support 0.01 --out " + q(out);
  std::string err;
  ASSERT_EQ(aft::run(run, nullptr, &err), 0) << err;
  // --force reruns every stage; run.json records the failed run (written whole).
  expect_clean_failures(run + " --force", out, {16, 96, 200}, {"run.json", "manifest.json"}, true);
}

}  // namespace
