// The training loop (include/affinity.h, include/affinity.h, affinity train):
//  - every parameter's gradient of one batch against PyTorch autograd
//    (tests/data/train/grads.h5, tools/reference/make_train_fixtures.py);
//  - 3 AdamW steps with accumulation, warm-up and clipping against torch
//    (tests/data/train/steps.h5): per-micro-batch losses;
//  - dropout 0: the training forward is bitwise the inference forward;
//  - checkpoints: exact round trip, corrupted/truncated files rejected;
//  - CLI: N steps + resume N steps == 2N steps, byte for byte;
//  - pairs from baskets against a brute-force count; epoch orders.
//
// Tolerances:
//  - gradients: per tensor max|ours - torch| <= 1e-4 * max|torch| (the
//    brief's 1e-4). Both are float32 with different summation orders (packed
//    GEMMs vs per-sequence torch matmuls); through 2 layers, a LayerNorm per
//    sublayer and the 20x loss scale the rounding is ~1e-6 relative. A wrong
//    term anywhere (a missed residual, a dropped LayerNorm gradient) is O(1).
//  - loss: 1e-5 absolute (float32 cosine similarities times 20 carry ~1e-6).
//  - AdamW steps: losses 1e-5 * max(1, |loss|) (the brief's 1e-5).
//  - everything about resume and dropout-0 equality: bitwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "io/h5util.h"
#include "nn/model.h"
}

namespace {

std::string data(const std::string &rel) { return aft::source_dir() + "/tests/data/" + rel; }

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

struct Model {
  af_model m{};
  bool ok = false;
  explicit Model(const std::string &dir) {
    af_error err{};
    ok = af_model_import_hf(dir.c_str(), &m, &err) == AF_OK;
    EXPECT_TRUE(ok) << err.msg;
  }
  ~Model() {
    if (ok) af_model_free(&m);
  }
};

af_train_config base_config(float dropout) {
  af_train_config c;
  af_train_default_config(&c);
  c.dropout = dropout;
  c.attn_dropout = dropout;
  return c;
}

TEST(Train, GradientsMatchPyTorch) {
  Model M(data("tiny_bert_a"));
  ASSERT_TRUE(M.ok);
  M.m.cfg.normalize = 1;  // the fixture's pipeline: mean pooling -> normalise -> MNR
  af_error err{};
  hid_t f = H5I_INVALID_HID;
  af_h5_open(data("train/grads.h5").c_str(), 0, &f, &err);
  ASSERT_GE(f, 0) << err.msg;
  auto ids = read_all<int32_t>(f, "ids", H5T_NATIVE_INT32);
  auto cu = read_all<int32_t>(f, "cu_seqlens", H5T_NATIVE_INT32);
  float ref_loss = read_all<float>(f, "loss", H5T_NATIVE_FLOAT)[0];
  af_device dev = af_device_cpu(0);
  af_train_config cfg = base_config(0.0f);
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  af_batch b{(int)cu.size() - 1, (int)ids.size(), ids.data(), cu.data()};
  float loss = 0;
  ASSERT_EQ(af_trainer_accumulate(t, &b, 0, &loss, &err), AF_OK) << err.msg;
  std::printf("  loss %.7f (torch %.7f)\n", loss, ref_loss);
  EXPECT_NEAR(loss, ref_loss, 1e-5);
  const float *g = af_trainer_grad(t);
  int checked = 0;
  double worst = 0, gmax = 0;
  for (int64_t k = 0; k < M.m.n_floats; k++) gmax = std::max(gmax, (double)std::fabs(g[k]));
  for (int i = 0; i < M.m.n_params; i++) {
    const af_param_info *p = &M.m.params[i];
    std::string name = std::string("grad/") + p->name;
    if (!af_trainer_param_trained(p->name)) {
      EXPECT_FALSE(af_h5_exists(f, name.c_str())) << name;
      continue;
    }
    auto ref = read_all<float>(f, name.c_str(), H5T_NATIVE_FLOAT);
    ASSERT_EQ((int64_t)ref.size(), p->numel) << name;
    double maxref = 0, maxdiff = 0;
    for (int64_t k = 0; k < p->numel; k++) {
      maxref = std::max(maxref, (double)std::fabs(ref[k]));
      maxdiff = std::max(maxdiff, (double)std::fabs(g[p->offset + k] - ref[k]));
    }
    if (name.find(".key.bias") != std::string::npos) {
      // Analytically zero: adding b to every key adds q.b to every score of a
      // row, which the softmax ignores. Both sides hold rounding noise only.
      double ours = 0;
      for (int64_t k = 0; k < p->numel; k++) ours = std::max(ours, (double)std::fabs(g[p->offset + k]));
      std::printf("  %s: analytically 0; ours %.1e, torch %.1e (largest gradient %.1e)\n",
                  p->name, ours, maxref, gmax);
      EXPECT_LE(ours, 1e-6 * gmax) << name;
      EXPECT_LE(maxref, 1e-6 * gmax) << name;
      checked++;
      continue;
    }
    ASSERT_GT(maxref, 0) << name << ": the reference gradient is all zero";
    double rel = maxdiff / maxref;
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << name;
    checked++;
  }
  std::printf("  %d tensors, worst relative gradient error %.2e\n", checked, worst);
  EXPECT_EQ(checked, M.m.n_params - 2);  // all but the pooler
  af_h5_close(f, "grads.h5", nullptr);
  af_trainer_free(t);
}

TEST(Train, AdamWStepsMatchPyTorch) {
  Model M(data("tiny_bert_a"));
  ASSERT_TRUE(M.ok);
  M.m.cfg.normalize = 1;
  af_error err{};
  hid_t f = H5I_INVALID_HID;
  af_h5_open(data("train/steps.h5").c_str(), 0, &f, &err);
  ASSERT_GE(f, 0) << err.msg;
  auto ids = read_all<int32_t>(f, "micro_ids", H5T_NATIVE_INT32);
  auto tok = read_all<int64_t>(f, "micro_tok", H5T_NATIVE_INT64);
  auto cus = read_all<int32_t>(f, "micro_cu", H5T_NATIVE_INT32);
  auto losses = read_all<float>(f, "losses", H5T_NATIVE_FLOAT);
  auto lrs = read_all<double>(f, "lrs", H5T_NATIVE_DOUBLE);
  af_train_config cfg = base_config(0.0f);
  int64_t accum = 0, batch = 0;
  double wd = 0;
  ASSERT_EQ(af_h5_attr_get_f64(f, ".", "lr", &cfg.lr, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_i64(f, ".", "warmup", &cfg.warmup, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_i64(f, ".", "total_steps", &cfg.total_steps, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_f64(f, ".", "weight_decay", &wd, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_f64(f, ".", "max_grad_norm", &cfg.max_grad_norm, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_i64(f, ".", "grad_accum", &accum, &err), AF_OK);
  ASSERT_EQ(af_h5_attr_get_i64(f, ".", "batch", &batch, &err), AF_OK);
  cfg.adamw.weight_decay = (float)wd;
  cfg.grad_accum = (int)accum;
  cfg.batch = (int)batch;
  af_device dev = af_device_cpu(0);
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  const int n_micro = (int)losses.size(), stride = 2 * (int)batch + 1;
  double worst = 0;
  std::vector<double> gmax((size_t)M.m.n_floats, 0.0);  // (n_floats) max |gradient| over steps
  for (int mb = 0; mb < n_micro; mb++) {
    af_batch b{2 * (int)batch, (int)(tok[mb + 1] - tok[mb]), ids.data() + tok[mb],
               cus.data() + (size_t)mb * stride};
    float loss = 0;
    ASSERT_EQ(af_trainer_accumulate(t, &b, (uint64_t)mb, &loss, &err), AF_OK) << err.msg;
    worst = std::max(worst, (double)std::fabs(loss - losses[mb]));
    EXPECT_NEAR(loss, losses[mb], 1e-5 * std::max(1.0f, std::fabs(losses[mb]))) << "micro " << mb;
    if ((mb + 1) % accum == 0) {
      const float *g = af_trainer_grad(t);  // (n_floats) this step's summed gradient
      for (int64_t q = 0; q < M.m.n_floats; q++)
        gmax[q] = std::max(gmax[q], (double)std::fabs(g[q]));
      double lr = 0, norm = 0;
      ASSERT_EQ(af_trainer_step(t, (int)accum, &lr, &norm, &err), AF_OK) << err.msg;
      EXPECT_NEAR(lr, lrs[mb / accum], 1e-12) << "step " << mb / accum;
    }
  }
  std::printf("  %d micro-batch losses, worst abs error %.2e\n", n_micro, worst);
  // Final parameters. AdamW's update m/(sqrt(v)+eps) divides by the gradient's
  // own scale, so where the true gradient is zero the update is rounding noise
  // blown up to lr size, with a sign no two implementations share. That is
  // the attention key bias: adding b_k to every key adds q.b_k to every score
  // of a softmax row, which the softmax ignores, so d loss / d b_k = 0 exactly
  // (ours and torch's are ~1e-9 of float noise). Those elements (gradient below
  // kNoise in every step) get the bound any AdamW step obeys, |step| <= lr *
  // (1 - beta1) / sqrt(1 - beta2) ~ 3.2 lr (Kingma & Ba, sec. 2.1), and their
  // gradient is checked to be noise; every other element must match torch to
  // 1e-5: fp32 rounding of parameters ~0.1..1 over 3 steps (measured 1.1e-6 on
  // AMD Zen 4 and Intel Xeon). A wrong AdamW (bias correction, decay on the
  // wrong tensors, eps placement) moves weights by 1e-5..1e-3 and fails here.
  const double kNoise = 1e-7, kAdamStepBound = 3.2 * cfg.lr;
  double pworst = 0, noise_worst = 0;
  int64_t n_noise = 0, n_checked = 0;
  for (int i = 0; i < M.m.n_params; i++) {
    const af_param_info *p = &M.m.params[i];
    auto ref = read_all<float>(f, (std::string("final/") + p->name).c_str(), H5T_NATIVE_FLOAT);
    bool key_bias = std::strstr(p->name, "attention.self.key.bias") != nullptr;
    for (int64_t k = 0; k < p->numel; k++) {
      double d = std::fabs(M.m.data[p->offset + k] - ref[k]), g = gmax[p->offset + k];
      if (key_bias) {
        EXPECT_LT(g, kNoise) << p->name << "[" << k << "]: its true gradient is 0";
      }
      if (g < kNoise) {
        n_noise++;
        noise_worst = std::max(noise_worst, d);
        EXPECT_LE(d, 3 * kAdamStepBound) << p->name << "[" << k << "]";  // 3 steps
      } else {
        n_checked++;
        pworst = std::max(pworst, d);
        EXPECT_LE(d, 1e-5) << p->name << "[" << k << "] gradient " << g;
      }
    }
  }
  std::printf("  final parameters: max abs difference %.2e on %lld elements with a gradient; "
              "%.2e on %lld at the noise floor (lr %.0e)\n",
              pworst, (long long)n_checked, noise_worst, (long long)n_noise, cfg.lr);
  // The noise set is the key biases and the rows of tokens no batch uses.
  EXPECT_GT(n_checked, 5 * n_noise) << "few elements have a gradient: the fixture is wrong";
  af_h5_close(f, "steps.h5", nullptr);
  af_trainer_free(t);
}

// A deterministic packed batch of 2B random sequences for model m.
struct RandomBatch {
  std::vector<int32_t> ids, cu;
  af_batch b{};
  RandomBatch(const af_model &m, int n_seq, unsigned seed, int max_len = 12) {
    unsigned x = seed;
    auto next = [&x]() { return x = x * 1664525u + 1013904223u; };
    cu.push_back(0);
    for (int i = 0; i < n_seq; i++) {
      int len = 2 + (int)(next() >> 8) % (max_len - 1);
      for (int k = 0; k < len; k++) ids.push_back((int32_t)((next() >> 8) % m.cfg.vocab_size));
      cu.push_back((int32_t)ids.size());
    }
    b = af_batch{n_seq, (int)ids.size(), ids.data(), cu.data()};
  }
};

TEST(Train, DropoutZeroForwardEqualsInference) {
  for (const char *name : {"tiny_bert_a", "tiny_bert_b"}) {
    Model M(data(name));
    ASSERT_TRUE(M.ok);
    af_error err{};
    af_device dev = af_device_cpu(0);
    RandomBatch rb(M.m, 7, 99, 20);
    const int C = M.m.cfg.hidden_size;
    std::vector<float> a(7 * C), b(7 * C);
    af_encoder *enc = nullptr;
    ASSERT_EQ(af_encoder_create(&M.m, &dev, &enc, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_encoder_forward(enc, &rb.b, a.data(), nullptr, &err), AF_OK) << err.msg;
    af_encoder_free(enc);
    af_train_config cfg = base_config(0.0f);
    af_trainer *t = nullptr;
    ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_trainer_forward(t, &rb.b, 5, b.data(), &err), AF_OK) << err.msg;
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * a.size())) << name;
    af_trainer_free(t);
  }
}

TEST(Train, DropoutMasksDependOnSeedAndMicroBatchOnly) {
  Model M(data("tiny_bert_a"));
  ASSERT_TRUE(M.ok);
  af_error err{};
  af_device dev = af_device_cpu(0);
  RandomBatch rb(M.m, 6, 7);
  const int C = M.m.cfg.hidden_size;
  std::vector<float> e0(6 * C), e1(6 * C), e2(6 * C), e3(6 * C);
  af_train_config cfg = base_config(0.1f);
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_forward(t, &rb.b, 3, e0.data(), &err), AF_OK);
  ASSERT_EQ(af_trainer_forward(t, &rb.b, 4, e1.data(), &err), AF_OK);
  ASSERT_EQ(af_trainer_forward(t, &rb.b, 3, e2.data(), &err), AF_OK);
  af_trainer_free(t);
  cfg.seed = 43;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_forward(t, &rb.b, 3, e3.data(), &err), AF_OK);
  af_trainer_free(t);
  EXPECT_EQ(0, std::memcmp(e0.data(), e2.data(), sizeof(float) * e0.size()));
  EXPECT_NE(0, std::memcmp(e0.data(), e1.data(), sizeof(float) * e0.size()));
  EXPECT_NE(0, std::memcmp(e0.data(), e3.data(), sizeof(float) * e0.size()));
}

// Finite differences of the loss with dropout on (hidden and attention
// probabilities): the backward uses the same masks as the forward. Central differences in float32 on a few weights;
// tolerance 2e-2 relative (float32 loss differences at h = 1e-2 carry ~1e-4
// absolute noise; a mask mismatch changes these gradients by O(1)).
TEST(Train, DropoutBackwardMatchesFiniteDifferences) {
  Model M(data("tiny_bert_a"));
  ASSERT_TRUE(M.ok);
  af_error err{};
  af_device dev = af_device_cpu(0);
  RandomBatch rb(M.m, 8, 11);
  af_train_config cfg = base_config(0.3f);
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  float loss = 0;
  ASSERT_EQ(af_trainer_accumulate(t, &rb.b, 9, &loss, &err), AF_OK) << err.msg;
  std::vector<float> g(af_trainer_grad(t), af_trainer_grad(t) + M.m.n_floats);
  const char *names[] = {"encoder.layer.1.output.dense.weight",
                         "encoder.layer.0.attention.output.dense.bias",
                         "encoder.layer.1.attention.self.query.weight",
                         "encoder.layer.0.attention.self.value.weight",
                         "embeddings.LayerNorm.weight"};
  int tested = 0;
  for (const char *name : names) {
    const af_param_info *p = af_model_param(&M.m, name);
    ASSERT_NE(p, nullptr);
    // the coordinate with the largest gradient
    int64_t best = 0;
    for (int64_t k = 0; k < p->numel; k++)
      if (std::fabs(g[p->offset + k]) > std::fabs(g[p->offset + best])) best = k;
    float *w = M.m.data + p->offset + best, w0 = *w, h = 1e-2f;
    float lp = 0, lm = 0;
    *w = w0 + h;
    ASSERT_EQ(af_trainer_accumulate(t, &rb.b, 9, &lp, &err), AF_OK);
    *w = w0 - h;
    ASSERT_EQ(af_trainer_accumulate(t, &rb.b, 9, &lm, &err), AF_OK);
    *w = w0;
    double fd = ((double)lp - lm) / (2.0 * h), an = g[p->offset + best];
    std::printf("  %s[%lld]: analytic %.6f, finite difference %.6f\n", name, (long long)best, an,
                fd);
    EXPECT_NEAR(an, fd, 2e-2 * std::max(std::fabs(an), 1e-2)) << name;
    tested++;
  }
  EXPECT_EQ(tested, 5);
  af_trainer_free(t);
}

TEST(Train, CheckpointRoundTripAndCorruption) {
  Model M(data("tiny_bert_b"));
  ASSERT_TRUE(M.ok);
  af_error err{};
  af_device dev = af_device_cpu(0);
  af_train_config cfg = base_config(0.1f);
  cfg.total_steps = 10;
  cfg.lr = 1e-3;
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  RandomBatch rb(M.m, 8, 5);
  for (int s = 0; s < 2; s++) {
    float loss;
    ASSERT_EQ(af_trainer_accumulate(t, &rb.b, (uint64_t)s, &loss, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_trainer_step(t, 1, nullptr, nullptr, &err), AF_OK) << err.msg;
  }
  af_train_meta meta{3, 17, 100, 5, 0x0123456789abcdefULL, 4242, 32};
  std::string dir = aft::temp_dir("train-ckpt");
  std::string path = dir + "/c.h5";
  ASSERT_EQ(af_train_checkpoint_save(path.c_str(), t, &meta, &err), AF_OK) << err.msg;
  EXPECT_TRUE(af_train_checkpoint_is(path.c_str()));
  af_model r{};
  af_trainer *rt = nullptr;
  af_train_meta rmeta{};
  ASSERT_EQ(af_train_checkpoint_load(path.c_str(), &dev, &r, &rt, &rmeta, &err), AF_OK) << err.msg;
  EXPECT_EQ(0, std::memcmp(&meta, &rmeta, sizeof meta));
  EXPECT_EQ(af_trainer_steps_done(rt), 2);
  EXPECT_EQ(0, std::memcmp(af_trainer_config(rt), af_trainer_config(t), sizeof(af_train_config)));
  ASSERT_EQ(r.n_floats, M.m.n_floats);
  EXPECT_EQ(0, std::memcmp(r.data, M.m.data, sizeof(float) * r.n_floats));
  for (int i = 0; i < r.n_params; i++) {
    const af_param_info *p = &r.params[i];
    if (!af_trainer_param_trained(p->name)) continue;
    EXPECT_EQ(0, std::memcmp(af_trainer_moment1(rt) + p->offset, af_trainer_moment1(t) + p->offset,
                             sizeof(float) * p->numel));
    EXPECT_EQ(0, std::memcmp(af_trainer_moment2(rt) + p->offset, af_trainer_moment2(t) + p->offset,
                             sizeof(float) * p->numel));
  }
  af_trainer_free(rt);
  af_model_free(&r);

  std::string blob = aft::read_file(path);
  // truncated
  std::string trunc = dir + "/trunc.h5";
  aft::write_file(trunc, blob.substr(0, blob.size() / 2));
  err = af_error{};
  EXPECT_NE(af_train_checkpoint_load(trunc.c_str(), &dev, &r, &rt, &rmeta, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("trunc.h5"), std::string::npos) << err.msg;
  std::printf("  truncated: %s\n", err.msg);
  EXPECT_EQ(rt, nullptr);
  // corrupted: flip bytes inside the largest tensor's data (word embeddings
  // of the v moment are near the middle; flip at several places)
  int rejected = 0;
  for (double at : {0.3, 0.5, 0.7, 0.9}) {
    std::string bad = blob;
    size_t pos = (size_t)(at * bad.size());
    for (int k = 0; k < 8; k++) bad[pos + k] = (char)(bad[pos + k] ^ 0x5a);
    std::string cpath = dir + "/corrupt.h5";
    aft::write_file(cpath, bad);
    err = af_error{};
    af_status st = af_train_checkpoint_load(cpath.c_str(), &dev, &r, &rt, &rmeta, &err);
    if (st != AF_OK) {
      rejected++;
      std::printf("  corrupted at %.0f%%: %s\n", at * 100, err.msg);
      EXPECT_NE(std::string(err.msg).find("corrupt.h5"), std::string::npos) << err.msg;
    } else {
      af_trainer_free(rt);
      af_model_free(&r);
    }
  }
  EXPECT_EQ(rejected, 4);
  // a model-only checkpoint is not a training checkpoint
  std::string plain = dir + "/plain.h5";
  ASSERT_EQ(af_model_save(plain.c_str(), &M.m, &err), AF_OK);
  err = af_error{};
  EXPECT_NE(af_train_checkpoint_load(plain.c_str(), &dev, &r, &rt, &rmeta, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("not a training checkpoint"), std::string::npos) << err.msg;
  af_trainer_free(t);
}

// docs/checkpoint-format.md's ```train-layout block, entry by entry, against a
// checkpoint the trainer wrote.
TEST(Train, CheckpointLayoutMatchesDocumentation) {
  std::ifstream doc(aft::source_dir() + "/docs/checkpoint-format.md");
  ASSERT_TRUE(doc.good());
  std::string line;
  bool in = false;
  std::vector<std::vector<std::string>> entries;
  while (std::getline(doc, line)) {
    if (line.rfind("```train-layout", 0) == 0) { in = true; continue; }
    if (in && line.rfind("```", 0) == 0) break;
    if (!in || line.empty()) continue;
    std::istringstream ss(line);
    std::vector<std::string> w;
    std::string tok;
    while (ss >> tok) w.push_back(tok);
    entries.push_back(w);
  }
  ASSERT_GT(entries.size(), 20u);
  Model M(data("tiny_bert_a"));
  ASSERT_TRUE(M.ok);
  af_error err{};
  af_device dev = af_device_cpu(0);
  af_train_config cfg = base_config(0.1f);
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&M.m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  af_train_meta meta{0, 8, 100, 5, 1, 0, 32};
  std::string path = aft::temp_dir("train-layout") + "/c.h5";
  ASSERT_EQ(af_train_checkpoint_save(path.c_str(), t, &meta, &err), AF_OK) << err.msg;
  hid_t f = H5I_INVALID_HID;
  af_h5_open(path.c_str(), 0, &f, &err);
  ASSERT_GE(f, 0);
  size_t checked = 0;
  for (auto &w : entries) {
    if (w[0] == "group") {
      EXPECT_TRUE(af_h5_exists(f, w[1].c_str() + 1)) << w[1];
    } else if (w[0] == "attr") {
      std::string obj = w[1].substr(1);
      ASSERT_TRUE(af_h5_attr_exists(f, obj.c_str(), w[2].c_str())) << w[1] << " " << w[2];
      if (w[3] == "string") {
        char *v = nullptr;
        EXPECT_EQ(af_h5_attr_get_str(f, obj.c_str(), w[2].c_str(), &v, &err), AF_OK) << w[2];
        if (w.size() > 4 && w[4][0] == '"') {
          EXPECT_EQ("\"" + std::string(v) + "\"", w[4]) << w[2];
        }
        free(v);
      } else if (w[3] == "int") {
        int64_t v;
        EXPECT_EQ(af_h5_attr_get_i64(f, obj.c_str(), w[2].c_str(), &v, &err), AF_OK) << w[2];
      } else {
        double d;
        EXPECT_EQ(af_h5_attr_get_f64(f, obj.c_str(), w[2].c_str(), &d, &err), AF_OK) << w[2];
      }
    } else if (w[0] == "dataset") {
      int n = 0;
      for (int i = 0; i < M.m.n_params; i++) {
        const af_param_info *p = &M.m.params[i];
        std::string name = w[1].substr(1, w[1].find("<T>") - 1) + p->name;
        if (!af_trainer_param_trained(p->name)) {
          EXPECT_FALSE(af_h5_exists(f, name.c_str())) << name;
          continue;
        }
        int rank;
        hsize_t dims[8];
        ASSERT_EQ(af_h5_shape(f, name.c_str(), &rank, dims, &err), AF_OK) << name;
        EXPECT_EQ(rank, p->rank) << name;
        EXPECT_EQ((int64_t)dims[0], p->shape[0]) << name;
        n++;
      }
      EXPECT_EQ(n, M.m.n_params - 2);
    } else {
      ADD_FAILURE() << "unknown layout kind " << w[0];
    }
    checked++;
  }
  EXPECT_EQ(checked, entries.size());
  af_h5_close(f, path.c_str(), nullptr);
  af_trainer_free(t);
}

// ---- the CLI: resume, corrupted checkpoints -----------------------------------

struct CliRun {
  std::string dir, model, baskets;
  CliRun() {
    dir = aft::temp_dir("train-cli");
    model = dir + "/tiny_a.h5";
    af_model m{};
    af_error err{};
    EXPECT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
    EXPECT_EQ(af_model_save(model.c_str(), &m, &err), AF_OK) << err.msg;
    af_model_free(&m);
    baskets = aft::shared_dir() + "/groceries/groceries.csv";
  }
  std::string cmd(const std::string &out, const std::string &extra) const {
    return aft::cli() + " train --baskets " + baskets +
           " --baskets-format lines --min-count 5 --max-val 40 --batch 8 --lr 1e-3 --warmup 1"
           " --threads 2 --seed 7 --out " + dir + "/" + out + " " + extra;
  }
};

std::vector<char> params_and_moments(const std::string &path) {
  af_model m{};
  af_trainer *t = nullptr;
  af_train_meta meta{};
  af_error err{};
  af_device dev = af_device_cpu(0);
  std::vector<char> out;
  EXPECT_EQ(af_train_checkpoint_load(path.c_str(), &dev, &m, &t, &meta, &err), AF_OK) << err.msg;
  if (!t) return out;
  const char *parts[3] = {(const char *)m.data, (const char *)af_trainer_moment1(t),
                          (const char *)af_trainer_moment2(t)};
  for (auto p : parts) out.insert(out.end(), p, p + sizeof(float) * m.n_floats);
  int64_t step = af_trainer_steps_done(t);
  out.insert(out.end(), (const char *)&step, (const char *)&step + sizeof step);
  out.insert(out.end(), (const char *)&meta, (const char *)&meta + sizeof meta);
  af_trainer_free(t);
  af_model_free(&m);
  return out;
}

TEST(TrainCli, ResumeIsBitExact) {
  CliRun r;
  std::string err_out;
  // 2N steps in one go (N = 3, with 2 micro-batches per step and dropout 0.1)
  ASSERT_EQ(aft::run(r.cmd("full", "--model " + r.model + " --steps 6 --grad-accum 2"), nullptr,
                     &err_out), 0) << err_out;
  // N steps, stop, resume for N more
  ASSERT_EQ(aft::run(r.cmd("half", "--model " + r.model + " --steps 6 --grad-accum 2 --stop-after 3"),
                     nullptr, &err_out), 0) << err_out;
  ASSERT_TRUE(aft::file_exists(r.dir + "/half/step-0000003.h5")) << err_out;
  EXPECT_FALSE(aft::file_exists(r.dir + "/half/final.h5"));
  ASSERT_EQ(aft::run(r.cmd("half", "--resume " + r.dir + "/half/step-0000003.h5"), nullptr,
                     &err_out), 0) << err_out;
  EXPECT_NE(err_out.find("resuming at step 3 of 6"), std::string::npos) << err_out;
  auto a = params_and_moments(r.dir + "/full/final.h5");
  auto b = params_and_moments(r.dir + "/half/final.h5");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b) << "resumed run differs from the uninterrupted one";
  // and training did change the parameters
  auto c = params_and_moments(r.dir + "/half/step-0000003.h5");
  EXPECT_FALSE(a == c);
  // the logs hold the same training records
  std::string la = aft::read_file(r.dir + "/full/log.jsonl"), lb = aft::read_file(r.dir + "/half/log.jsonl");
  auto losses = [](const std::string &log) {
    std::vector<std::string> v;
    size_t p = 0;
    while ((p = log.find("\"loss\": ", p)) != std::string::npos) {
      v.push_back(log.substr(p, 20));
      p += 5;
    }
    return v;
  };
  EXPECT_EQ(losses(la), losses(lb));
  EXPECT_EQ(losses(la).size(), 6u);
}

TEST(TrainCli, BadCheckpointIsRejectedAndNothingIsOverwritten) {
  CliRun r;
  std::string err_out;
  ASSERT_EQ(aft::run(r.cmd("run", "--model " + r.model + " --steps 4 --stop-after 2"), nullptr,
                     &err_out), 0) << err_out;
  std::string ck = r.dir + "/run/step-0000002.h5";
  std::string blob = aft::read_file(ck);
  auto snapshot = [&]() {
    std::map<std::string, std::string> s;
    for (auto &n : aft::list_dir(r.dir + "/run")) s[n] = aft::read_file(r.dir + "/run/" + n);
    return s;
  };
  // truncated
  aft::write_file(ck, blob.substr(0, blob.size() * 2 / 3));
  auto before = snapshot();
  EXPECT_NE(aft::run(r.cmd("run", "--resume " + ck), nullptr, &err_out), 0);
  EXPECT_NE(err_out.find("step-0000002.h5"), std::string::npos) << err_out;
  EXPECT_EQ(err_out.find("Segmentation"), std::string::npos);
  EXPECT_EQ(snapshot(), before) << "the failed resume changed the output folder";
  std::printf("  truncated: %s", err_out.c_str());
  // corrupted tensor bytes
  std::string bad = blob;
  for (int k = 0; k < 16; k++) bad[bad.size() / 2 + k] ^= 0x33;
  aft::write_file(ck, bad);
  before = snapshot();
  EXPECT_NE(aft::run(r.cmd("run", "--resume " + ck), nullptr, &err_out), 0);
  EXPECT_NE(err_out.find("step-0000002.h5"), std::string::npos) << err_out;
  EXPECT_EQ(snapshot(), before);
  std::printf("  corrupted: %s", err_out.c_str());
  // intact, but other data flags
  aft::write_file(ck, blob);
  EXPECT_NE(aft::run(r.cmd("run", "--resume " + ck + " --min-count 6"), nullptr, &err_out), 0);
  EXPECT_NE(err_out.find("differ from the checkpoint"), std::string::npos) << err_out;
  // a model without optimizer state
  EXPECT_NE(aft::run(r.cmd("run", "--resume " + r.model), nullptr, &err_out), 0);
  EXPECT_NE(err_out.find("not a training checkpoint"), std::string::npos) << err_out;
}

TEST(TrainCli, KeepsTheNewestCheckpoints) {
  CliRun r;
  std::string err_out;
  ASSERT_EQ(aft::run(r.cmd("keep", "--model " + r.model +
                                       " --steps 5 --save-every 1 --keep 2 --eval-every 2 --dropout 0"),
                     nullptr, &err_out), 0) << err_out;
  auto names = aft::list_dir(r.dir + "/keep");
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"final.h5", "log.jsonl", "step-0000004.h5",
                                             "step-0000005.h5"}));
  std::string log = aft::read_file(r.dir + "/keep/log.jsonl");
  size_t evals = 0, p = 0;
  while ((p = log.find("val_recall_at_10", p)) != std::string::npos) evals++, p++;
  EXPECT_EQ(evals, 4u);  // steps 0, 2, 4 and the end
}

// ---- pairs --------------------------------------------------------------------

TEST(Pairs, FromBasketsMatchBruteForce) {
  // 300 random baskets over 40 items (skewed popularity), built in memory.
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  unsigned x = 12345;
  auto next = [&x]() { return x = x * 1103515245u + 12345u; };
  for (int b = 0; b < 300; b++) {
    int n = 1 + (int)((next() >> 16) % 7);
    for (int k = 0; k < n; k++) {
      unsigned r = (next() >> 16) % 1600;
      items.push_back((int32_t)(std::sqrt((double)r)));  // 0..39, low ids frequent
    }
    off.push_back((int64_t)items.size());
  }
  af_baskets bk{};
  af_error err{};
  ASSERT_EQ(af_baskets_from_arrays(300, 40, off.data(), items.data(), &bk, &err), AF_OK) << err.msg;
  // brute force: counts of each unordered pair and each item over baskets
  std::map<std::pair<int, int>, int> pc;
  std::vector<int> ic(40, 0);
  for (int b = 0; b < 300; b++) {
    std::set<int> s(items.begin() + off[b], items.begin() + off[b + 1]);
    for (int a : s) ic[a]++;
    for (int a : s)
      for (int c : s)
        if (a < c) pc[{a, c}]++;
  }
  for (int min_count : {1, 3}) {
    for (double min_lift : {0.0, 1.5}) {
      std::set<std::pair<int, int>> want;
      for (auto &kv : pc) {
        double lift = (double)kv.second * 300.0 / ((double)ic[kv.first.first] * ic[kv.first.second]);
        if (kv.second >= min_count && lift >= min_lift) want.insert(kv.first);
      }
      af_pairs_options opt;
      af_pairs_default_options(&opt);
      opt.min_count = min_count;
      opt.min_lift = min_lift;
      opt.val_fraction = 0.1;
      af_pair_set tr{}, va{};
      ASSERT_EQ(af_pairs_from_baskets(&bk, nullptr, &opt, &tr, &va, &err), AF_OK) << err.msg;
      std::set<std::pair<int, int>> got;
      for (const af_pair_set *s : {&tr, &va})
        for (int64_t i = 0; i < s->n; i++) {
          int a = s->item_a[i], c = s->item_b[i];
          EXPECT_EQ(std::string(s->anchor[i]), std::to_string(a));  // texts are the item ids
          EXPECT_EQ(std::string(s->positive[i]), std::to_string(c));
          std::pair<int, int> key(std::min(a, c), std::max(a, c));
          EXPECT_EQ(s->count[i], pc[key]);
          got.insert({std::min(a, c), std::max(a, c)});
        }
      EXPECT_EQ((size_t)(tr.n + va.n), got.size()) << "a pair appears twice";
      EXPECT_EQ(got, want) << "min_count " << min_count << " min_lift " << min_lift;
      EXPECT_EQ(va.n, (int64_t)std::floor(0.1 * want.size()));
      std::printf("  min_count %d min_lift %.1f: %zu pairs (%lld held out)\n", min_count,
                  min_lift, want.size(), (long long)va.n);
      // same seed: same sets; other seed: another order
      af_pair_set tr2{}, va2{};
      ASSERT_EQ(af_pairs_from_baskets(&bk, nullptr, &opt, &tr2, &va2, &err), AF_OK);
      EXPECT_EQ(af_pair_set_fingerprint(&tr), af_pair_set_fingerprint(&tr2));
      af_pair_set_free(&tr2);
      af_pair_set_free(&va2);
      opt.seed = 7;
      ASSERT_EQ(af_pairs_from_baskets(&bk, nullptr, &opt, &tr2, &va2, &err), AF_OK);
      EXPECT_NE(af_pair_set_fingerprint(&tr), af_pair_set_fingerprint(&tr2));
      af_pair_set_free(&tr2);
      af_pair_set_free(&va2);
      af_pair_set_free(&tr);
      af_pair_set_free(&va);
    }
  }
  af_baskets_free(&bk);
}

TEST(Pairs, EpochOrderIsASeededPermutation) {
  std::vector<int64_t> a(1000), b(1000), c(1000);
  af_pairs_epoch_order(1000, 42, 0, a.data());
  af_pairs_epoch_order(1000, 42, 0, b.data());
  af_pairs_epoch_order(1000, 42, 1, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int64_t> s = a;
  std::sort(s.begin(), s.end());
  for (int i = 0; i < 1000; i++) ASSERT_EQ(s[i], i);
  // roughly uniform: element 0 lands in each half about equally often over epochs
  int low = 0;
  for (int e = 0; e < 400; e++) {
    af_pairs_epoch_order(10, 1, e, a.data());
    low += std::find(a.begin(), a.begin() + 10, 0) - a.begin() < 5;
  }
  EXPECT_NEAR(low, 200, 60);  // binomial(400, 0.5): sd 10
}

TEST(Pairs, CsvErrorsNameFileAndLine) {
  std::string dir = aft::temp_dir("pairs-csv");
  std::string p = dir + "/p.csv";
  aft::write_file(p, "anchor,positive\nmilk,bread\n\"a b\",c\n,x\n");
  af_pairs_options opt;
  af_pairs_default_options(&opt);
  opt.val_fraction = 0;
  af_pair_set tr{}, va{};
  af_error err{};
  EXPECT_EQ(af_pairs_from_csv(p.c_str(), &opt, &tr, &va, &err), AF_ERR_FORMAT);
  EXPECT_NE(std::string(err.msg).find("p.csv: line 4"), std::string::npos) << err.msg;
  aft::write_file(p, "anchor,positive\nmilk,bread\n\"a  b\",c\n");
  ASSERT_EQ(af_pairs_from_csv(p.c_str(), &opt, &tr, &va, &err), AF_OK) << err.msg;
  ASSERT_EQ(tr.n, 2);
  std::set<std::string> anchors{tr.anchor[0], tr.anchor[1]};
  EXPECT_EQ(anchors, (std::set<std::string>{"milk", "a b"}));
  af_pair_set_free(&tr);
  af_pair_set_free(&va);
}

}  // namespace
