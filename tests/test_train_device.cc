// The trainer's device code paths on the CPU: a CPU op table under a device
// that calls itself CUDA (an "emulated device"), so that the trainer keeps
// its own parameter copy in "device" memory apart from the model's host
// buffer, exactly as on a GPU, and every transfer (upload of the batch and the
// loss gradient, download of the embeddings, af_trainer_sync_host, the
// checkpoint's moment copies, the host-staged all-reduce) runs through
// af_dev_*. The arithmetic is the CPU's, so everything must equal the plain
// CPU trainer bit for bit: this is how CI checks the restructured trainer that
// a GPU run takes (which CI cannot run). Also the token-position dropout op
// against the whole-batch dropout op (the same Philox words).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
#include "base/bf16.h"
#include "ops_backward.h"
#include "ops_table.h"
}

namespace {

std::string data(const std::string &rel) { return aft::source_dir() + "/tests/data/" + rel; }

struct Batch {
  std::vector<int32_t> ids, cu;
  af_batch b{};
};

// B random pairs (2B sequences of 2..9 tokens) over the model's vocabulary.
Batch random_pairs(std::mt19937 &g, int B, int vocab) {
  Batch r;
  r.cu.push_back(0);
  std::uniform_int_distribution<int> len(2, 9), tok(1, vocab - 1);
  for (int s = 0; s < 2 * B; s++) {
    int L = len(g);
    for (int k = 0; k < L; k++) r.ids.push_back(tok(g));
    r.cu.push_back((int32_t)r.ids.size());
  }
  r.b = {2 * B, (int)r.ids.size(), r.ids.data(), r.cu.data()};
  return r;
}

af_device emulated_device() {
  af_device d = af_device_cpu(0);
  d.backend = AF_BACKEND_CUDA;  // separate "device" memory, the CPU's table
  return d;
}

TEST(TrainDevice, EmulatedDeviceTrainsTheCpuBitsAndCheckpointsThem) {
  af_model *a = nullptr, *b = nullptr;
  af_error err{};
  ASSERT_EQ(af_model_open_hf(data("tiny_bert_a").c_str(), &a, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_open_hf(data("tiny_bert_a").c_str(), &b, &err), AF_OK) << err.msg;
  af_train_config cfg;
  af_train_default_config(&cfg);  // dropout 0.1 hidden and attention
  cfg.total_steps = 4;
  cfg.warmup = 1;
  cfg.lr = 1e-3;
  af_device cpu = af_device_cpu(0), emu = emulated_device();
  af_trainer *tc = nullptr, *te = nullptr;
  ASSERT_EQ(af_trainer_create(a, &cpu, &cfg, &tc, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_create(b, &emu, &cfg, &te, &err), AF_OK) << err.msg;
  ASSERT_NE(af_trainer_params(te), b->data) << "the emulated device keeps its own copy";
  EXPECT_EQ(af_trainer_work_bf16(te), nullptr) << "fp32 mode keeps no bf16 copy";
  // the bucketed NCCL all-reduce needs several ranks over NCCL: refused here
  af_comm *one = nullptr;
  af_comm_options co = af_comm_default_options();
  ASSERT_EQ(af_comm_create(&co, &one, &err), AF_OK);
  EXPECT_EQ(af_trainer_can_overlap_reduce(te, one), 0);
  EXPECT_EQ(af_trainer_reduce_in_backward(te, one, &err), AF_ERR_UNSUPPORTED);
  EXPECT_EQ(af_trainer_reduce_in_backward(te, nullptr, &err), AF_OK);
  af_comm_free(one);
  std::mt19937 g(7);
  const int V = af_model_get_config(a)->vocab_size;
  for (int step = 0; step < 3; step++) {
    for (int mb = 0; mb < 2; mb++) {
      Batch p = random_pairs(g, 5, V);
      float lc = 0, le = 0;
      const uint64_t micro = (uint64_t)step * 2 + mb;
      ASSERT_EQ(af_trainer_accumulate(tc, &p.b, micro, &lc, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_trainer_accumulate(te, &p.b, micro, &le, &err), AF_OK) << err.msg;
      EXPECT_EQ(std::memcmp(&lc, &le, sizeof lc), 0) << "step " << step << ": " << lc << " " << le;
    }
    double nc = 0, ne = 0;
    ASSERT_EQ(af_trainer_step(tc, 2, nullptr, &nc, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_trainer_step(te, 2, nullptr, &ne, &err), AF_OK) << err.msg;
    EXPECT_EQ(nc, ne);
  }
  const int64_t n = af_model_n_floats(a);
  // Before the sync the host copy is stale; after it, the CPU's bits.
  ASSERT_EQ(af_trainer_sync_host(te, &err), AF_OK) << err.msg;
  EXPECT_EQ(std::memcmp(a->data, b->data, sizeof(float) * (size_t)n), 0) << "parameters";
  std::vector<float> m1(n), m2(n), g1(n);
  ASSERT_EQ(af_trainer_read_state(te, g1.data(), m1.data(), m2.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(std::memcmp(m1.data(), af_trainer_moment1(tc), sizeof(float) * (size_t)n), 0);
  EXPECT_EQ(std::memcmp(m2.data(), af_trainer_moment2(tc), sizeof(float) * (size_t)n), 0);
  // A checkpoint of the emulated device reloads on the CPU with the same state.
  std::string dir = aft::temp_dir("train_device");
  std::string path = dir + "/ck.h5";
  af_train_meta meta{};
  meta.n_train = 10;
  ASSERT_EQ(af_train_checkpoint_save(path.c_str(), te, &meta, &err), AF_OK) << err.msg;
  af_model *r = nullptr;
  af_trainer *tr = nullptr;
  ASSERT_EQ(af_model_alloc(&r, &err), AF_OK);
  af_train_meta rm{};
  ASSERT_EQ(af_train_checkpoint_load(path.c_str(), &emu, r, &tr, &rm, &err), AF_OK) << err.msg;
  std::vector<float> r1(n), r2(n);
  ASSERT_EQ(af_trainer_read_state(tr, nullptr, r1.data(), r2.data(), &err), AF_OK) << err.msg;
  EXPECT_EQ(r1, m1);
  EXPECT_EQ(r2, m2);
  EXPECT_EQ(std::memcmp(r->data, a->data, sizeof(float) * (size_t)n), 0);
  EXPECT_EQ(af_trainer_steps_done(tr), 3);
  // ... and a further step on it equals one on the CPU trainer.
  Batch p = random_pairs(g, 5, V);
  float lc = 0, lr_ = 0;
  ASSERT_EQ(af_trainer_accumulate(tc, &p.b, 6, &lc, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_accumulate(tr, &p.b, 6, &lr_, &err), AF_OK) << err.msg;
  EXPECT_EQ(lc, lr_);
  ASSERT_EQ(af_trainer_step(tc, 1, nullptr, nullptr, &err), AF_OK);
  ASSERT_EQ(af_trainer_step(tr, 1, nullptr, nullptr, &err), AF_OK);
  ASSERT_EQ(af_trainer_sync_host(tr, &err), AF_OK);
  EXPECT_EQ(std::memcmp(r->data, a->data, sizeof(float) * (size_t)n), 0) << "after resume";
  af_trainer_free(tr);
  af_model_close(r);
  af_trainer_free(tc);
  af_trainer_free(te);
  af_model_close(a);
  af_model_close(b);
}

// The device bf16 working copy of the trained weights: a plain download of dev memory.
std::vector<uint16_t> work_of(const af_trainer *t, int64_t n) {
  std::vector<uint16_t> w((size_t)n);
  af_error err{};
  EXPECT_EQ(af_dev_download(af_trainer_device(t), w.data(), af_trainer_work_bf16(t),
                            sizeof(uint16_t) * (size_t)n, &err), AF_OK) << err.msg;
  return w;
}

// Every element of the working copy is the bf16 rounding (nearest even) of the master.
void expect_work_is_rounded_master(const af_trainer *t, const float *master, int64_t n,
                                   const char *what) {
  ASSERT_NE(af_trainer_work_bf16(t), nullptr) << what;
  std::vector<uint16_t> w = work_of(t, n);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) bad += w[(size_t)i] != af_bf16_from_f32(master[i]);
  EXPECT_EQ(bad, 0) << what << ": elements of the bf16 copy that are not the master's rounding";
}

// bf16 mode keeps a persistent bf16 copy of the weights that the linear layers
// read and AdamW refreshes (docs/training.md). Three bf16 trainers, trained on
// the same batches: the CPU (working copy), the emulated device (its own
// device copies of everything, the CPU bf16 table), and a CPU bf16 table
// without the w16 ops (so no working copy: the GEMMs round the fp32 master per
// call, the code path before the copy existed). The bf16 GEMMs round w anyway,
// so all three must give the same bits; after each step and after a resume the
// copy must be the rounding of the fp32 master.
TEST(TrainDevice, Bf16WorkingCopyIsTheRoundedMasterAndChangesNoBits) {
  af_error err{};
  af_device cpu = af_device_cpu(0);
  if (af_device_set_precision(&cpu, "bf16", &err) != AF_OK)
    GTEST_SKIP() << "no AVX512_BF16 on this CPU: " << err.msg;
  af_device emu = emulated_device();
  emu.ops = &af_cpu_bf16_backend_ops;
  af_backend_ops no_w16 = af_cpu_bf16_backend_ops;  // the per-call rounding path
  no_w16.linear_forward_w16 = nullptr;
  no_w16.linear_backward_w16 = nullptr;
  af_device old = af_device_cpu(0);
  old.ops = &no_w16;
  af_model *ma = nullptr, *mb = nullptr, *mc = nullptr;
  ASSERT_EQ(af_model_open_hf(data("tiny_bert_a").c_str(), &ma, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_open_hf(data("tiny_bert_a").c_str(), &mb, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_open_hf(data("tiny_bert_a").c_str(), &mc, &err), AF_OK) << err.msg;
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.total_steps = 4;
  cfg.warmup = 1;
  cfg.lr = 1e-3;
  af_trainer *tc = nullptr, *te = nullptr, *to = nullptr;
  ASSERT_EQ(af_trainer_create(ma, &cpu, &cfg, &tc, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_create(mb, &emu, &cfg, &te, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_create(mc, &old, &cfg, &to, &err), AF_OK) << err.msg;
  EXPECT_EQ(af_trainer_work_bf16(to), nullptr) << "a table without the w16 ops: no copy";
  const int64_t n = af_model_n_floats(ma);
  expect_work_is_rounded_master(te, mb->data, n, "at creation");
  std::mt19937 g(5);
  const int V = af_model_get_config(ma)->vocab_size;
  std::vector<float> pe((size_t)n);
  for (int step = 0; step < 3; step++) {
    for (int mbi = 0; mbi < 2; mbi++) {
      Batch p = random_pairs(g, 5, V);
      float lc = 0, le = 0, lo = 0;
      const uint64_t micro = (uint64_t)step * 2 + mbi;
      ASSERT_EQ(af_trainer_accumulate(tc, &p.b, micro, &lc, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_trainer_accumulate(te, &p.b, micro, &le, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_trainer_accumulate(to, &p.b, micro, &lo, &err), AF_OK) << err.msg;
      EXPECT_EQ(std::memcmp(&lc, &le, sizeof lc), 0) << "step " << step << ": " << lc << " " << le;
      EXPECT_EQ(std::memcmp(&lc, &lo, sizeof lc), 0) << "step " << step << ": " << lc << " " << lo;
    }
    double nc = 0, ne = 0, no = 0;
    ASSERT_EQ(af_trainer_step(tc, 2, nullptr, &nc, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_trainer_step(te, 2, nullptr, &ne, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_trainer_step(to, 2, nullptr, &no, &err), AF_OK) << err.msg;
    EXPECT_EQ(nc, ne);
    EXPECT_EQ(nc, no);
    ASSERT_EQ(af_dev_download(&emu, pe.data(), af_trainer_params(te), sizeof(float) * (size_t)n,
                              &err), AF_OK);
    expect_work_is_rounded_master(te, pe.data(), n, "emulated device after a step");
    expect_work_is_rounded_master(tc, ma->data, n, "cpu after a step");
  }
  ASSERT_EQ(af_trainer_sync_host(te, &err), AF_OK) << err.msg;
  EXPECT_EQ(std::memcmp(ma->data, mb->data, sizeof(float) * (size_t)n), 0) << "cpu vs emulated";
  EXPECT_EQ(std::memcmp(ma->data, mc->data, sizeof(float) * (size_t)n), 0) << "copy vs none";
  // resume: the copy is rebuilt from the checkpoint's master weights
  std::string path = aft::temp_dir("train_device_bf16") + "/ck.h5";
  af_train_meta meta{};
  meta.n_train = 10;
  ASSERT_EQ(af_train_checkpoint_save(path.c_str(), te, &meta, &err), AF_OK) << err.msg;
  af_model *r = nullptr;
  af_trainer *tr = nullptr;
  ASSERT_EQ(af_model_alloc(&r, &err), AF_OK);
  af_train_meta rm{};
  ASSERT_EQ(af_train_checkpoint_load(path.c_str(), &emu, r, &tr, &rm, &err), AF_OK) << err.msg;
  expect_work_is_rounded_master(tr, ma->data, n, "after a resume");
  Batch p = random_pairs(g, 5, V);
  float lc = 0, lr_ = 0;
  ASSERT_EQ(af_trainer_accumulate(tc, &p.b, 6, &lc, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_trainer_accumulate(tr, &p.b, 6, &lr_, &err), AF_OK) << err.msg;
  EXPECT_EQ(lc, lr_);
  ASSERT_EQ(af_trainer_step(tc, 1, nullptr, nullptr, &err), AF_OK);
  ASSERT_EQ(af_trainer_step(tr, 1, nullptr, nullptr, &err), AF_OK);
  ASSERT_EQ(af_trainer_sync_host(tr, &err), AF_OK);
  EXPECT_EQ(std::memcmp(r->data, ma->data, sizeof(float) * (size_t)n), 0) << "after resume";
  af_trainer_free(tr);
  af_model_close(r);
  af_trainer_free(tc);
  af_trainer_free(te);
  af_trainer_free(to);
  af_model_close(ma);
  af_model_close(mb);
  af_model_close(mc);
}

// The global norm's one-reduction op against the per-tensor loop it replaces
// (the backend's op and the dispatcher's fallback for a table without it):
// the same bits, and the fp32 table refuses a bf16 working copy in AdamW.
TEST(TrainDevice, GradSumsqTableIsThePerTensorLoop) {
  std::mt19937 g(13);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> grad(30000);
  for (auto &v : grad) v = u(g);
  const af_adamw_tensor table[4] = {{0, 9000, 1}, {9000, 5, 0}, {9100, 4096, 1}, {13200, 16800, 1}};
  af_device cpu = af_device_cpu(0);
  af_error err{};
  double loop = 0;
  for (const auto &t : table) {
    double s = 0;
    ASSERT_EQ(af_op_grad_sumsq(&cpu, grad.data() + t.offset, t.numel, &s, &err), AF_OK);
    loop += s;
  }
  double one = 0, fallback = 0;
  ASSERT_EQ(af_op_grad_sumsq_table(&cpu, grad.data(), table, 4, &one, &err), AF_OK);
  af_backend_ops nt = af_cpu_backend_ops;
  nt.grad_sumsq_table = nullptr;
  af_device d = af_device_cpu(0);
  d.ops = &nt;
  ASSERT_EQ(af_op_grad_sumsq_table(&d, grad.data(), table, 4, &fallback, &err), AF_OK);
  EXPECT_EQ(std::memcmp(&one, &loop, sizeof one), 0) << one << " " << loop;
  EXPECT_EQ(std::memcmp(&fallback, &loop, sizeof one), 0);
  std::vector<float> p(grad.size()), m(grad.size()), v(grad.size());
  std::vector<uint16_t> w(grad.size());
  const af_adamw_op_scalars s = {0.99998f, 0.1f, 0.001f, 0.999f, 2.3e-3f, 0.0447f, 1e-8f, 1.0f};
  EXPECT_EQ(af_op_adamw_step(&cpu, p.data(), grad.data(), m.data(), v.data(), w.data(), table, 4,
                             &s, &err), AF_ERR_UNSUPPORTED);
}

// Token-position dropout (data parallel) with the identity layout is the
// whole-batch dropout; with a shifted layout it is the whole batch's mask at
// the shifted tokens.
TEST(TrainDevice, TokenDropoutDrawsTheWholeBatchMasks) {
  const int T = 37, C = 24, shift = 5;
  const float p = 0.3f;
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x((size_t)(T + shift) * C), dout(x.size());
  for (auto &v : x) v = u(g);
  for (auto &v : dout) v = u(g);
  af_device d = af_device_cpu(0);
  af_error err{};
  auto whole = x;
  ASSERT_EQ(af_op_dropout_forward(&d, whole.data(), whole.data(), (int64_t)whole.size(), p, 9, 4,
                                  &err), AF_OK);
  std::vector<int32_t> gt(T);
  for (int t = 0; t < T; t++) gt[t] = t + shift;
  std::vector<float> part(x.begin() + shift * C, x.end());
  ASSERT_EQ(af_op_dropout_tokens_forward(&d, part.data(), gt.data(), T, C, p, 9, 4, &err), AF_OK);
  EXPECT_EQ(0, std::memcmp(part.data(), whole.data() + shift * C, part.size() * sizeof(float)));
  std::vector<float> gw(x.size(), 0.5f), gp((size_t)T * C, 0.5f);
  ASSERT_EQ(af_op_dropout_backward(&d, gw.data(), dout.data(), (int64_t)gw.size(), p, 9, 4, &err),
            AF_OK);
  ASSERT_EQ(af_op_dropout_tokens_backward(&d, gp.data(), dout.data() + shift * C, gt.data(), T, C,
                                          p, 9, 4, &err), AF_OK);
  EXPECT_EQ(0, std::memcmp(gp.data(), gw.data() + shift * C, gp.size() * sizeof(float)));
}

// `affinity train --device cuda` where no GPU (or no CUDA build) exists: a
// clear error naming the cause, non-zero exit, no output folder.
TEST(TrainDevice, CliRefusesCudaClearlyWithoutAGpu) {
  if (af_cuda_available()) GTEST_SKIP() << "a GPU is present (test_cuda_train trains on it)";
  std::string dir = aft::temp_dir("train_device_cli");
  aft::write_file(dir + "/p.csv", "anchor,positive\nmilk,bread\ntea,cups\n");
  std::string out, errs;
  int rc = aft::run(aft::cli() + " train --device cuda --model " + aft::source_dir() +
                        "/weights/none.h5 --pairs " + dir + "/p.csv --out " + dir + "/run",
                    &out, &errs);
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(errs.find("CUDA") != std::string::npos || errs.find("GPU") != std::string::npos)
      << errs;
  std::printf("affinity train --device cuda here: %s", errs.c_str());
  EXPECT_FALSE(aft::file_exists(dir + "/run"));
}

}  // namespace
