// The digest gate (engine/io/digest.h): every HDF5 file we write carries an
// XXH64 digest of its whole content in a 512-byte user block, checked before
// libhdf5 opens the file. One flipped byte anywhere in a model checkpoint
// (its /tokenizer/vocab included), a training checkpoint, an embeddings file
// or a neighbours file is rejected by that file kind's reader with an error
// naming the file; files from other tools (no digest) read as before.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "base/xxh64.h"
#include "io/digest.h"
#include "affinity.h"
#include "io/h5util.h"
#include "nn/model.h"
}

namespace {

std::string data(const std::string &rel) { return aft::source_dir() + "/tests/data/" + rel; }

// Reference values from the xxhash Python package (python-xxhash 3.x, the
// upstream C library): xxhash.xxh64(data, seed=0).hexdigest().
TEST(Digest, Xxh64MatchesTheReferenceImplementation) {
  EXPECT_EQ(af_xxh64("", 0, 0), 0xef46db3751d8e999ULL);
  EXPECT_EQ(af_xxh64("a", 1, 0), 0xd24ec4f1a98c6e5bULL);
  EXPECT_EQ(af_xxh64("abc", 3, 0), 0x44bc2cf5ad770999ULL);
  std::string s;
  for (int i = 0; i < 10; i++) s += "0123456789";
  EXPECT_EQ(af_xxh64(s.data(), s.size(), 0), 0xf80e7b96315afffaULL);
  std::string b;
  for (int r = 0; r < 5; r++)
    for (int i = 0; i < 256; i++) b += (char)i;
  EXPECT_EQ(af_xxh64(b.data(), b.size(), 0), 0xafc184ad7938a354ULL);
  // streaming in uneven pieces gives the same digest
  af_xxh64_state st;
  af_xxh64_init(&st, 0);
  for (size_t at = 0, step = 1; at < b.size(); at += step, step = step * 3 % 37 + 1)
    af_xxh64_update(&st, b.data() + at, std::min(step, b.size() - at));
  EXPECT_EQ(af_xxh64_final(&st), 0xafc184ad7938a354ULL);
}

// Flips byte `pos` of the file in place (and back), running check() between.
struct Flipper {
  std::string path;
  int fd;
  explicit Flipper(const std::string &p) : path(p), fd(open(p.c_str(), O_RDWR)) {}
  ~Flipper() { close(fd); }
  void flip(size_t pos) {
    unsigned char c;
    ASSERT_EQ(pread(fd, &c, 1, (off_t)pos), 1);
    c ^= 0x20;
    ASSERT_EQ(pwrite(fd, &c, 1, (off_t)pos), 1);
  }
};

// Positions to flip: every byte of the user block and the superblock region,
// then a stride over the rest that visits about 1,500 more positions, plus
// `extra` (e.g. inside /tokenizer/vocab).
std::vector<size_t> positions(size_t size, const std::vector<size_t> &extra) {
  std::vector<size_t> p;
  for (size_t i = 0; i < std::min<size_t>(size, 1024); i++) p.push_back(i);
  size_t stride = std::max<size_t>(1, size / 1500) | 1;
  for (size_t i = 1024; i < size; i += stride) p.push_back(i);
  p.push_back(size - 1);
  for (size_t e : extra) p.push_back(e);
  return p;
}

// Every flip is rejected by read(path) with an error naming the file; the
// unflipped file reads.
void expect_every_flip_rejected(const std::string &path, const std::vector<size_t> &extra,
                                const std::function<af_status(const char *, af_error *)> &read) {
  af_error err{};
  ASSERT_EQ(read(path.c_str(), &err), AF_OK) << err.msg;
  std::string blob = aft::read_file(path);
  ASSERT_EQ(blob.compare(0, 8, "\x89" "AFDGST\n"), 0) << "no digest block in " << path;
  Flipper f(path);
  int rejected = 0, tried = 0;
  for (size_t pos : positions(blob.size(), extra)) {
    f.flip(pos);
    err = af_error{};
    af_status st = read(path.c_str(), &err);
    f.flip(pos);
    tried++;
    if (st != AF_OK && std::string(err.msg).find(path) != std::string::npos) rejected++;
    else ADD_FAILURE() << path << ": flip at byte " << pos << " of " << blob.size()
                       << " not rejected (" << err.msg << ")";
    if (rejected + 20 < tried) break;  // enough evidence; keep the log short
  }
  EXPECT_EQ(rejected, tried);
  std::printf("  %s: %d of %d single-byte flips rejected\n", path.c_str(), rejected, tried);
  EXPECT_EQ(aft::read_file(path), blob);  // restored
  ASSERT_EQ(read(path.c_str(), &err), AF_OK) << err.msg;
}

// Byte offsets of every occurrence of s in the file.
std::vector<size_t> find_all(const std::string &path, const std::string &s) {
  std::string blob = aft::read_file(path);
  std::vector<size_t> at;
  for (size_t p = blob.find(s); p != std::string::npos; p = blob.find(s, p + 1)) at.push_back(p + s.size() / 2);
  return at;
}

TEST(Digest, ModelCheckpointFlipsIncludingTheVocabAreRejected) {
  std::string dir = aft::temp_dir("digest-model");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  std::string path = dir + "/model.h5";
  ASSERT_EQ(af_model_save(path.c_str(), &m, &err), AF_OK) << err.msg;
  af_model_free(&m);
  std::vector<size_t> vocab = find_all(path, "[MASK]");  // /tokenizer/vocab strings
  ASSERT_FALSE(vocab.empty());
  expect_every_flip_rejected(path, vocab, [](const char *p, af_error *e) {
    af_model r{};
    af_status st = af_model_load(p, &r, e);
    if (st == AF_OK) af_model_free(&r);
    return st;
  });
}

TEST(Digest, TrainingCheckpointFlipsAreRejected) {
  std::string dir = aft::temp_dir("digest-train");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  af_device dev = af_device_cpu(0);
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.total_steps = 10;
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  af_train_meta meta{1, 2, 100, 5, 0x0123456789abcdefULL, 4242, 32};
  std::string path = dir + "/step.h5";
  ASSERT_EQ(af_train_checkpoint_save(path.c_str(), t, &meta, &err), AF_OK) << err.msg;
  af_trainer_free(t);
  af_model_free(&m);
  std::vector<size_t> vocab = find_all(path, "[MASK]");
  ASSERT_FALSE(vocab.empty());
  expect_every_flip_rejected(path, vocab, [&dev](const char *p, af_error *e) {
    af_model r{};
    af_trainer *rt = nullptr;
    af_train_meta rm{};
    af_status st = af_train_checkpoint_load(p, &dev, &r, &rt, &rm, e);
    if (st == AF_OK) {
      af_trainer_free(rt);
      af_model_free(&r);
    }
    return st;
  });
}

std::string write_embeddings(const std::string &dir) {
  std::vector<std::string> ids;
  std::vector<char *> p;
  std::vector<float> x;
  for (int i = 0; i < 40; i++) ids.push_back("item-" + std::to_string(i));
  for (auto &s : ids) p.push_back(const_cast<char *>(s.c_str()));
  for (int i = 0; i < 40 * 8; i++) x.push_back((float)((i * 37) % 11) - 5.0f);
  af_embeddings e{};
  e.n = 40;
  e.d = 8;
  e.ids = p.data();
  e.emb = x.data();
  e.model = const_cast<char *>("m");
  e.pooling = const_cast<char *>("mean");
  af_error err{};
  std::string path = dir + "/emb.h5";
  EXPECT_EQ(af_embeddings_write(path.c_str(), &e, &err), AF_OK) << err.msg;
  return path;
}

TEST(Digest, EmbeddingsAndNeighboursFlipsAreRejected) {
  std::string dir = aft::temp_dir("digest-emb");
  std::string emb = write_embeddings(dir);
  expect_every_flip_rejected(emb, find_all(emb, "item-17"), [](const char *p, af_error *e) {
    af_embeddings r;
    af_status st = af_embeddings_read(p, &r, e);
    if (st == AF_OK) af_embeddings_free(&r);
    return st;
  });
  std::string nbr = dir + "/nbr.h5";
  af_score_file_options o{};
  o.k = 5;
  o.shard_n = 1;
  af_error err{};
  ASSERT_EQ(af_score_file(emb.c_str(), nbr.c_str(), &o, &err), AF_OK) << err.msg;
  expect_every_flip_rejected(nbr, {}, [](const char *p, af_error *e) {
    af_neighbors r;
    af_status st = af_neighbors_read(p, &r, e);
    if (st == AF_OK) af_neighbors_free(&r);
    return st;
  });
}

// Through the CLI: a flipped byte fails `score` with the digest message, exit 1.
TEST(Digest, CliNamesTheFileAndTheDigest) {
  std::string dir = aft::temp_dir("digest-cli");
  std::string emb = write_embeddings(dir);
  Flipper f(emb);
  f.flip(aft::read_file(emb).size() / 2);
  std::string err;
  EXPECT_EQ(aft::run(aft::cli() + " score --embeddings '" + emb + "' --k 2 --out '" + dir + "/n.h5'",
                     nullptr, &err),
            1);
  EXPECT_NE(err.find(emb), std::string::npos) << err;
  EXPECT_NE(err.find("digest mismatch"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/n.h5"));
}

// Our files stay ordinary HDF5: h5ls (hdf5-tools, like h5py) skips the user block.
TEST(Digest, OtherHdf5ReadersSkipTheUserBlock) {
  std::string dir = aft::temp_dir("digest-h5ls");
  std::string emb = write_embeddings(dir), out;
  ASSERT_EQ(aft::run("h5ls '" + emb + "'", &out, nullptr), 0);
  EXPECT_NE(out.find("embeddings"), std::string::npos) << out;
  EXPECT_NE(out.find("ids"), std::string::npos) << out;
}

// No digest: a file from another tool is read unchecked (trusted input); a
// user block that is not ours in front of HDF5 is refused.
TEST(Digest, FilesWithoutADigest) {
  af_digest_state ds;
  af_error err{};
  ASSERT_EQ(af_digest_check(data("embeddings_h5py.h5").c_str(), &ds, &err), AF_OK) << err.msg;
  EXPECT_EQ(ds, AF_DIGEST_NONE);
  std::string dir = aft::temp_dir("digest-foreign");
  std::string path = dir + "/foreign.h5";
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(fcpl, 1024);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  ASSERT_GE(f, 0);
  float x[2] = {1, 2};
  hsize_t dims[2] = {1, 2};
  ASSERT_EQ(af_h5_write_f32(f, "/embeddings", x, 2, dims, &err), AF_OK);
  H5Fclose(f);
  af_embeddings r;
  EXPECT_EQ(af_embeddings_read(path.c_str(), &r, &err), AF_ERR_FORMAT);
  EXPECT_NE(std::string(err.msg).find("user block"), std::string::npos) << err.msg;
  EXPECT_NE(std::string(err.msg).find(path), std::string::npos) << err.msg;
  // an empty file and a short one: not HDF5, no crash
  aft::write_file(dir + "/empty.h5", "");
  EXPECT_NE(af_embeddings_read((dir + "/empty.h5").c_str(), &r, &err), AF_OK);
  aft::write_file(dir + "/short.h5", "\x89" "AFDGST\n" "affinity");
  EXPECT_NE(af_embeddings_read((dir + "/short.h5").c_str(), &r, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("digest header is damaged"), std::string::npos) << err.msg;
}

// HDF5 stores object modification times unless told not to; our writers turn
// them off (io/h5util.h), so the same content written twice, more than a
// second apart (the times' resolution), gives the same bytes: checkpoints
// (groups /params, /tokenizer, ...), embeddings and neighbours files.
TEST(Digest, IdenticalWritesAreByteIdentical) {
  std::string a = aft::temp_dir("repro-a"), b = aft::temp_dir("repro-b");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  af_score_file_options o{};
  o.k = 5;
  o.shard_n = 1;
  for (const std::string &dir : {a, b}) {
    if (dir == b) usleep(1100 * 1000);
    ASSERT_EQ(af_model_save((dir + "/model.h5").c_str(), &m, &err), AF_OK) << err.msg;
    std::string emb = write_embeddings(dir);
    ASSERT_EQ(af_score_file(emb.c_str(), (dir + "/nbr.h5").c_str(), &o, &err), AF_OK) << err.msg;
  }
  af_model_free(&m);
  for (const char *f : {"/model.h5", "/emb.h5", "/nbr.h5"}) {
    std::string x = aft::read_file(a + f), y = aft::read_file(b + f);
    EXPECT_GT(x.size(), 512u) << f;
    EXPECT_TRUE(x == y) << f << ": two identical writes differ";
  }
}

}  // namespace
