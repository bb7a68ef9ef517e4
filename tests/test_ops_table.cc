// The op interface's per-backend tables (kernels/ops_table.h), on the CPU:
// dispatch goes through the device's table, an op the table lacks is an
// AF_ERR_UNSUPPORTED error naming the op and the backend and writes nothing,
// and the limits the CPU kernels rely on are refused with a message instead of
// overrunning a stack row. The fake backends here are a copy of the CPU table
// with entries removed, and an empty table: what a GPU backend without
// training kernels looks like, testable without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops.h"
#include "ops_backward.h"
#include "ops_table.h"

namespace {

const float kPoison = std::numeric_limits<float>::quiet_NaN();

bool all_nan(const std::vector<float> &v) {
  for (float x : v)
    if (!std::isnan(x)) return false;
  return true;
}

void expect_missing(af_status st, const af_error &e, const std::string &op,
                    const std::string &backend) {
  EXPECT_EQ(st, AF_ERR_UNSUPPORTED) << op;
  EXPECT_EQ(e.code, AF_ERR_UNSUPPORTED) << op;
  EXPECT_EQ(std::string(e.msg), "op " + op + " is not implemented by the " + backend + " backend");
}

TEST(OpsTable, CpuDeviceHasEveryOp) {
  af_device d = af_device_cpu(1);
  EXPECT_EQ(d.ops, &af_cpu_backend_ops);
  EXPECT_STREQ(d.ops->name, "cpu");
  EXPECT_EQ(af_backward_supported(&d), 1);
}

TEST(OpsTable, EveryTrainingOpOfAnEmptyBackendIsRefusedByName) {
  af_backend_ops empty{};
  empty.name = "fake";
  af_device d{};
  d.backend = AF_BACKEND_CUDA;  // what the table says matters, not the enum
  d.ops = &empty;
  EXPECT_EQ(af_backward_supported(&d), 0);
  std::vector<float> a(64, kPoison), b(64, kPoison), c(64, kPoison);
  std::vector<int32_t> ids(4, 0), cu = {0, 2, 4};
  af_error e{};
  expect_missing(af_op_dropout_forward(&d, a.data(), b.data(), 8, 0.1f, 1, 2, &e), e,
                 "dropout_forward", "fake");
  expect_missing(af_op_dropout_backward(&d, a.data(), b.data(), 8, 0.1f, 1, 2, &e), e,
                 "dropout_backward", "fake");
  expect_missing(af_op_attention_dropout_forward(&d, a.data(), b.data(), c.data(), cu.data(), 2, 4,
                                                 2, 0.1f, 1, 2, nullptr, nullptr, &e),
                 e, "attention_dropout_forward", "fake");
  expect_missing(af_op_attention_dropout_backward(&d, a.data(), b.data(), c.data(), b.data(),
                                                  cu.data(), 2, 4, 2, 0.1f, 1, 2, nullptr, nullptr,
                                                  &e),
                 e, "attention_dropout_backward", "fake");
  expect_missing(af_op_embedding_backward(&d, a.data(), b.data(), c.data(), b.data(), ids.data(),
                                          ids.data(), nullptr, 4, 4, nullptr, nullptr, &e),
                 e, "embedding_backward", "fake");
  expect_missing(af_op_layernorm_backward(&d, a.data(), b.data(), c.data(), b.data(), c.data(),
                                          b.data(), c.data(), b.data(), 4, 4, &e),
                 e, "layernorm_backward", "fake");
  expect_missing(af_op_linear_backward(&d, a.data(), b.data(), c.data(), b.data(), c.data(),
                                       b.data(), 4, 4, 4, &e),
                 e, "linear_backward", "fake");
  expect_missing(af_op_gelu_backward(&d, a.data(), b.data(), c.data(), 8, &e), e, "gelu_backward",
                 "fake");
  expect_missing(af_op_add_backward(&d, a.data(), b.data(), c.data(), 8, &e), e, "add_backward",
                 "fake");
  expect_missing(af_op_attention_backward(&d, a.data(), b.data(), c.data(), b.data(), cu.data(), 2,
                                          4, 2, nullptr, &e),
                 e, "attention_backward", "fake");
  expect_missing(af_op_mean_pool_backward(&d, a.data(), b.data(), cu.data(), 2, 4, &e), e,
                 "mean_pool_backward", "fake");
  expect_missing(af_op_cls_pool_backward(&d, a.data(), b.data(), cu.data(), 2, 4, &e), e,
                 "cls_pool_backward", "fake");
  expect_missing(af_op_l2norm_backward(&d, a.data(), b.data(), c.data(), b.data(), 2, 4, &e), e,
                 "l2norm_backward", "fake");
  // Forward ops and memory too; and nothing was written.
  expect_missing(af_op_gelu_forward(&d, a.data(), b.data(), 8, &e), e, "gelu_forward", "fake");
  expect_missing(af_dev_sync(&d, &e), e, "sync", "fake");
  EXPECT_EQ(af_dev_malloc(&d, 16, &e), nullptr);
  EXPECT_NE(std::string(e.msg).find("op malloc"), std::string::npos) << e.msg;
  EXPECT_TRUE(all_nan(a) && all_nan(b) && all_nan(c));
}

TEST(OpsTable, NoTableAtAllIsAnErrorNotACrash) {
  af_device d{};  // ops == NULL: a zero-initialised device
  af_error e{};
  std::vector<float> a(4, kPoison);
  expect_missing(af_op_add_forward(&d, a.data(), a.data(), a.data(), 4, &e), e, "add_forward",
                 "(no)");
  EXPECT_EQ(af_backward_supported(&d), 0);
}

// A backend with the forward ops but not the backward ones (the CUDA backend
// today): forward runs through the table, backward is refused by name.
TEST(OpsTable, PartialBackendRunsWhatItHasAndRefusesTheRest) {
  af_backend_ops fwd_only = af_cpu_backend_ops;
  fwd_only.name = "forward-only";
  fwd_only.linear_backward = nullptr;
  af_device d = af_device_cpu(1);
  d.ops = &fwd_only;
  const int N = 3, IC = 4, OC = 2;
  std::vector<float> x(N * IC), w(OC * IC), bias(OC), out(N * OC, kPoison), ref(N * OC);
  for (size_t i = 0; i < x.size(); i++) x[i] = 0.25f * (float)i - 1.0f;
  for (size_t i = 0; i < w.size(); i++) w[i] = 0.5f - 0.125f * (float)i;
  bias = {0.5f, -1.0f};
  af_error e{};
  ASSERT_EQ(af_op_linear_forward(&d, out.data(), x.data(), w.data(), bias.data(), N, IC, OC, &e),
            AF_OK)
      << e.msg;
  // Reference: the sum written out (exact in fp32: multiples of 1/32, small).
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      float s = bias[o];
      for (int i = 0; i < IC; i++) s += x[n * IC + i] * w[o * IC + i];
      ref[n * OC + o] = s;
    }
  for (int i = 0; i < N * OC; i++) EXPECT_FLOAT_EQ(out[i], ref[i]) << i;
  std::vector<float> dx(N * IC, kPoison), dw(OC * IC, kPoison);
  expect_missing(af_op_linear_backward(&d, dx.data(), dw.data(), nullptr, out.data(), x.data(),
                                       w.data(), N, IC, OC, &e),
                 e, "linear_backward", "forward-only");
  EXPECT_TRUE(all_nan(dx) && all_nan(dw));
  EXPECT_EQ(af_backward_supported(&d), 0);
}

TEST(OpsTable, CpuAttentionRefusesRowsAboveTheLimit) {
  af_device d = af_device_cpu(1);
  const int C = 4, NH = 2, L = AF_ATTN_MAX_LEN + 1;
  std::vector<int32_t> cu = {0, 1, 1 + L};
  std::vector<float> qkv((size_t)(1 + L) * 3 * C, 0.5f), out((size_t)(1 + L) * C, kPoison);
  af_error e{};
  EXPECT_EQ(af_op_attention_forward(&d, out.data(), nullptr, qkv.data(), cu.data(), 2, C, NH, &e),
            AF_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(e.msg).find("sequence 1 has 1025 tokens"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("AF_ATTN_MAX_LEN"), std::string::npos) << e.msg;
  EXPECT_TRUE(all_nan(out));
  std::vector<float> dqkv(qkv.size(), 0.f);
  EXPECT_EQ(af_op_attention_backward(&d, dqkv.data(), out.data(), qkv.data(), qkv.data(),
                                     cu.data(), 2, C, NH, nullptr, &e),
            AF_ERR_UNSUPPORTED);
  EXPECT_EQ(af_op_attention_dropout_forward(&d, out.data(), qkv.data(), qkv.data(), cu.data(), 2,
                                            C, NH, 0.1f, 1, 2, nullptr, nullptr, &e),
            AF_ERR_UNSUPPORTED);
  // Heads that do not divide C.
  std::vector<int32_t> cu1 = {0, 1};
  EXPECT_EQ(af_op_attention_forward(&d, out.data(), nullptr, qkv.data(), cu1.data(), 1, 6, 4, &e),
            AF_ERR_ARG);
  EXPECT_NE(std::string(e.msg).find("4 heads do not divide hidden size 6"), std::string::npos)
      << e.msg;
  // At the limit it runs.
  std::vector<int32_t> cu2 = {0, AF_ATTN_MAX_LEN};
  EXPECT_EQ(af_op_attention_forward(&d, out.data(), nullptr, qkv.data(), cu2.data(), 1, C, NH, &e),
            AF_OK)
      << e.msg;
}

TEST(OpsTable, AttentionDropoutChecksItsProbability) {
  af_device d = af_device_cpu(1);
  std::vector<int32_t> cu = {0, 2};
  std::vector<float> qkv(2 * 12, 0.5f), probs(2 * 2 * 2, 0.5f), out(2 * 4, kPoison);
  af_error e{};
  EXPECT_EQ(af_op_attention_dropout_forward(&d, out.data(), probs.data(), qkv.data(), cu.data(), 1,
                                            4, 2, 1.0f, 1, 2, nullptr, nullptr, &e),
            AF_ERR_ARG);
  EXPECT_TRUE(all_nan(out));
  EXPECT_EQ(af_op_attention_dropout_forward(&d, out.data(), probs.data(), qkv.data(), cu.data(), 1,
                                            4, 2, 0.5f, 1, 2, nullptr, nullptr, &e),
            AF_OK)
      << e.msg;
  for (float v : out) EXPECT_TRUE(std::isfinite(v));
}


// CLS pooling of an empty sequence (here the last one, whose "first token"
// would be one past the end of inp) gives a zero row. The tensor sits in front
// of NaNs, so a read past its end shows up as NaN in the output.
TEST(OpsTable, ClsPoolOfAnEmptyLastSequenceReadsNothingPastTheEnd) {
  af_device d = af_device_cpu(1);
  const int C = 4, T = 3;
  std::vector<int32_t> cu = {0, 3, 3};
  std::vector<float> buf((size_t)(T + 1) * C, kPoison);  // T rows of data, then a NaN row
  for (int i = 0; i < T * C; i++) buf[i] = 1.0f + (float)i;
  std::vector<float> out(2 * C, kPoison);
  af_error e{};
  ASSERT_EQ(af_op_cls_pool_forward(&d, out.data(), buf.data(), cu.data(), 2, C, &e), AF_OK);
  for (int c = 0; c < C; c++) {
    EXPECT_EQ(out[c], buf[c]);
    EXPECT_EQ(out[C + c], 0.0f) << "empty sequence, channel " << c;
  }
}

}  // namespace
