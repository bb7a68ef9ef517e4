// Each CUDA forward op against its CPU twin (kernels/cpu/*.c, itself checked
// against float64 references elsewhere) on fresh random data. Every output is
// poisoned with NaN before the run, so an element the kernel forgot to write
// fails; a NaN or infinity anywhere fails.
//
// Tolerance: ||out - ref|| / ||ref|| <= 1e-5 for every op. Both sides compute
// in fp32 (cuBLAS without TF32); they differ only in summation order (warp
// trees vs sequential loops, cuBLAS vs OpenBLAS blocking), which moves a sum of
// n terms by about sqrt(n) * 2^-24 relative: ~1e-6 for n = 1536. A wrong index,
// a missing term or a wrong softmax gives 1e-2 or worse. TF32 would give ~1e-3
// and fail on purpose.
//
// Without a GPU (this dev VM, CI) the op tests skip; the one that checks
// af_device_cuda's refusal runs instead.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops.h"
#include "ops_backward.h"
#include "cuda_fixture.h"

namespace {

const double kTol = 1e-5;

// Relative L2 error; +inf when any element of out is not finite (so NaN,
// including the poison of an unwritten element, never passes).
double rel_err(const std::vector<float> &out, const std::vector<float> &ref, size_t *bad) {
  double num = 0, den = 0;
  *bad = 0;
  for (size_t i = 0; i < out.size(); i++) {
    if (!std::isfinite(out[i])) {
      (*bad)++;
      continue;
    }
    double d = (double)out[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  if (*bad)
    return std::numeric_limits<double>::infinity();
  if (den == 0)
    return num == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

#define EXPECT_CLOSE(out, ref, what)                                                         \
  do {                                                                                       \
    ASSERT_EQ((out).size(), (ref).size());                                                   \
    size_t bad_;                                                                             \
    double e_ = rel_err((out), (ref), &bad_);                                                \
    EXPECT_EQ(bad_, 0u) << what << ": " << bad_ << " non-finite (unwritten?) elements";      \
    EXPECT_TRUE(e_ <= kTol) << what << ": relative error " << e_ << " > " << kTol;           \
  } while (0)

std::vector<float> randu(std::mt19937 &g, size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = u(g);
  return v;
}

std::vector<int32_t> cu_from_lengths(const std::vector<int> &lens) {
  std::vector<int32_t> cu(lens.size() + 1, 0);
  for (size_t i = 0; i < lens.size(); i++) cu[i + 1] = cu[i] + lens[i];
  return cu;
}

class CudaOps : public CudaFixture {
 protected:
  // Uploads here give nullptr for an empty vector: the ops' "no tensor".
  template <class T>
  T *up(const std::vector<T> &h) {
    return up_or_null(h);
  }
  std::mt19937 g{12345};
};

TEST(CudaDevice, RefusedClearlyWithoutGpu) {
  if (af_cuda_available()) GTEST_SKIP() << "a GPU is present";
  af_device d = af_device_cpu(1);
  af_error e{};
  EXPECT_EQ(af_device_cuda(0, &d, &e), AF_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(e.msg).find("CUDA"), std::string::npos) << e.msg;
  std::printf("refusal message: %s\n", e.msg);
  EXPECT_EQ(d.backend, AF_BACKEND_CPU);
  af_device_release(&d);  // harmless on a CPU device
}

TEST_F(CudaOps, BadOrdinalIsAnArgumentError) {
  af_device d{};
  EXPECT_EQ(af_device_cuda(1 << 20, &d, &err), AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("out of range"), std::string::npos) << err.msg;
}

TEST_F(CudaOps, Embedding) {
  struct Case { int T, C, V, P, TT; bool types; };
  for (Case c : {Case{1, 384, 50, 8, 2, true}, Case{300, 37, 1000, 64, 2, false},
                 Case{8000, 384, 30522, 512, 2, true}, Case{17, 3, 5, 20, 1, false}}) {
    SCOPED_TRACE("T=" + std::to_string(c.T) + " C=" + std::to_string(c.C));
    std::uniform_int_distribution<int> uid(0, c.V - 1), upos(0, c.P - 1), utt(0, c.TT - 1);
    std::vector<int32_t> ids(c.T), pos(c.T), tt(c.T);
    for (int t = 0; t < c.T; t++) {
      ids[t] = uid(g);
      pos[t] = upos(g);
      tt[t] = utt(g);
    }
    auto wte = randu(g, (size_t)c.V * c.C), wpe = randu(g, (size_t)c.P * c.C),
         wtt = randu(g, (size_t)c.TT * c.C);
    std::vector<float> ref((size_t)c.T * c.C);
    af_cpu_embedding_forward(ref.data(), ids.data(), pos.data(), c.types ? tt.data() : nullptr,
                             wte.data(), wpe.data(), wtt.data(), c.T, c.C);
    float *out = poisoned(ref.size());
    EXPECT_EQ(af_op_embedding_forward(&dev, out, up(ids), up(pos), c.types ? up(tt) : nullptr,
                                      up(wte), up(wpe), up(wtt), c.T, c.C, nullptr),
              AF_OK);
    EXPECT_CLOSE(down(out, ref.size()), ref, "embedding");
  }
}

TEST_F(CudaOps, LayerNorm) {
  struct Case { int N, C; bool save; };
  for (Case c : {Case{1, 384, true}, Case{300, 37, false}, Case{8000, 384, true},
                 Case{5, 1, true}, Case{33, 1536, true}}) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " C=" + std::to_string(c.C));
    // An offset mean makes a one-pass E[x^2]-E[x]^2 variance visibly wrong.
    auto x = randu(g, (size_t)c.N * c.C, 2.f, 6.f), w = randu(g, c.C, 0.5f, 1.5f),
         b = randu(g, c.C);
    std::vector<float> ref(x.size()), rm(c.N), rr(c.N);
    af_cpu_layernorm_forward(ref.data(), rm.data(), rr.data(), x.data(), w.data(), b.data(), c.N,
                             c.C, 1e-12f);
    float *out = poisoned(x.size());
    float *m = c.save ? poisoned(c.N) : nullptr, *r = c.save ? poisoned(c.N) : nullptr;
    EXPECT_EQ(
        af_op_layernorm_forward(&dev, out, m, r, up(x), up(w), up(b), c.N, c.C, 1e-12f, nullptr),
        AF_OK);
    EXPECT_CLOSE(down(out, x.size()), ref, "layernorm out");
    if (c.save) {
      EXPECT_CLOSE(down(m, c.N), rm, "layernorm mean");
      EXPECT_CLOSE(down(r, c.N), rr, "layernorm rstd");
    }
  }
}

TEST_F(CudaOps, Linear) {
  struct Case { int N, IC, OC; bool bias; };
  for (Case c : {Case{1, 384, 384, true}, Case{300, 384, 1536, true},
                 Case{300, 1536, 384, true}, Case{8000, 384, 1152, true},
                 Case{7, 37, 19, true}, Case{64, 384, 384, false}, Case{3, 5, 1, true}}) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " IC=" + std::to_string(c.IC) +
                 " OC=" + std::to_string(c.OC));
    auto x = randu(g, (size_t)c.N * c.IC), w = randu(g, (size_t)c.OC * c.IC, -0.1f, 0.1f),
         b = randu(g, c.OC);
    std::vector<float> ref((size_t)c.N * c.OC);
    af_cpu_linear_forward(ref.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.N, c.IC,
                          c.OC);
    float *out = poisoned(ref.size());
    EXPECT_EQ(af_op_linear_forward(&dev, out, up(x), up(w), c.bias ? up(b) : nullptr, c.N, c.IC,
                                   c.OC, nullptr),
              AF_OK);
    EXPECT_CLOSE(down(out, ref.size()), ref, "linear");
  }
}

TEST_F(CudaOps, Gelu) {
  for (int64_t n : {(int64_t)1, (int64_t)3, (int64_t)1000003, (int64_t)8000 * 1536}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto x = randu(g, n + 1, -6.f, 6.f);
    std::vector<float> ref(n + 1);
    af_cpu_gelu_forward(ref.data(), x.data(), n + 1);
    float *out = poisoned(n + 1);
    EXPECT_EQ(af_op_gelu_forward(&dev, out, up(x), n + 1, nullptr), AF_OK);
    EXPECT_CLOSE(down(out, n + 1), ref, "gelu");
    // In place, starting one float in: the misaligned (scalar) path.
    float *io = up(x);
    EXPECT_EQ(af_op_gelu_forward(&dev, io + 1, io + 1, n, nullptr), AF_OK);
    auto got = down(io, n + 1);
    EXPECT_EQ(got[0], x[0]) << "gelu wrote before its start";
    std::vector<float> tail_got(got.begin() + 1, got.end()), tail_ref(ref.begin() + 1, ref.end());
    EXPECT_CLOSE(tail_got, tail_ref, "gelu in place");
  }
}

TEST_F(CudaOps, Add) {
  for (int64_t n : {(int64_t)1, (int64_t)5, (int64_t)1000003}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto a = randu(g, n), b = randu(g, n);
    std::vector<float> ref(n);
    af_cpu_add_forward(ref.data(), a.data(), b.data(), n);
    float *out = poisoned(n);
    float *da = up(a), *db = up(b);
    EXPECT_EQ(af_op_add_forward(&dev, out, da, db, n, nullptr), AF_OK);
    EXPECT_CLOSE(down(out, n), ref, "add");
    EXPECT_EQ(af_op_add_forward(&dev, da, da, db, n, nullptr),
              AF_OK); // out aliases a (the residual update)
    EXPECT_CLOSE(down(da, n), ref, "add in place");
  }
}

// Attention on lengths `lens` with hidden C and NH heads, probs compared too.
class CudaAttention : public CudaOps {
 protected:
  void run_case(const std::vector<int> &lens, int C, int NH, bool with_probs = true) {
    auto cu = cu_from_lengths(lens);
    int B = (int)lens.size(), T = cu[B];
    // Spread 3x wider than [-1, 1] so that some softmax rows are peaked.
    auto qkv = randu(g, (size_t)T * 3 * C, -3.f, 3.f);
    int64_t np = af_attention_probs_size(cu.data(), B, NH);
    std::vector<float> ref((size_t)T * C), rp(np);
    af_cpu_attention_forward(ref.data(), rp.data(), qkv.data(), cu.data(), B, C, NH);
    float *out = poisoned(ref.size());
    float *probs = with_probs ? poisoned(np) : nullptr;
    EXPECT_EQ(af_op_attention_forward(&dev, out, probs, up(qkv), up(cu), B, C, NH, nullptr), AF_OK);
    EXPECT_CLOSE(down(out, ref.size()), ref, "attention out");
    if (with_probs) EXPECT_CLOSE(down(probs, np), rp, "attention probs");
  }
};

TEST_F(CudaAttention, SingleTokenSequence) { run_case({1}, 384, 12); }

TEST_F(CudaAttention, Length512) { run_case({512}, 384, 12); }

TEST_F(CudaAttention, Batch300MixedLengths) {
  std::uniform_int_distribution<int> ul(1, 64);
  std::vector<int> lens(300);
  for (auto &l : lens) l = ul(g);
  lens[0] = 1;
  lens[17] = 1;
  lens[150] = 300;  // more than one key tile
  lens[299] = 129;
  run_case(lens, 384, 12);
  run_case(lens, 384, 12, /*with_probs=*/false);
}

TEST_F(CudaAttention, OddHeadSize) { run_case({1, 2, 130, 7, 33}, 39, 3); }       // HS = 13
TEST_F(CudaAttention, HeadSize64) { run_case({1, 129, 64, 200}, 128, 2); }        // BERT-base heads
TEST_F(CudaAttention, HeadSize128) { run_case({3, 40, 33, 1}, 256, 2); }

TEST_F(CudaAttention, TooLargeHeadIsReportedByTheOp) {
  std::vector<int> lens = {4};
  auto cu = cu_from_lengths(lens);
  const int C = 512, NH = 2;  // HS = 256
  auto qkv = randu(g, (size_t)4 * 3 * C);
  float *out = poisoned(4 * C);
  af_error e{};
  EXPECT_EQ(af_op_attention_forward(&dev, out, nullptr, up(qkv), up(cu), 1, C, NH, &e),
            AF_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(e.msg).find("head size 256"), std::string::npos) << e.msg;
  // Reported once (by the op), then the context works again.
  EXPECT_EQ(af_dev_sync(&dev, &e), AF_OK) << e.msg;
  auto x = randu(g, 10), y = randu(g, 10);
  std::vector<float> ref(10);
  af_cpu_add_forward(ref.data(), x.data(), y.data(), 10);
  float *o = poisoned(10);
  EXPECT_EQ(af_op_add_forward(&dev, o, up(x), up(y), 10, &e), AF_OK) << e.msg;
  EXPECT_CLOSE(down(o, 10), ref, "add after a reported error");
}

// The CUDA table has every training op now (kernels/cuda/*_backward.cu,
// attention_dropout.cu, train_ops.cu, adamw.cu): the trainer accepts the device.
// (This test used to expect gelu_backward to be missing; it was stale since the
// backward kernels entered the table, and had never run on a GPU.)
TEST_F(CudaOps, EveryTrainingOpIsInTheTable) { EXPECT_EQ(af_backward_supported(&dev), 1); }

TEST_F(CudaOps, Pooling) {
  std::uniform_int_distribution<int> ul(1, 40);
  std::vector<std::vector<int>> batches = {{1}, {512}, {}};
  for (int i = 0; i < 300; i++) batches[2].push_back(ul(g));
  batches[2][5] = 1;
  for (int C : {384, 37}) {
    for (auto &lens : batches) {
      SCOPED_TRACE("C=" + std::to_string(C) + " B=" + std::to_string(lens.size()));
      auto cu = cu_from_lengths(lens);
      int B = (int)lens.size(), T = cu[B];
      auto x = randu(g, (size_t)T * C);
      std::vector<float> rm((size_t)B * C), rc((size_t)B * C);
      af_cpu_mean_pool_forward(rm.data(), x.data(), cu.data(), B, C);
      af_cpu_cls_pool_forward(rc.data(), x.data(), cu.data(), B, C);
      float *om = poisoned(rm.size()), *oc = poisoned(rc.size());
      float *dx = up(x);
      int32_t *dcu = up(cu);
      EXPECT_EQ(af_op_mean_pool_forward(&dev, om, dx, dcu, B, C, nullptr), AF_OK);
      EXPECT_EQ(af_op_cls_pool_forward(&dev, oc, dx, dcu, B, C, nullptr), AF_OK);
      EXPECT_CLOSE(down(om, rm.size()), rm, "mean pool");
      EXPECT_CLOSE(down(oc, rc.size()), rc, "cls pool");
    }
  }
}

TEST_F(CudaOps, MeanPoolEmptySequenceGivesZero) {
  std::vector<int> lens = {3, 0, 2};
  auto cu = cu_from_lengths(lens);
  const int C = 5;
  auto x = randu(g, (size_t)5 * C);
  std::vector<float> ref(3 * C);
  af_cpu_mean_pool_forward(ref.data(), x.data(), cu.data(), 3, C);
  float *o = poisoned(ref.size());
  EXPECT_EQ(af_op_mean_pool_forward(&dev, o, up(x), up(cu), 3, C, nullptr), AF_OK);
  auto got = down(o, ref.size());
  EXPECT_CLOSE(got, ref, "mean pool with an empty sequence");
  for (int c = 0; c < C; c++) EXPECT_EQ(got[C + c], 0.f);
}

TEST_F(CudaOps, L2Norm) {
  struct Case { int N, C; bool norms; };
  for (Case c : {Case{1, 384, true}, Case{300, 37, false}, Case{8000, 384, true}}) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " C=" + std::to_string(c.C));
    auto x = randu(g, (size_t)c.N * c.C);
    for (int k = 0; k < c.C; k++) x[k] = 0.f;  // a zero row: divided by 1e-12, stays 0
    std::vector<float> ref(x.size()), rn(c.N);
    af_cpu_l2norm_forward(ref.data(), rn.data(), x.data(), c.N, c.C);
    float *out = poisoned(x.size());
    float *nrm = c.norms ? poisoned(c.N) : nullptr;
    EXPECT_EQ(af_op_l2norm_forward(&dev, out, nrm, up(x), c.N, c.C, nullptr), AF_OK);
    EXPECT_CLOSE(down(out, x.size()), ref, "l2norm out");
    if (c.norms) EXPECT_CLOSE(down(nrm, c.N), rn, "l2norm norms");
  }
}


// ---- bf16 ops against their CPU twins (kernels/cpu/bf16.c) --------------------
// bf16 outputs: within 1 bf16 ulp of the CPU's, and at most 0.1% of elements
// differ at all. Why: both round to nearest even, but the fp32 value being
// rounded may differ by an fp32 ulp (erff, sum order), which flips a bf16
// rounding only when it sits within 2^-16 relative of a midpoint.
// fp32 outputs: the 1e-5 relative bound of this file, except linear_bf16:
// 1e-4, because tensor cores accumulate the (exact) bf16 products in fp32
// with their own internal ordering and rounding (not IEEE step by step);
// still 10x below what one bf16 rounding of an input would cost (~4e-3).
void expect_bf16_close(const std::vector<uint16_t> &got, const std::vector<uint16_t> &ref,
                       const char *what) {
  ASSERT_EQ(got.size(), ref.size());
  size_t diff = 0, far = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (got[i] == ref[i]) continue;
    diff++;
    int d = (int)(got[i] & 0x7fff) - (int)(ref[i] & 0x7fff);
    if ((got[i] & 0x8000) != (ref[i] & 0x8000) || d > 1 || d < -1) far++;
  }
  EXPECT_EQ(far, 0u) << what << ": elements more than 1 bf16 ulp apart";
  EXPECT_LE(diff, got.size() / 1000 + 1) << what << ": " << diff << " elements differ";
}

class CudaBf16 : public CudaOps {
 protected:
  uint16_t *poisoned16(size_t n) { return up(std::vector<uint16_t>(n, 0x7fc1)); }  // NaN
  std::vector<uint16_t> get16(const uint16_t *d, size_t n) {
    std::vector<uint16_t> h(n);
    EXPECT_EQ(af_dev_sync(&dev, &err), AF_OK) << err.msg;
    EXPECT_EQ(af_dev_download(&dev, h.data(), d, n * sizeof(uint16_t), &err), AF_OK) << err.msg;
    return h;
  }
  std::vector<uint16_t> rand16(size_t n) {
    auto f = randu(g, n);
    std::vector<uint16_t> h(n);
    af_cpu_cast_bf16(h.data(), f.data(), (int64_t)n);
    return h;
  }
};

TEST_F(CudaBf16, CastIsExact) {
  for (size_t n : {1u, 7u, 100003u}) {
    auto x = randu(g, n, -100.f, 100.f);
    x[0] = 1.0f + 1.0f / 256;  // a tie
    std::vector<uint16_t> ref(n);
    af_cpu_cast_bf16(ref.data(), x.data(), (int64_t)n);
    uint16_t *o = poisoned16(n);
    EXPECT_EQ(af_op_cast_bf16(&dev, o, up(x), (int64_t)n, &err), AF_OK) << err.msg;
    EXPECT_EQ(get16(o, n), ref) << "n=" << n;
  }
}

TEST_F(CudaBf16, LinearBf16MatchesTheCpuEmulation) {
  struct Case { int N, IC, OC; bool bias; };
  for (Case c : {Case{1, 384, 1152, true}, Case{7, 37, 5, false}, Case{300, 384, 1536, true},
                 Case{8000, 1536, 384, true}}) {
    SCOPED_TRACE("N=" + std::to_string(c.N) + " IC=" + std::to_string(c.IC));
    auto x = rand16((size_t)c.N * c.IC), w = rand16((size_t)c.OC * c.IC);
    auto b = randu(g, c.OC);
    std::vector<float> ref((size_t)c.N * c.OC);
    af_device cpu = af_device_cpu(0);
    ASSERT_EQ(af_op_linear_bf16_forward(&cpu, ref.data(), x.data(), w.data(),
                                        c.bias ? b.data() : nullptr, c.N, c.IC, c.OC, &err),
              AF_OK);
    float *out = poisoned(ref.size());
    EXPECT_EQ(af_op_linear_bf16_forward(&dev, out, up(x), up(w), c.bias ? up(b) : nullptr, c.N,
                                        c.IC, c.OC, &err),
              AF_OK)
        << err.msg;
    auto got = down(out, ref.size());
    size_t bad;
    double e = rel_err(got, ref, &bad);
    EXPECT_EQ(bad, 0u);
    EXPECT_LE(e, 1e-4);
  }
}

TEST_F(CudaBf16, BiasGeluCast) {
  for (auto [N, C] : {std::pair{1, 1536}, std::pair{300, 37}, std::pair{8000, 1536}}) {
    auto x = randu(g, (size_t)N * C, -4.f, 4.f), b = randu(g, C);
    std::vector<uint16_t> ref((size_t)N * C);
    af_cpu_bias_gelu_bf16_forward(ref.data(), x.data(), b.data(), N, C);
    uint16_t *o = poisoned16(ref.size());
    EXPECT_EQ(af_op_bias_gelu_bf16_forward(&dev, o, up(x), up(b), N, C, &err), AF_OK) << err.msg;
    expect_bf16_close(get16(o, ref.size()), ref, "bias_gelu_bf16");
  }
}

TEST_F(CudaBf16, AddLayerNormInPlaceAndPlain) {
  for (auto [N, C] : {std::pair{1, 384}, std::pair{300, 37}, std::pair{8000, 384}}) {
    auto a = randu(g, (size_t)N * C, 2.f, 6.f), r = randu(g, (size_t)N * C);
    auto w = randu(g, C), beta = randu(g, C);
    for (bool residual : {true, false}) {
      SCOPED_TRACE("N=" + std::to_string(N) + (residual ? " a+b" : " a"));
      std::vector<float> ref((size_t)N * C);
      std::vector<uint16_t> refb(ref.size());
      af_cpu_add_layernorm_forward(ref.data(), refb.data(), a.data(), residual ? r.data() : nullptr,
                                   w.data(), beta.data(), N, C, 1e-12f);
      float *dr = up(r);  // out aliases b, as in the encoder
      uint16_t *ob = poisoned16(ref.size());
      float *out = residual ? dr : poisoned(ref.size());
      EXPECT_EQ(af_op_add_layernorm_forward(&dev, out, ob, up(a), residual ? dr : nullptr, up(w),
                                            up(beta), N, C, 1e-12f, &err),
                AF_OK)
          << err.msg;
      EXPECT_CLOSE(down(out, ref.size()), ref, "add_layernorm out");
      expect_bf16_close(get16(ob, ref.size()), refb, "add_layernorm bf16 copy");
    }
  }
}

TEST_F(CudaBf16, MeanPoolL2NormWithAnEmptySequence) {
  std::uniform_int_distribution<int> ul(1, 40);
  std::vector<int> lens(300);
  for (auto &l : lens) l = ul(g);
  lens[7] = 0;
  lens[299] = 0;  // empty last sequence
  auto cu = cu_from_lengths(lens);
  for (int C : {384, 37, 1000}) {
    auto x = randu(g, (size_t)cu.back() * C);
    std::vector<float> ref((size_t)300 * C);
    af_device cpu = af_device_cpu(0);
    ASSERT_EQ(af_op_mean_pool_l2norm_forward(&cpu, ref.data(), x.data(), cu.data(), 300, C, &err),
              AF_OK);
    float *o = poisoned(ref.size());
    EXPECT_EQ(af_op_mean_pool_l2norm_forward(&dev, o, up(x), up(cu), 300, C, &err), AF_OK)
        << err.msg;
    EXPECT_CLOSE(down(o, ref.size()), ref, "mean_pool_l2norm C=" + std::to_string(C));
  }
}


// The fused tensor-core attention (attention_mma.cu) against its CPU twin
// (kernels/cpu/attention_bf16.c: the same bf16 roundings without the tiling).
// Bound: relative L2 <= 1e-2 per case. Why: the GPU rounds each probability
// relative to the running max, not the final one, and sums in another order,
// so a bf16 rounding (2^-9 relative) can land differently; that averages to
// ~1e-3 over a row. The HS = 13 case runs the fp32 fallback (no bf16 P), also
// ~1e-3 from the twin. A wrong mask, fragment or sequence boundary gives O(1).
TEST_F(CudaBf16, FusedAttentionPackedShortTitles) {
  std::uniform_int_distribution<int> ul(3, 15);
  std::vector<int> lens(700);
  for (auto &l : lens) l = ul(g);
  lens[0] = 1;
  lens[10] = 0;   // an empty sequence inside a tile
  lens[699] = 0;  // and at the end
  for (int NH : {12, 6}) {  // HS = 32, 64
    SCOPED_TRACE("NH=" + std::to_string(NH));
    auto cu = cu_from_lengths(lens);
    int B = (int)lens.size(), T = cu[B], C = 384;
    auto qkv = randu(g, (size_t)T * 3 * C, -2.f, 2.f);
    std::vector<float> scratch((size_t)T * C);
    std::vector<uint16_t> ref((size_t)T * C);
    af_device cpu = af_device_cpu(0);
    ASSERT_EQ(af_op_attention_bf16_forward(&cpu, ref.data(), scratch.data(), qkv.data(), cu.data(),
                                           B, T, C, NH, &err),
              AF_OK);
    uint16_t *o = poisoned16(ref.size());
    EXPECT_EQ(af_op_attention_bf16_forward(&dev, o, poisoned(ref.size()), up(qkv), up(cu), B, T, C,
                                           NH, &err),
              AF_OK)
        << err.msg;
    auto got16 = get16(o, ref.size());
    std::vector<float> got(ref.size()), reff(ref.size());
    for (size_t i = 0; i < ref.size(); i++) {
      got[i] = af_f32_from_bf16(got16[i]);
      reff[i] = af_f32_from_bf16(ref[i]);
    }
    size_t bad;
    double e = rel_err(got, reff, &bad);
    EXPECT_EQ(bad, 0u);
    EXPECT_LE(e, 1e-2);
  }
}

TEST_F(CudaBf16, FusedAttentionLongAndOddShapes) {
  struct Case { std::vector<int> lens; int C, NH; };
  for (const Case &c : {Case{{512}, 384, 12}, Case{{512, 1, 200, 64, 65}, 256, 4},
                        Case{{1}, 64, 2}, Case{{130, 7, 33}, 39, 3} /* HS 13: fallback */}) {
    auto cu = cu_from_lengths(c.lens);
    int B = (int)c.lens.size(), T = cu[B];
    SCOPED_TRACE("T=" + std::to_string(T) + " HS=" + std::to_string(c.C / c.NH));
    auto qkv = randu(g, (size_t)T * 3 * c.C, -2.f, 2.f);
    std::vector<float> scratch((size_t)T * c.C);
    std::vector<uint16_t> ref((size_t)T * c.C);
    af_device cpu = af_device_cpu(0);
    ASSERT_EQ(af_op_attention_bf16_forward(&cpu, ref.data(), scratch.data(), qkv.data(), cu.data(),
                                           B, T, c.C, c.NH, &err),
              AF_OK);
    uint16_t *o = poisoned16(ref.size());
    EXPECT_EQ(af_op_attention_bf16_forward(&dev, o, poisoned(ref.size()), up(qkv), up(cu), B, T,
                                           c.C, c.NH, &err),
              AF_OK)
        << err.msg;
    auto got16 = get16(o, ref.size());
    std::vector<float> got(ref.size()), reff(ref.size());
    for (size_t i = 0; i < ref.size(); i++) {
      got[i] = af_f32_from_bf16(got16[i]);
      reff[i] = af_f32_from_bf16(ref[i]);
    }
    size_t bad;
    double e = rel_err(got, reff, &bad);
    EXPECT_EQ(bad, 0u);
    EXPECT_LE(e, 1e-2);
  }
}


TEST_F(CudaOps, ClsPoolOfAnEmptyLastSequenceIsZero) {
  const int C = 37, T = 5;
  std::vector<int32_t> cu = {0, 2, 5, 5};
  auto x = randu(g, (size_t)T * C);
  std::vector<float> padded = x;
  padded.resize((size_t)(T + 1) * C, std::numeric_limits<float>::quiet_NaN());
  float *o = poisoned(3 * C);
  EXPECT_EQ(af_op_cls_pool_forward(&dev, o, up(padded), up(cu), 3, C, &err), AF_OK) << err.msg;
  auto got = down(o, 3 * C);
  for (int c = 0; c < C; c++) {
    EXPECT_EQ(got[c], x[c]);
    EXPECT_EQ(got[C + c], x[2 * C + c]);
    EXPECT_EQ(got[2 * C + c], 0.f);
  }
}

// The saved probabilities of many sequences (their offsets now come from one
// prefix kernel, not a scan per block): checked element by element against
// the CPU twin, at B = 3000.
TEST_F(CudaAttention, ProbsOffsetsOfManySequences) {
  std::uniform_int_distribution<int> ul(0, 12);
  std::vector<int> lens(3000);
  for (auto &l : lens) l = ul(g);
  lens[0] = 3;
  run_case(lens, 64, 2);
}

}  // namespace
