// The embeddings file: round trips through the whole-file and streaming
// writers, a file written by h5py (an independent writer), and malformed
// files that must fail with an error naming the file and the dataset.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "io/h5util.h"
}

namespace {

struct Emb {
  std::vector<std::string> ids;
  std::vector<float> x;  // (n, d)
  int d = 0;
};

Emb make(int n, int d) {
  Emb e;
  e.d = d;
  for (int i = 0; i < n; i++) e.ids.push_back(i % 3 == 0 ? "商品-" + std::to_string(i) : "p" + std::to_string(i));
  for (int i = 0; i < n * d; i++) e.x.push_back(std::sin(0.37f * i) * (i % 5 ? 1.0f : -3.5e-3f));
  return e;
}

af_status write_whole(const std::string &path, const Emb &e, af_error *err) {
  std::vector<char *> ids;
  for (auto &s : e.ids) ids.push_back(const_cast<char *>(s.c_str()));
  af_embeddings emb = {};
  emb.n = (int64_t)e.ids.size();
  emb.d = e.d;
  emb.ids = ids.data();
  emb.emb = const_cast<float *>(e.x.data());
  emb.model = const_cast<char *>("all-MiniLM-L6-v2");
  emb.pooling = const_cast<char *>("mean");
  emb.normalized = 1;
  return af_embeddings_write(path.c_str(), &emb, err);
}

void expect_same(const af_embeddings &r, const Emb &e) {
  ASSERT_EQ(r.n, (int64_t)e.ids.size());
  ASSERT_EQ(r.d, e.d);
  for (size_t i = 0; i < e.ids.size(); i++) EXPECT_EQ(std::string(r.ids[i]), e.ids[i]);
  // Bitwise: the file stores float32 exactly.
  EXPECT_EQ(0, std::memcmp(r.emb, e.x.data(), e.x.size() * sizeof(float)));
}

TEST(EmbFile, WholeFileRoundTrip) {
  std::string dir = aft::temp_dir("embfile-rt"), path = dir + "/e.h5";
  Emb e = make(50, 7);
  af_error err = {};
  ASSERT_EQ(AF_OK, write_whole(path, e, &err)) << err.msg;
  af_embeddings r;
  ASSERT_EQ(AF_OK, af_embeddings_read(path.c_str(), &r, &err)) << err.msg;
  expect_same(r, e);
  EXPECT_STREQ(r.model, "all-MiniLM-L6-v2");
  EXPECT_STREQ(r.pooling, "mean");
  EXPECT_EQ(r.normalized, 1);
  af_embeddings_free(&r);
  EXPECT_EQ(aft::list_dir(dir).size(), 1u);  // no temporary left behind
}

TEST(EmbFile, StreamingWriterBatchesAndIdRows) {
  std::string dir = aft::temp_dir("embfile-stream"), path = dir + "/e.h5";
  Emb e = make(103, 5);
  af_error err = {};
  af_emb_writer *w = nullptr;
  ASSERT_EQ(AF_OK, af_emb_writer_open(path.c_str(), 103, 5, "m", "cls", 0, &w, &err)) << err.msg;
  // Batches out of order and of uneven size; ids batch by batch (vlen hyperslab writes).
  const int cuts[] = {0, 10, 47, 48, 103};
  for (int b = 3; b >= 0; b--) {
    int r0 = cuts[b], n = cuts[b + 1] - cuts[b];
    ASSERT_EQ(AF_OK, af_emb_writer_rows(w, r0, n, e.x.data() + (size_t)r0 * 5, &err)) << err.msg;
    std::vector<const char *> ids;
    for (int i = r0; i < r0 + n; i++) ids.push_back(e.ids[i].c_str());
    ASSERT_EQ(AF_OK, af_emb_writer_id_rows(w, r0, n, ids.data(), &err)) << err.msg;
  }
  EXPECT_FALSE(aft::file_exists(path));  // nothing at the final path before commit
  ASSERT_EQ(AF_OK, af_emb_writer_commit(w, &err)) << err.msg;
  af_embeddings r;
  ASSERT_EQ(AF_OK, af_embeddings_read(path.c_str(), &r, &err)) << err.msg;
  expect_same(r, e);
  EXPECT_STREQ(r.pooling, "cls");
  EXPECT_EQ(r.normalized, 0);
  af_embeddings_free(&r);
}

TEST(EmbFile, WriterRefusesIncompleteOrBadInput) {
  std::string dir = aft::temp_dir("embfile-incomplete"), path = dir + "/e.h5";
  Emb e = make(10, 4);
  af_error err = {};
  af_emb_writer *w = nullptr;
  ASSERT_EQ(AF_OK, af_emb_writer_open(path.c_str(), 10, 4, "m", "mean", 1, &w, &err));
  ASSERT_EQ(AF_OK, af_emb_writer_rows(w, 0, 10, e.x.data(), &err));
  // Out of range and non-finite rows are refused, naming the row.
  EXPECT_NE(AF_OK, af_emb_writer_rows(w, 8, 3, e.x.data(), &err));
  std::vector<float> bad(4, 0.5f);
  bad[2] = NAN;
  EXPECT_NE(AF_OK, af_emb_writer_rows(w, 6, 1, bad.data(), &err));
  EXPECT_NE(std::string(err.msg).find("row 6"), std::string::npos) << err.msg;
  // Ids never written: commit fails and leaves no file at all.
  EXPECT_NE(AF_OK, af_emb_writer_commit(w, &err));
  EXPECT_NE(std::string(err.msg).find("id of row 0"), std::string::npos) << err.msg;
  EXPECT_TRUE(aft::list_dir(dir).empty());
  // Abort leaves nothing either.
  ASSERT_EQ(AF_OK, af_emb_writer_open(path.c_str(), 10, 4, "m", "mean", 1, &w, &err));
  af_emb_writer_abort(w);
  EXPECT_TRUE(aft::list_dir(dir).empty());
}

// Written by h5py (tools/reference/make_embfile_fixture.py): a reader that
// only understood our own writer would fail here.
TEST(EmbFile, ReadsH5pyWrittenFile) {
  std::string path = aft::source_dir() + "/tests/data/embeddings_h5py.h5";
  af_error err = {};
  af_embeddings r;
  ASSERT_EQ(AF_OK, af_embeddings_read(path.c_str(), &r, &err)) << err.msg;
  ASSERT_EQ(r.n, 6);
  ASSERT_EQ(r.d, 3);
  EXPECT_STREQ(r.ids[0], "apple");
  EXPECT_STREQ(r.ids[5], "牛奶");
  // The script writes x[i][j] = i + j / 4 (exact in float32).
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 3; j++) EXPECT_EQ(r.emb[i * 3 + j], i + j / 4.0f);
  EXPECT_STREQ(r.model, "h5py-fixture");
  af_embeddings_free(&r);
}

// ---- malformed files ----------------------------------------------------------

struct Bad {
  bool with_ids = true, with_emb = true, emb_1d = false, emb_int_str = false;
  int n_ids = 4, n_rows = 4, d = 3;
  const char *format = "affinity-embeddings";
  long long version = 1, dim = 3;
  float poison = 0.0f;  // written into row 2, column 1
};

void write_bad(const std::string &path, const Bad &b) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  af_error err = {};
  if (b.with_ids) {
    std::vector<std::string> s;
    std::vector<const char *> p;
    for (int i = 0; i < b.n_ids; i++) s.push_back("id" + std::to_string(i));
    for (auto &x : s) p.push_back(x.c_str());
    ASSERT_EQ(AF_OK, af_h5_write_strings(f, "/ids", p.data(), p.size(), &err));
  }
  if (b.with_emb) {
    std::vector<float> x((size_t)b.n_rows * b.d, 0.25f);
    if (b.n_rows > 2) x[2 * b.d + 1] = b.poison;
    if (b.emb_1d) {
      hsize_t dims[1] = {(hsize_t)x.size()};
      ASSERT_EQ(AF_OK, af_h5_write_f32(f, "/embeddings", x.data(), 1, dims, &err));
    } else if (b.emb_int_str) {
      std::vector<const char *> p(b.n_rows, "x");
      ASSERT_EQ(AF_OK, af_h5_write_strings(f, "/embeddings", p.data(), p.size(), &err));
    } else {
      hsize_t dims[2] = {(hsize_t)b.n_rows, (hsize_t)b.d};
      ASSERT_EQ(AF_OK, af_h5_write_f32(f, "/embeddings", x.data(), 2, dims, &err));
    }
  }
  af_h5_attr_set_str(f, ".", "format", b.format, &err);
  af_h5_attr_set_i64(f, ".", "format_version", b.version, &err);
  af_h5_attr_set_i64(f, ".", "dim", b.dim, &err);
  H5Fclose(f);
}

// Reading fails with a message that names the file and `what`; the CLI exits
// non-zero with that message and leaves no output file.
void expect_rejected(const std::string &dir, const std::string &path, const std::string &what) {
  af_error err = {};
  af_embeddings r;
  EXPECT_NE(AF_OK, af_embeddings_read(path.c_str(), &r, &err));
  std::string msg = err.msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_EQ(r.emb, nullptr);
  std::string out = dir + "/nbr.h5", serr;
  int rc = aft::run(aft::cli() + " score --embeddings '" + path + "' --k 2 --out '" + out + "'",
                    nullptr, &serr);
  EXPECT_NE(rc, 0);
  EXPECT_NE(serr.find(what), std::string::npos) << serr;
  for (auto &name : aft::list_dir(dir)) EXPECT_EQ(name.find("nbr.h5"), std::string::npos) << name;
}

TEST(EmbFile, MalformedFilesAreRejectedWithFileAndDataset) {
  std::string dir = aft::temp_dir("embfile-bad");
  struct Case {
    const char *name;
    Bad b;
    const char *what;
  };
  std::vector<Case> cases;
  Bad b;
  b.with_emb = false;
  cases.push_back({"missing-emb", b, "/embeddings"});
  b = Bad();
  b.with_ids = false;
  cases.push_back({"missing-ids", b, "/ids"});
  b = Bad();
  b.emb_1d = true;
  cases.push_back({"rank1", b, "/embeddings has rank 1"});
  b = Bad();
  b.emb_int_str = true;
  cases.push_back({"strings-rank1", b, "/embeddings"});
  b = Bad();
  b.n_ids = 5;
  cases.push_back({"length-mismatch", b, "/ids has 5 entries but /embeddings has 4 rows"});
  b = Bad();
  b.format = "something-else";
  cases.push_back({"format", b, "format"});
  b = Bad();
  b.version = 2;
  cases.push_back({"version", b, "format_version"});
  b = Bad();
  b.dim = 4;
  cases.push_back({"dim", b, "dim"});
  b = Bad();
  b.poison = NAN;
  cases.push_back({"nan", b, "/embeddings: row 2 column 1"});
  b = Bad();
  b.poison = INFINITY;
  cases.push_back({"inf", b, "/embeddings: row 2 column 1"});
  for (auto &c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = dir + "/" + c.name + ".h5";
    write_bad(path, c.b);
    expect_rejected(dir, path, c.what);
  }
}

TEST(EmbFile, NotHdf5AndTruncatedFiles) {
  std::string dir = aft::temp_dir("embfile-trunc");
  std::string text = dir + "/text.h5";
  aft::write_file(text, "id,embedding\n1,0.5\n");
  expect_rejected(dir, text, "not a readable HDF5 file");
  std::string good = dir + "/good.h5";
  af_error err = {};
  ASSERT_EQ(AF_OK, write_whole(good, make(400, 16), &err));
  std::string data = aft::read_file(good);
  std::string cut = dir + "/truncated.h5";
  aft::write_file(cut, data.substr(0, data.size() / 2));
  af_embeddings r;
  EXPECT_NE(AF_OK, af_embeddings_read(cut.c_str(), &r, &err));
  EXPECT_NE(std::string(err.msg).find(cut), std::string::npos) << err.msg;
  std::string serr;
  EXPECT_NE(0, aft::run(aft::cli() + " score --embeddings '" + cut + "' --k 2 --out '" + dir +
                            "/nbr.h5'",
                        nullptr, &serr));
  EXPECT_NE(serr.find(cut), std::string::npos) << serr;
  EXPECT_FALSE(aft::file_exists(dir + "/nbr.h5"));
  std::string missing = dir + "/does-not-exist.h5";
  EXPECT_NE(AF_OK, af_embeddings_read(missing.c_str(), &r, &err));
  EXPECT_NE(std::string(err.msg).find(missing), std::string::npos) << err.msg;
}

}  // namespace
