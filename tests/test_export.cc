// affinity export-hf (include/affinity.h): export -> import round trip is
// exact (configuration, vocabulary, every parameter bit), the folder has
// every file sentence-transformers needs, re-export over an existing folder
// replaces its files, and errors leave nothing half-written.
// (That SentenceTransformer(DIR) reproduces `affinity embed` is checked by
// tools/reference/check_export.py, which needs PyTorch; see docs/training.md.)
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
}

namespace {

std::string data(const std::string &rel) { return aft::source_dir() + "/tests/data/" + rel; }

void expect_same_model(const af_model &a, const af_model &b) {
  EXPECT_EQ(0, std::memcmp(&a.cfg, &b.cfg, sizeof a.cfg));
  ASSERT_EQ(a.n_params, b.n_params);
  ASSERT_EQ(a.n_floats, b.n_floats);
  for (int i = 0; i < a.n_params; i++) {
    EXPECT_STREQ(a.params[i].name, b.params[i].name);
    EXPECT_EQ(0, std::memcmp(a.data + a.params[i].offset, b.data + b.params[i].offset,
                             sizeof(float) * a.params[i].numel))
        << a.params[i].name;
  }
  ASSERT_EQ(a.n_vocab, b.n_vocab);
  for (int i = 0; i < a.n_vocab; i++) EXPECT_STREQ(a.vocab[i], b.vocab[i]);
}

TEST(ExportHf, RoundTripIsExact) {
  for (const char *name : {"tiny_bert_a", "tiny_bert_b"}) {
    af_model m{}, r{};
    af_error err{};
    ASSERT_EQ(af_model_import_hf(data(name).c_str(), &m, &err), AF_OK) << err.msg;
    // perturb so that the weights are not the file's bytes by chance of a no-op
    for (int64_t i = 0; i < m.n_floats; i += 7) m.data[i] += 1e-3f * (float)(i % 13);
    std::string dir = aft::temp_dir(std::string("export-") + name) + "/hf";
    ASSERT_EQ(af_export_hf(&m, dir.c_str(), &err), AF_OK) << err.msg;
    for (const char *f : {"model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json",
                          "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                          "config_sentence_transformers.json", "1_Pooling/config.json"})
      EXPECT_TRUE(aft::file_exists(dir + "/" + f)) << f;
    ASSERT_EQ(af_model_import_hf(dir.c_str(), &r, &err), AF_OK) << err.msg;
    expect_same_model(m, r);
    af_model_free(&r);
    // again over the existing folder, with other weights: files replaced
    m.data[0] += 1.0f;
    ASSERT_EQ(af_export_hf(&m, dir.c_str(), &err), AF_OK) << err.msg;
    ASSERT_EQ(af_model_import_hf(dir.c_str(), &r, &err), AF_OK) << err.msg;
    expect_same_model(m, r);
    af_model_free(&r);
    // no staging folder left beside it
    for (auto &n : aft::list_dir(dir + "/..")) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
    af_model_free(&m);
  }
}

TEST(ExportHf, CliFromCheckpointAndErrors) {
  std::string dir = aft::temp_dir("export-cli");
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf(data("tiny_bert_b").c_str(), &m, &err), AF_OK) << err.msg;
  std::string ck = dir + "/m.h5";
  ASSERT_EQ(af_model_save(ck.c_str(), &m, &err), AF_OK) << err.msg;
  std::string out, err_out;
  ASSERT_EQ(aft::run(aft::cli() + " export-hf --model " + ck + " --out " + dir + "/hf", &out, &err_out), 0)
      << err_out;
  af_model r{};
  ASSERT_EQ(af_model_import_hf((dir + "/hf").c_str(), &r, &err), AF_OK) << err.msg;
  expect_same_model(m, r);
  af_model_free(&r);
  // the target is a file: error, the file untouched, no staging folder left
  aft::write_file(dir + "/file", "keep me");
  EXPECT_NE(aft::run(aft::cli() + " export-hf --model " + ck + " --out " + dir + "/file", &out, &err_out), 0);
  EXPECT_NE(err_out.find("not a folder"), std::string::npos) << err_out;
  EXPECT_EQ(aft::read_file(dir + "/file"), "keep me");
  for (auto &n : aft::list_dir(dir)) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
  // a missing checkpoint
  EXPECT_NE(aft::run(aft::cli() + " export-hf --model " + dir + "/nope.h5 --out " + dir + "/x", &out, &err_out), 0);
  EXPECT_NE(err_out.find("nope.h5"), std::string::npos) << err_out;
  EXPECT_FALSE(aft::file_exists(dir + "/x"));
  af_model_free(&m);
}

}  // namespace
