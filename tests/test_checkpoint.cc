// HDF5 checkpoint round trip, the layout against docs/checkpoint-format.md, and
// import of malformed Hugging Face folders (each must fail with a clear error
// naming the file and tensor, a non-zero exit, and no output file).
#include <gtest/gtest.h>

#include <chrono>

#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "io/h5util.h"
#include "nn/model.h"
}

namespace {

std::string tiny_a() { return aft::source_dir() + "/tests/data/tiny_bert_a"; }

// Plain string helpers (std::regex trips a false -Wmaybe-uninitialized in
// libstdc++ under -fsanitize=address, which -Werror turns into a build failure).
bool all_digits(const std::string &s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

TEST(Checkpoint, RoundTripIsExact) {
  af_model m, r;
  af_error err{};
  ASSERT_EQ(af_model_import_hf(tiny_a().c_str(), &m, &err), AF_OK) << err.msg;
  std::string dir = aft::temp_dir("ckpt-rt");
  std::string path = dir + "/tiny.h5";
  ASSERT_EQ(af_model_save(path.c_str(), &m, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_load(path.c_str(), &r, &err), AF_OK) << err.msg;
  EXPECT_EQ(0, std::memcmp(&m.cfg, &r.cfg, sizeof m.cfg));
  ASSERT_EQ(m.n_params, r.n_params);
  for (int i = 0; i < m.n_params; i++) {
    EXPECT_STREQ(m.params[i].name, r.params[i].name);
    EXPECT_EQ(0, std::memcmp(m.data + m.params[i].offset, r.data + r.params[i].offset,
                             sizeof(float) * m.params[i].numel)) << m.params[i].name;
  }
  ASSERT_EQ(m.n_vocab, r.n_vocab);
  for (int i = 0; i < m.n_vocab; i++) EXPECT_STREQ(m.vocab[i], r.vocab[i]);
  // no temporary file left beside it
  for (auto &n : aft::list_dir(dir)) EXPECT_EQ(n, "tiny.h5");
  af_model_free(&m);
  af_model_free(&r);
}

// Parses the ```layout block of docs/checkpoint-format.md and checks each
// entry on a checkpoint written by af_model_save.
TEST(Checkpoint, LayoutMatchesDocumentation) {
  std::ifstream doc(aft::source_dir() + "/docs/checkpoint-format.md");
  ASSERT_TRUE(doc.good());
  std::string line;
  bool in = false;
  std::vector<std::vector<std::string>> entries;
  while (std::getline(doc, line)) {
    if (line.rfind("```layout", 0) == 0) { in = true; continue; }
    if (in && line.rfind("```", 0) == 0) break;
    if (!in || line.empty()) continue;
    std::istringstream ss(line);
    std::vector<std::string> w;
    std::string t;
    while (ss >> t) w.push_back(t);
    entries.push_back(w);
  }
  ASSERT_GT(entries.size(), 40u);

  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf(tiny_a().c_str(), &m, &err), AF_OK) << err.msg;
  std::string path = aft::temp_dir("ckpt-layout") + "/tiny.h5";
  ASSERT_EQ(af_model_save(path.c_str(), &m, &err), AF_OK) << err.msg;
  hid_t f = H5I_INVALID_HID;
  af_h5_open(path.c_str(), 0, &f, &err);
  ASSERT_GE(f, 0);
  int checked = 0;
  for (auto &w : entries) {
    const std::string &kind = w[0];
    if (kind == "group") {
      EXPECT_TRUE(af_h5_exists(f, w[1].c_str() + 1)) << w[1];
    } else if (kind == "attr") {
      std::string obj = w[1] == "/" ? "." : w[1].substr(1);
      const std::string &name = w[2], &type = w[3];
      ASSERT_TRUE(af_h5_attr_exists(f, obj.c_str(), name.c_str())) << w[1] << " " << name;
      if (type == "string") {
        char *v = nullptr;
        EXPECT_EQ(af_h5_attr_get_str(f, obj.c_str(), name.c_str(), &v, &err), AF_OK) << name;
        if (w.size() > 4 && w[4][0] == '"') {
          EXPECT_EQ("\"" + std::string(v) + "\"", w[4]) << name;
        }
        free(v);
      } else {
        int64_t v = 0;
        double d = 0;
        if (type == "int") {
          EXPECT_EQ(af_h5_attr_get_i64(f, obj.c_str(), name.c_str(), &v, &err), AF_OK) << name;
        } else {
          EXPECT_EQ(af_h5_attr_get_f64(f, obj.c_str(), name.c_str(), &d, &err), AF_OK) << name;
        }
        if (type == "int" && w.size() == 5 && all_digits(w[4])) {
          EXPECT_EQ(v, std::stoll(w[4])) << name;
        }
      }
    } else if (kind == "dataset") {
      for (int l = 0; l < m.cfg.num_layers; l++) {
        std::string p = replace_all(w[1], "<L>", std::to_string(l)).substr(1);
        int rank;
        hsize_t dims[8];
        ASSERT_EQ(af_h5_shape(f, p.c_str(), &rank, dims, &err), AF_OK) << p;
        if (w[2] == "float32") {
          const af_param_info *pi = af_model_param(&m, p.c_str() + strlen("params/"));
          ASSERT_NE(pi, nullptr) << p;
          EXPECT_EQ(rank, pi->rank) << p;
          std::vector<float> buf(pi->numel);
          EXPECT_EQ(af_h5_read(f, p.c_str(), H5T_NATIVE_FLOAT, buf.data(), buf.size(), &err), AF_OK) << p;
        }
        if (w[1].find("<L>") == std::string::npos) break;
      }
    } else {
      ADD_FAILURE() << "unknown layout kind " << kind;
    }
    checked++;
  }
  EXPECT_EQ(checked, (int)entries.size());
  af_h5_close(f, path.c_str(), &err);
  af_model_free(&m);
}

// ---- malformed imports, through the CLI ------------------------------------------

std::string copy_model(const std::string &tag) {
  std::string dir = aft::temp_dir(tag) + "/model";
  EXPECT_EQ(aft::run("cp -r '" + tiny_a() + "' '" + dir + "'"), 0);
  return dir;
}

// Rewrites the safetensors header with `edit` applied to its JSON text.
void edit_header(const std::string &path, const std::function<void(std::string &)> &edit) {
  std::string bytes = aft::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)bytes[i];
  std::string header = bytes.substr(8, n), data = bytes.substr(8 + n);
  edit(header);
  std::string out(8, '\0');
  uint64_t m = header.size();
  for (int i = 0; i < 8; i++) out[i] = (char)((m >> (8 * i)) & 0xff);
  aft::write_file(path, out + header + data);
}

void replace_once(std::string &s, const std::string &a, const std::string &b) {
  size_t p = s.find(a);
  ASSERT_NE(p, std::string::npos) << a;
  s.replace(p, a.size(), b);
}

void expect_import_fails(const std::string &dir, const std::vector<std::string> &must_mention) {
  std::string out = dir + "/../out.h5", stderr_text;
  int rc = aft::run(aft::cli() + " import-hf '" + dir + "' --out '" + out + "'", nullptr, &stderr_text);
  EXPECT_NE(rc, 0) << stderr_text;
  EXPECT_LT(rc, 128) << "crashed: " << stderr_text;
  for (auto &s : must_mention) EXPECT_NE(stderr_text.find(s), std::string::npos) << "'" << s << "' not in: " << stderr_text;
  EXPECT_FALSE(aft::file_exists(out));
  for (auto &n : aft::list_dir(dir + "/..")) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
}

TEST(Import, GoodFolderSucceeds) {
  std::string dir = copy_model("imp-ok"), out = dir + "/../out.h5", e;
  EXPECT_EQ(aft::run(aft::cli() + " import-hf '" + dir + "' --out '" + out + "'", nullptr, &e), 0) << e;
  EXPECT_TRUE(aft::file_exists(out));
}

TEST(Import, TruncatedSafetensors) {
  std::string dir = copy_model("imp-trunc");
  std::string p = dir + "/model.safetensors", b = aft::read_file(p);
  aft::write_file(p, b.substr(0, b.size() - 1000));
  expect_import_fails(dir, {"model.safetensors", "truncated"});
}

TEST(Import, CorruptHeaderLength) {
  std::string dir = copy_model("imp-hdr");
  std::string p = dir + "/model.safetensors", b = aft::read_file(p);
  b[7] = (char)0x7f;  // a header length of ~2^63 bytes
  aft::write_file(p, b);
  expect_import_fails(dir, {"model.safetensors", "header length"});
}

TEST(Import, MalformedHeaderJson) {
  std::string dir = copy_model("imp-json");
  edit_header(dir + "/model.safetensors", [](std::string &h) { h[h.size() / 2] = '{'; });
  expect_import_fails(dir, {"model.safetensors"});
}

TEST(Import, WrongDtype) {
  std::string dir = copy_model("imp-dtype");
  // An int32 tensor of the same byte size passes the size check but is not a weight type.
  edit_header(dir + "/model.safetensors", [](std::string &h) {
    size_t k = h.find("\"encoder.layer.1.intermediate.dense.weight\"");
    ASSERT_NE(k, std::string::npos);
    size_t d = h.find("\"F32\"", k);
    h.replace(d, 5, "\"I32\"");
  });
  expect_import_fails(dir, {"model.safetensors", "encoder.layer.1.intermediate.dense.weight", "I32"});
}

TEST(Import, MissingTensor) {
  std::string dir = copy_model("imp-missing");
  edit_header(dir + "/model.safetensors", [](std::string &h) {
    replace_once(h, "\"encoder.layer.1.output.dense.bias\"", "\"cls.not_a_bert_tensor\"");
  });
  expect_import_fails(dir, {"model.safetensors", "missing tensor encoder.layer.1.output.dense.bias"});
}

TEST(Import, OffsetsPastEndOfFile) {
  std::string dir = copy_model("imp-offs");
  edit_header(dir + "/model.safetensors", [](std::string &h) {
    size_t k = h.find("\"embeddings.LayerNorm.bias\"");
    size_t o = h.find("data_offsets", k);
    size_t e = h.find("]", o);
    h.replace(o, e - o + 1, "data_offsets\":[0,99999999]");
  });
  expect_import_fails(dir, {"model.safetensors", "embeddings.LayerNorm.bias"});
}

// Offsets beyond 2^64 must be rejected before the double -> uint64 cast (which
// is undefined behaviour; the UBSan build in .ci/run traps on it).
TEST(Import, HugeFloatOffsetsAreRangeChecked) {
  std::string dir = copy_model("imp-huge");
  edit_header(dir + "/model.safetensors", [](std::string &h) {
    size_t k = h.find("\"embeddings.LayerNorm.bias\"");
    size_t o = h.find("data_offsets", k);
    size_t e = h.find("]", o);
    h.replace(o, e - o + 1, "data_offsets\":[1e300,1e301]");
  });
  expect_import_fails(dir, {"model.safetensors", "embeddings.LayerNorm.bias", "data_offsets"});
}

// A config integer beyond INT_MAX is an error, not a cast with undefined behaviour.
TEST(Import, HugeConfigIntegerIsRangeChecked) {
  std::string dir = copy_model("imp-bigint");
  std::string cfg = aft::read_file(dir + "/config.json");
  replace_once(cfg, "\"intermediate_size\": 96", "\"intermediate_size\": 1e300");
  aft::write_file(dir + "/config.json", cfg);
  expect_import_fails(dir, {"config.json", "intermediate_size", "integer"});
}

TEST(Import, ShapeMismatchWithConfig) {
  std::string dir = copy_model("imp-shape");
  std::string cfg = aft::read_file(dir + "/config.json");
  replace_once(cfg, "\"intermediate_size\": 96", "\"intermediate_size\": 80");
  aft::write_file(dir + "/config.json", cfg);
  expect_import_fails(dir, {"model.safetensors", "intermediate.dense", "shape"});
}

// A config.json implying far more parameters than the weights file holds
// (found by fuzz_hf_config: intermediate_size 25e6 asked for 231 GB) is
// refused before the model is allocated, naming both files; the check counts
// values, so it holds whatever the layout's padding.
TEST(Import, ConfigLargerThanTheWeightsIsRefusedBeforeAllocating) {
  std::string dir = copy_model("imp-huge");
  std::string cfg = aft::read_file(dir + "/config.json");
  replace_once(cfg, "\"intermediate_size\": 96", "\"intermediate_size\": 250000000");
  aft::write_file(dir + "/config.json", cfg);
  auto t0 = std::chrono::steady_clock::now();
  expect_import_fails(dir, {"config.json", "parameter values", "model.safetensors holds",
                            "do not match"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// A key twice in one object is ambiguous (cJSON reads the first, Python's
// json the last) and refused; found by fuzz_hf_config, where a second
// "num_hidden_layers" hid a first of 25e6 that built a 400M-entry table
// (a hang). Layers are bounded on their own too.
TEST(Import, DuplicateKeyAndHugeLayerCountAreRefusedAtOnce) {
  std::string dir = copy_model("imp-dup");
  std::string cfg = aft::read_file(dir + "/config.json");
  std::string dup = cfg;
  replace_once(dup, "\"intermediate_size\": 96", "\"intermediate_size\": 96, \"intermediate_size\": 96");
  aft::write_file(dir + "/config.json", dup);
  expect_import_fails(dir, {"config.json", "\"intermediate_size\" appears twice"});
  std::string layers = cfg;
  size_t at = layers.find("\"num_hidden_layers\"");
  ASSERT_NE(at, std::string::npos);
  size_t colon = layers.find(':', at), end = layers.find_first_of(",}", colon);
  layers.replace(colon + 1, end - colon - 1, " 25000000");
  aft::write_file(dir + "/config.json", layers);
  auto t0 = std::chrono::steady_clock::now();
  expect_import_fails(dir, {"config.json", "num_hidden_layers 25000000 > 1024"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(Import, MalformedConfig) {
  std::string dir = copy_model("imp-cfg");
  std::string cfg = aft::read_file(dir + "/config.json");
  aft::write_file(dir + "/config.json", cfg.substr(0, cfg.size() / 2));
  expect_import_fails(dir, {"config.json", "malformed JSON"});
}

TEST(Import, ConfigMissingField) {
  std::string dir = copy_model("imp-cfg2");
  std::string cfg = aft::read_file(dir + "/config.json");
  replace_once(cfg, "\"num_hidden_layers\"", "\"num_hidden_layerz\"");
  aft::write_file(dir + "/config.json", cfg);
  expect_import_fails(dir, {"config.json", "num_hidden_layers"});
}

TEST(Import, MissingVocab) {
  std::string dir = copy_model("imp-vocab");
  ASSERT_EQ(aft::run("rm '" + dir + "/vocab.txt'"), 0);
  expect_import_fails(dir, {"vocab.txt"});
}

TEST(Import, VocabWithoutUnk) {
  std::string dir = copy_model("imp-unk");
  std::string v = aft::read_file(dir + "/vocab.txt");
  replace_once(v, "[UNK]\n", "[UNX]\n");
  aft::write_file(dir + "/vocab.txt", v);
  expect_import_fails(dir, {"vocab.txt", "[UNK]"});
}

TEST(Import, PickleIsNeverLoaded) {
  std::string dir = copy_model("imp-pickle");
  ASSERT_EQ(aft::run("mv '" + dir + "/model.safetensors' '" + dir + "/pytorch_model.bin'"), 0);
  expect_import_fails(dir, {"pickle"});
}

TEST(Import, ExistingOutputIsNotTruncatedOnFailure) {
  std::string dir = copy_model("imp-keep");
  std::string out = dir + "/../out.h5";
  aft::write_file(out, "previous contents");
  std::string cfg = aft::read_file(dir + "/config.json");
  aft::write_file(dir + "/config.json", cfg.substr(0, 10));
  EXPECT_NE(aft::run(aft::cli() + " import-hf '" + dir + "' --out '" + out + "'"), 0);
  EXPECT_EQ(aft::read_file(out), "previous contents");
}

TEST(Checkpoint, CorruptedCheckpointIsRejected) {
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf(tiny_a().c_str(), &m, &err), AF_OK);
  std::string dir = aft::temp_dir("ckpt-bad"), path = dir + "/c.h5";
  ASSERT_EQ(af_model_save(path.c_str(), &m, &err), AF_OK);
  af_model_free(&m);
  std::string b = aft::read_file(path);
  aft::write_file(path, b.substr(0, b.size() / 2));
  af_model r;
  EXPECT_NE(af_model_load(path.c_str(), &r, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find(path), std::string::npos) << err.msg;
  aft::write_file(path, "not hdf5 at all");
  EXPECT_NE(af_model_load(path.c_str(), &r, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("HDF5"), std::string::npos) << err.msg;
}

}  // namespace
