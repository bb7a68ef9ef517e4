// Temporary files of killed runs (engine/base/atomic_file.h): "<name>.tmp.<pid>"
// of a process that no longer exists is removed; anything else stays.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {

// The pid of a child that has exited and been reaped: a process that no
// longer exists (until the kernel reuses the pid, which it does not do at once).
long dead_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  int status;
  waitpid(p, &status, 0);
  return (long)p;
}

TEST(StaleTmp, NameParsing) {
  EXPECT_EQ(af_tmp_name_pid("emb.h5.tmp.123"), 123);
  EXPECT_EQ(af_tmp_name_pid("a.tmp.1.tmp.77"), 77);
  EXPECT_EQ(af_tmp_name_pid(".tmp.5"), 0);       // no name
  EXPECT_EQ(af_tmp_name_pid("emb.h5.tmp."), 0);  // no pid
  EXPECT_EQ(af_tmp_name_pid("emb.h5.tmp.12x"), 0);
  EXPECT_EQ(af_tmp_name_pid("notes.tmp.txt"), 0);
  EXPECT_EQ(af_tmp_name_pid("emb.h5"), 0);
}

TEST(StaleTmp, FolderCleanRemovesOnlyDeadProcessesFiles) {
  std::string dir = aft::temp_dir("stale-folder");
  std::string dead = std::to_string(dead_pid()), me = std::to_string(getpid());
  aft::write_file(dir + "/embeddings.h5.tmp." + dead, "x");   // removed
  aft::write_file(dir + "/rules.csv.tmp." + dead, "x");       // removed
  aft::write_file(dir + "/embeddings.h5.tmp." + me, "x");     // this process: kept
  aft::write_file(dir + "/neighbors.h5.tmp.1", "x");          // pid 1 exists: kept
  aft::write_file(dir + "/notes.tmp.txt", "x");               // not a temporary: kept
  aft::write_file(dir + "/embeddings.h5", "x");               // kept
  mkdir((dir + "/sub.tmp." + dead).c_str(), 0755);            // not a regular file: kept
  int removed = -1;
  af_error err{};
  ASSERT_EQ(af_clean_stale_tmp(dir.c_str(), &removed, &err), AF_OK) << err.msg;
  EXPECT_EQ(removed, 2);
  EXPECT_FALSE(aft::file_exists(dir + "/embeddings.h5.tmp." + dead));
  EXPECT_FALSE(aft::file_exists(dir + "/rules.csv.tmp." + dead));
  for (const std::string &kept : {"/embeddings.h5.tmp." + me, std::string("/neighbors.h5.tmp.1"),
                                  std::string("/notes.tmp.txt"), std::string("/embeddings.h5"),
                                  "/sub.tmp." + dead})
    EXPECT_TRUE(aft::file_exists(dir + kept)) << kept;
  EXPECT_EQ(af_clean_stale_tmp((dir + "/missing").c_str(), &removed, &err), AF_ERR_IO);
  EXPECT_NE(std::string(err.msg).find("missing"), std::string::npos) << err.msg;
}

// Any command writing an output removes that output's stale temporaries.
TEST(StaleTmp, WritingAFileRemovesItsOwnStaleTemporaries) {
  std::string dir = aft::temp_dir("stale-cli");
  std::string dead = std::to_string(dead_pid());
  std::string out = dir + "/nbr.h5";
  aft::write_file(out + ".tmp." + dead, std::string(1000, 'x'));
  aft::write_file(dir + "/other.h5.tmp." + dead, "x");  // another output's: left to `run`
  std::string err;
  ASSERT_EQ(aft::run(aft::cli() + " score --embeddings '" + aft::source_dir() +
                         "/tests/data/embeddings_h5py.h5' --k 2 --out '" + out + "'",
                     nullptr, &err),
            0)
      << err;
  EXPECT_TRUE(aft::file_exists(out));
  EXPECT_FALSE(aft::file_exists(out + ".tmp." + dead));
  EXPECT_TRUE(aft::file_exists(dir + "/other.h5.tmp." + dead));
}

}  // namespace
