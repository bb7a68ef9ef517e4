// The bf16 mode (af_device_set_precision, docs/performance.md): bf16 GEMM
// inputs with fp32 accumulation in the linear layers, everything else fp32.
//
// References: the fp32 path of the same model (itself tested against Hugging
// Face to 1e-4 in test_encoder and against PyTorch gradients in test_train).
// Tolerances, and why:
//  - pooled embeddings: cosine >= 0.999 to fp32 (the bound). bf16 has
//    unit roundoff 2^-8 = 0.39% per GEMM input; an embedding's error is a
//    sum of such relative errors over 6 layers' GEMMs, mostly averaging out:
//    observed min cosine 0.99998 on MiniLM, 2,000 Instacart names.
//  - gradients: max |bf16 - fp32| <= 2e-2 * max |fp32| per tensor: about 5
//    bf16 roundoffs; the backward of each weight passes through the forward
//    and the backward GEMMs of every layer above it, all with bf16 inputs
//    (observed 6.4e-3 on tiny BERT; a wrong pairing or a dropped K block
//    gives errors of order 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "io/h5util.h"
#include "nn/model.h"
#include "ops.h"
}

namespace {

bool have_bf16() {
  af_device d = af_device_cpu(0);
  af_error err{};
  return af_device_set_precision(&d, "bf16", &err) == AF_OK;
}

TEST(CpuBf16, RefusedClearlyWithoutTheInstructions) {
  af_device dev = af_device_cpu(0);
  af_error err{};
  EXPECT_EQ(af_device_set_precision_for(&dev, "bf16", 0, &err), AF_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(err.msg).find("AVX512_BF16"), std::string::npos) << err.msg;
  EXPECT_FALSE(af_device_is_bf16(&dev));
  EXPECT_EQ(af_device_set_precision_for(&dev, "fp16", 1, &err), AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("fp16"), std::string::npos) << err.msg;
  af_device gpu = dev;
  gpu.backend = AF_BACKEND_CUDA;
#ifdef AF_HAVE_CUDA
  // CUDA's bf16 table (training: the linear layers take bf16 GEMM inputs).
  EXPECT_EQ(af_device_set_precision_for(&gpu, "bf16", 1, &err), AF_OK) << err.msg;
  EXPECT_TRUE(af_device_is_bf16(&gpu));
#else
  EXPECT_EQ(af_device_set_precision_for(&gpu, "bf16", 1, &err), AF_ERR_UNSUPPORTED);
#endif
  EXPECT_EQ(af_device_set_precision_for(&dev, "fp32", 0, &err), AF_OK);
  EXPECT_EQ(af_device_set_precision_for(&dev, "bf16", 1, &err), AF_OK);
  EXPECT_TRUE(af_device_is_bf16(&dev));
  // The real check agrees with the CPU's flags.
  af_device d2 = af_device_cpu(0);
  EXPECT_EQ(af_device_set_precision(&d2, "bf16", &err) == AF_OK,
            (bool)__builtin_cpu_supports("avx512bf16"));
}

TEST(CpuBf16, CliRejectsAnUnknownPrecision) {
  std::string serr;
  for (const char *cmd : {"embed --model m.h5 --catalog c.csv --id-column a --text-column b "
                          "--out o.h5 --precision fp16",
                          "train --model m.h5 --baskets b.csv --out o --precision fp16"}) {
    EXPECT_NE(aft::run(aft::cli() + " " + cmd, nullptr, &serr), 0) << cmd;
    EXPECT_NE(serr.find("fp16"), std::string::npos) << serr;
  }
}

std::vector<std::string> product_names(size_t n) {
  std::vector<std::string> names;
  FILE *f = std::fopen((aft::source_dir() + "/datasets/instacart-sample/products.csv").c_str(), "r");
  if (!f) return names;
  char line[4096];
  if (!std::fgets(line, sizeof line, f)) n = 0;
  while (names.size() < n && std::fgets(line, sizeof line, f)) {
    std::string s(line);
    size_t a = s.find(','), b = s.find(',', a + 1);
    if (a == std::string::npos || b == std::string::npos || s.find('"') != std::string::npos) continue;
    names.push_back(s.substr(a + 1, b - a - 1));
  }
  std::fclose(f);
  return names;
}

// Pooled embeddings of names under dev; (n, C).
std::vector<float> embed(const af_model *m, const af_device &dev,
                         const std::vector<std::string> &names) {
  af_error err{};
  af_encoder *enc = nullptr;
  af_tokenizer *tok = nullptr;
  EXPECT_EQ(af_encoder_create(m, &dev, &enc, &err), AF_OK) << err.msg;
  EXPECT_EQ(af_model_tokenizer(m, 0, &tok, &err), AF_OK) << err.msg;
  std::vector<const char *> texts;
  for (auto &s : names) texts.push_back(s.c_str());
  std::vector<float> out(names.size() * (size_t)m->cfg.hidden_size);
  EXPECT_EQ(af_embed_texts(enc, tok, texts.data(), (int64_t)names.size(), nullptr, out.data(), &err),
            AF_OK)
      << err.msg;
  af_tokenizer_free(tok);
  af_encoder_free(enc);
  return out;
}

double min_cosine(const af_model *m, const std::vector<std::string> &names) {
  af_device fp32 = af_device_cpu(0), bf16 = af_device_cpu(0);
  af_error err{};
  EXPECT_EQ(af_device_set_precision(&bf16, "bf16", &err), AF_OK) << err.msg;
  std::vector<float> a = embed(m, fp32, names), b = embed(m, bf16, names);
  const int C = m->cfg.hidden_size;
  double worst = 1, differs = 0;
  for (size_t i = 0; i < names.size(); i++) {
    double ab = 0, aa = 0, bb = 0;
    for (int c = 0; c < C; c++) {
      double x = a[i * C + c], y = b[i * C + c];
      ab += x * y;
      aa += x * x;
      bb += y * y;
      differs = std::max(differs, std::fabs(x - y));
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  EXPECT_GT(differs, 0) << "bf16 gave the fp32 bits: the bf16 path did not run";
  return worst;
}

TEST(CpuBf16, PooledCosineToFp32TinyBert) {
  if (!have_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK)
      << err.msg;
  auto names = product_names(400);
  ASSERT_EQ(names.size(), 400u);
  double c = min_cosine(&m, names);
  std::printf("  tiny BERT, 400 names: min cosine bf16 vs fp32 %.6f\n", c);
  EXPECT_GE(c, 0.999);
  af_model_free(&m);
}

TEST(CpuBf16, PooledCosineToFp32MiniLMWhenInstalled) {
  if (!have_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  std::string path = aft::source_dir() + "/weights/all-MiniLM-L6-v2.h5";
  if (!aft::file_exists(path)) GTEST_SKIP() << "weights/all-MiniLM-L6-v2.h5 not installed";
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_load(path.c_str(), &m, &err), AF_OK) << err.msg;
  auto names = product_names(200);
  double c = min_cosine(&m, names);
  std::printf("  MiniLM, 200 names: min cosine bf16 vs fp32 %.6f\n", c);
  EXPECT_GE(c, 0.999);
  af_model_free(&m);
}

template <class T>
std::vector<T> read_all(hid_t f, const char *name, hid_t type) {
  int rank = 0;
  hsize_t dims[8];
  af_error err{};
  EXPECT_EQ(af_h5_shape(f, name, &rank, dims, &err), AF_OK) << name << ": " << err.msg;
  size_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  std::vector<T> v(n);
  EXPECT_EQ(af_h5_read(f, name, type, v.data(), n, &err), AF_OK) << name << ": " << err.msg;
  return v;
}

// Loss and gradient of one batch (the PyTorch-checked fixture of test_train) under dev.
std::vector<float> grads(const af_device &dev, float *loss, int *n_params, af_model *m) {
  af_error err{};
  hid_t f = -1;
  EXPECT_EQ(af_h5_open((aft::source_dir() + "/tests/data/train/grads.h5").c_str(), 0, &f, &err), AF_OK)
      << err.msg;
  auto ids = read_all<int32_t>(f, "ids", H5T_NATIVE_INT32);
  auto cu = read_all<int32_t>(f, "cu_seqlens", H5T_NATIVE_INT32);
  af_h5_close(f, "grads.h5", nullptr);
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.dropout = cfg.attn_dropout = 0;
  af_trainer *t = nullptr;
  EXPECT_EQ(af_trainer_create(m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  af_batch b{(int)cu.size() - 1, (int)ids.size(), ids.data(), cu.data()};
  EXPECT_EQ(af_trainer_accumulate(t, &b, 0, loss, &err), AF_OK) << err.msg;
  std::vector<float> g(af_trainer_grad(t), af_trainer_grad(t) + m->n_floats);
  *n_params = m->n_params;
  af_trainer_free(t);
  return g;
}

TEST(CpuBf16, TrainingGradientsCloseToFp32) {
  if (!have_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  af_model m;
  af_error err{};
  ASSERT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK);
  m.cfg.normalize = 1;
  af_device fp32 = af_device_cpu(0), bf16 = af_device_cpu(0);
  ASSERT_EQ(af_device_set_precision(&bf16, "bf16", &err), AF_OK);
  float l32 = 0, l16 = 0;
  int np = 0;
  std::vector<float> g32 = grads(fp32, &l32, &np, &m), g16 = grads(bf16, &l16, &np, &m);
  std::printf("  loss fp32 %.6f bf16 %.6f\n", l32, l16);
  EXPECT_NEAR(l16, l32, 1e-2 * std::max(1.0f, std::fabs(l32)));
  double worst = 0;
  int checked = 0;
  for (int i = 0; i < m.n_params; i++) {
    const af_param_info *p = &m.params[i];
    if (!af_trainer_param_trained(p->name) || std::string(p->name).find(".key.bias") != std::string::npos)
      continue;  // key bias: analytically zero, both sides noise (see test_train)
    double ref = 0, diff = 0;
    for (int64_t k = 0; k < p->numel; k++) {
      ref = std::max(ref, (double)std::fabs(g32[p->offset + k]));
      diff = std::max(diff, (double)std::fabs(g16[p->offset + k] - g32[p->offset + k]));
    }
    if (ref == 0) continue;
    worst = std::max(worst, diff / ref);
    EXPECT_LE(diff / ref, 2e-2) << p->name;
    checked++;
  }
  std::printf("  %d tensors, worst relative gradient difference bf16 vs fp32 %.2e\n", checked, worst);
  EXPECT_GT(worst, 0) << "bf16 gave the fp32 bits: the bf16 path did not run";
  af_model_free(&m);
}

}  // namespace
