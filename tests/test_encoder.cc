// Encoder parity against Hugging Face transformers / sentence-transformers
// (fixtures: tools/reference/make_encoder_fixtures.py). No PyTorch needed here.
//
// Tolerances (DEVELOPERS.md): fp32 hidden states and pooled embeddings within
// 1e-4 max-abs of PyTorch, cosine >= 0.99999. Both sides compute in fp32 with
// different summation orders (BLAS blocking, our per-row LayerNorm), so
// differences of a few 1e-6 per layer are expected; 1e-4 leaves room for
// growth through 6 layers but would catch any wrong op (those give >= 1e-2).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "io/h5util.h"
#include "nn/model.h"
}

namespace {

struct Fixture {
  std::vector<int32_t> ids, cu, cu_hidden;
  std::vector<float> pooled, hidden;  // (N, C), (L+1, T_hidden, C)
  int n = 0, n_hidden = 0;
};

Fixture load_fixture(const std::string &path, int C) {
  Fixture f;
  af_error err{};
  hid_t h = H5I_INVALID_HID;
  af_h5_open(path.c_str(), 0, &h, &err);
  EXPECT_GE(h, 0) << err.msg;
  int rank;
  hsize_t dims[8];
  EXPECT_EQ(af_h5_shape(h, "ids", &rank, dims, &err), AF_OK) << err.msg;
  f.ids.resize(dims[0]);
  EXPECT_EQ(af_h5_read(h, "ids", H5T_NATIVE_INT32, f.ids.data(), f.ids.size(), &err), AF_OK);
  EXPECT_EQ(af_h5_shape(h, "cu_seqlens", &rank, dims, &err), AF_OK);
  f.cu.resize(dims[0]);
  f.n = (int)dims[0] - 1;
  EXPECT_EQ(af_h5_read(h, "cu_seqlens", H5T_NATIVE_INT32, f.cu.data(), f.cu.size(), &err), AF_OK);
  EXPECT_EQ(af_h5_shape(h, "cu_seqlens_hidden", &rank, dims, &err), AF_OK);
  f.cu_hidden.resize(dims[0]);
  f.n_hidden = (int)dims[0] - 1;
  EXPECT_EQ(af_h5_read(h, "cu_seqlens_hidden", H5T_NATIVE_INT32, f.cu_hidden.data(), dims[0], &err), AF_OK);
  f.pooled.resize((size_t)f.n * C);
  EXPECT_EQ(af_h5_read(h, "pooled", H5T_NATIVE_FLOAT, f.pooled.data(), f.pooled.size(), &err), AF_OK) << err.msg;
  EXPECT_EQ(af_h5_shape(h, "hidden", &rank, dims, &err), AF_OK);
  f.hidden.resize(dims[0] * dims[1] * dims[2]);
  EXPECT_EQ(dims[2], (hsize_t)C);
  EXPECT_EQ(af_h5_read(h, "hidden", H5T_NATIVE_FLOAT, f.hidden.data(), f.hidden.size(), &err), AF_OK);
  af_h5_close(h, path.c_str(), &err);
  return f;
}

double max_abs(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = std::fabs((double)a[i] - (double)b[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

double cosine(const float *a, const float *b, int C) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < C; i++) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

void check_model(const af_model &m, const std::string &fixture_path, const af_device &dev) {
  const int C = m.cfg.hidden_size, L = m.cfg.num_layers;
  Fixture f = load_fixture(fixture_path, C);
  ASSERT_GT(f.n, 0);
  af_error err{};
  af_encoder *enc = nullptr;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &err), AF_OK) << err.msg;

  // Every layer's hidden states for the first n_hidden sequences, as one packed batch.
  const int Th = f.cu_hidden[f.n_hidden];
  std::vector<float> pooled_h((size_t)f.n_hidden * C), hidden((size_t)(L + 1) * Th * C);
  af_batch bh{f.n_hidden, Th, f.ids.data(), f.cu_hidden.data()};
  ASSERT_EQ(af_encoder_forward(enc, &bh, pooled_h.data(), hidden.data(), &err), AF_OK) << err.msg;
  ASSERT_EQ(f.hidden.size(), hidden.size());
  for (int l = 0; l <= L; l++) {
    size_t off = (size_t)l * Th * C;
    double d = max_abs(hidden.data() + off, f.hidden.data() + off, (size_t)Th * C);
    EXPECT_LE(d, 1e-4) << fixture_path << ": hidden state " << l << " max-abs " << d;
    ::testing::Test::RecordProperty("hidden_max_abs_layer_" + std::to_string(l), std::to_string(d));
  }

  // Pooled embeddings of all sequences, packed in uneven batches (3 batches).
  std::vector<float> pooled((size_t)f.n * C);
  int b0 = 0;
  const int splits[] = {f.n / 3, 2 * f.n / 3, f.n};
  for (int s : splits) {
    if (s <= b0) continue;
    std::vector<int32_t> cu(s - b0 + 1);
    for (int i = b0; i <= s; i++) cu[i - b0] = f.cu[i] - f.cu[b0];
    af_batch b{s - b0, cu.back(), f.ids.data() + f.cu[b0], cu.data()};
    ASSERT_EQ(af_encoder_forward(enc, &b, pooled.data() + (size_t)b0 * C, nullptr, &err), AF_OK) << err.msg;
    b0 = s;
  }
  double d = max_abs(pooled.data(), f.pooled.data(), pooled.size());
  double min_cos = 1.0;
  for (int i = 0; i < f.n; i++) min_cos = std::min(min_cos, cosine(&pooled[(size_t)i * C], &f.pooled[(size_t)i * C], C));
  EXPECT_LE(d, 1e-4) << fixture_path << ": pooled max-abs " << d;
  EXPECT_GE(min_cos, 0.99999) << fixture_path << ": pooled min cosine " << min_cos;
  std::printf("%s: pooled max-abs %.3g, min cosine %.8f over %d texts\n", fixture_path.c_str(), d, min_cos, f.n);
  af_encoder_free(enc);
}

TEST(Encoder, MiniLMMatchesSentenceTransformers) {
  af_model m;
  af_error err{};
  std::string path = aft::source_dir() + "/weights/all-MiniLM-L6-v2.h5";
  ASSERT_EQ(af_model_load(path.c_str(), &m, &err), AF_OK) << err.msg << " (run ./setup.sh to install the model)";
  EXPECT_EQ(m.cfg.hidden_size, 384);
  EXPECT_EQ(m.cfg.pooling, AF_POOL_MEAN);
  EXPECT_EQ(m.cfg.normalize, 1);
  check_model(m, aft::source_dir() + "/tests/data/encoder/minilm.h5", af_device_cpu(0));
  af_model_free(&m);
}

TEST(Encoder, TinyBertHeadSize16MeanPooling) {
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  EXPECT_EQ(m.cfg.num_heads, 4);
  EXPECT_EQ(m.cfg.has_pooler, 1);
  EXPECT_EQ(m.cfg.normalize, 0);
  check_model(m, aft::source_dir() + "/tests/data/encoder/tiny_a.h5", af_device_cpu(0));
  af_model_free(&m);
}

TEST(Encoder, TinyBertHeadSize64ClsPoolingNormalized) {
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_b").c_str(), &m, &err), AF_OK) << err.msg;
  EXPECT_EQ(m.cfg.hidden_size / m.cfg.num_heads, 64);
  EXPECT_EQ(m.cfg.pooling, AF_POOL_CLS);
  EXPECT_EQ(m.cfg.normalize, 1);
  EXPECT_EQ(m.cfg.max_seq_len, 64);
  check_model(m, aft::source_dir() + "/tests/data/encoder/tiny_b.h5", af_device_cpu(0));
  af_model_free(&m);
}

// The CUDA path against the same Hugging Face fixtures and tolerance (fp32
// cuBLAS without TF32; our kernels sum in fp32 in another order than PyTorch).
// The tiny models travel with the tests, so the GPU machine needs no weights.
void check_cuda(const std::string &folder, const std::string &fixture) {
  if (!af_cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + folder).c_str(), &m, &err), AF_OK) << err.msg;
  af_device dev;
  ASSERT_EQ(af_device_cuda(0, &dev, &err), AF_OK) << err.msg;
  check_model(m, aft::source_dir() + fixture, dev);
  af_device_release(&dev);
  af_model_free(&m);
}

TEST(EncoderCuda, TinyBertHeadSize16MeanPooling) {
  check_cuda("/tests/data/tiny_bert_a", "/tests/data/encoder/tiny_a.h5");
}

TEST(EncoderCuda, TinyBertHeadSize64ClsPoolingNormalized) {
  check_cuda("/tests/data/tiny_bert_b", "/tests/data/encoder/tiny_b.h5");
}

TEST(EncoderCuda, MiniLMWhenInstalled) {
  std::string path = aft::source_dir() + "/weights/all-MiniLM-L6-v2.h5";
  if (!af_cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  if (!aft::file_exists(path)) GTEST_SKIP() << "model not carried to this machine";
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_load(path.c_str(), &m, &err), AF_OK) << err.msg;
  af_device dev;
  ASSERT_EQ(af_device_cuda(0, &dev, &err), AF_OK) << err.msg;
  check_model(m, aft::source_dir() + "/tests/data/encoder/minilm.h5", dev);
  af_device_release(&dev);
  af_model_free(&m);
}

TEST(Encoder, RejectsBadBatch) {
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  af_device dev = af_device_cpu(0);
  af_encoder *enc = nullptr;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &err), AF_OK);
  std::vector<int32_t> ids = {2, 5, 100000};
  std::vector<int32_t> cu = {0, 3};
  std::vector<float> out(m.cfg.hidden_size);
  af_batch b{1, 3, ids.data(), cu.data()};
  EXPECT_EQ(af_encoder_forward(enc, &b, out.data(), nullptr, &err), AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("out of range"), std::string::npos) << err.msg;
  std::vector<int32_t> long_ids(m.cfg.max_position + 1, 5);
  std::vector<int32_t> cu2 = {0, (int32_t)long_ids.size()};
  af_batch b2{1, (int)long_ids.size(), long_ids.data(), cu2.data()};
  EXPECT_EQ(af_encoder_forward(enc, &b2, out.data(), nullptr, &err), AF_ERR_ARG);
  af_encoder_free(enc);
  af_model_free(&m);
}

}  // namespace
