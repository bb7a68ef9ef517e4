// bf16 rounding (af_bf16_from_f32, round to nearest even) and the CPU bf16
// ops that emulate the GPU bf16 path (kernels/cpu/bf16.c, ops.h).
// References: (1) a definition-level rounding written independently in
// double arithmetic (nearest of the two bf16 neighbours, ties to the even
// mantissa), over every 65,536 upper halves with the lower halves where
// rounding changes (0, 0x7fff, 0x8000 = the tie, 0x8001, 0xffff) and a
// stride-97 sweep of all 2^32 patterns; (2) the CPU's own VCVTNEPS2BF16
// (AVX512-BF16, on this Zen 4) for normal numbers, when the CPU has it.
// Every check is exact: rounding is a function, there is no tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

float f_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// The definition: x lies between lo = x truncated to bf16 and hi, the next
// bf16 away from zero; pick the nearer, ties to the even one. hi's value is
// computed in double so the step past the largest bf16 is 2^128 (-> inf).
uint16_t ref_bf16(uint32_t u) {
  const float x = f_of(u);
  if (std::isnan(x)) return (uint16_t)((u >> 16) | 0x40);
  if (std::isinf(x)) return (uint16_t)(u >> 16);
  const uint16_t lo = (uint16_t)(u >> 16);
  const uint16_t hi = (uint16_t)(lo + 1);  // magnitude + 1 ulp (into inf past the max)
  const double ax = std::fabs((double)x);
  const double alo = std::fabs((double)f_of((uint32_t)lo << 16));
  double ahi;
  if ((hi & 0x7fff) == 0x7f80)
    ahi = std::ldexp(1.0, 128);
  else
    ahi = std::fabs((double)f_of((uint32_t)hi << 16));
  const double dlo = ax - alo, dhi = ahi - ax;
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;  // tie: the even mantissa
}

TEST(Bf16, RoundingMatchesTheDefinitionAtEveryUpperHalf) {
  int64_t bad = 0, n = 0;
  for (uint32_t hi = 0; hi < 65536; hi++)
    for (uint32_t lo : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xc000u, 0xffffu}) {
      uint32_t u = (hi << 16) | lo;
      n++;
      if (af_bf16_from_f32(f_of(u)) != ref_bf16(u) && bad++ < 5)
        ADD_FAILURE() << std::hex << "u=0x" << u << " got 0x" << af_bf16_from_f32(f_of(u))
                      << " want 0x" << ref_bf16(u);
    }
  EXPECT_EQ(bad, 0) << "of " << n;
}

TEST(Bf16, RoundingMatchesTheDefinitionOnAStrideOfAllPatterns) {
  int64_t bad = 0;
  for (uint64_t v = 0; v < (1ull << 32); v += 97) {
    uint32_t u = (uint32_t)v;
    if (af_bf16_from_f32(f_of(u)) != ref_bf16(u) && bad++ < 5)
      ADD_FAILURE() << std::hex << "u=0x" << u;
  }
  EXPECT_EQ(bad, 0);
}

TEST(Bf16, SpecialValues) {
  EXPECT_EQ(af_bf16_from_f32(0.0f), 0x0000);
  EXPECT_EQ(af_bf16_from_f32(-0.0f), 0x8000);
  EXPECT_EQ(af_bf16_from_f32(1.0f), 0x3f80);
  EXPECT_EQ(af_bf16_from_f32(INFINITY), 0x7f80);
  EXPECT_EQ(af_bf16_from_f32(-INFINITY), 0xff80);
  EXPECT_EQ(af_bf16_from_f32(3.4028235e38f), 0x7f80);  // FLT_MAX rounds up to inf
  uint16_t qnan = af_bf16_from_f32(f_of(0x7f800001u));  // a signalling NaN payload
  EXPECT_TRUE(std::isnan(af_f32_from_bf16(qnan)));
  EXPECT_EQ(qnan & 0x0040, 0x0040);
  EXPECT_EQ(af_f32_from_bf16(0x3f80), 1.0f);
  // 1 + 2^-8 is the tie between 1 and 1 + 2^-7: to even (1).
  EXPECT_EQ(af_bf16_from_f32(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(af_bf16_from_f32(1.0f + 3.0f / 256), 0x3f82);  // tie, odd below: up
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512bf16"))) void hw_bf16(const float *x, uint16_t *out) {
  __m256bh r = _mm512_cvtneps_pbh(_mm512_loadu_ps(x));
  std::memcpy(out, &r, 32);
}
#endif

TEST(Bf16, MatchesTheCpusConversionInstruction) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512bf16")) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  std::mt19937 g(7);
  int64_t bad = 0, n = 0;
  float x[16];
  uint16_t hw[16];
  for (int it = 0; it < 200000; it++) {
    for (int k = 0; k < 16; k++) {
      uint32_t u;
      do {
        u = (uint32_t)g();
        // normal numbers only: VCVTNEPS2BF16 treats denormals as zero; no NaN
      } while (((u >> 23) & 0xff) == 0 || ((u >> 23) & 0xff) == 0xff);
      if (it % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // a quarter are exact ties
      x[k] = f_of(u);
    }
    hw_bf16(x, hw);
    for (int k = 0; k < 16; k++, n++)
      if (af_bf16_from_f32(x[k]) != hw[k] && bad++ < 5)
        ADD_FAILURE() << "x=" << x[k] << " ours 0x" << std::hex << af_bf16_from_f32(x[k])
                      << " cpu 0x" << hw[k];
  }
  EXPECT_EQ(bad, 0) << "of " << n;
#else
  GTEST_SKIP() << "not an x86-64 build";
#endif
}

// The fused CPU ops equal the unfused fp32 ops they replace, bit for bit
// (same operations in the same order), so the bf16 encoder differs from the
// fp32 one only by the bf16 rounding of GEMM inputs.
TEST(Bf16Ops, FusedOpsEqualTheirParts) {
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  const int N = 37, C = 96;
  std::vector<float> a(N * C), b(N * C), w(C), beta(C), bias(C);
  for (auto *v : {&a, &b, &w, &beta, &bias})
    for (auto &x : *v) x = u(g);
  af_device d = af_device_cpu(1);
  af_error err{};
  // add + LayerNorm, in place on b (the encoder's residual update)
  std::vector<float> sum(N * C), ref(N * C), out = b;
  std::vector<uint16_t> outb(N * C);
  af_cpu_add_forward(sum.data(), a.data(), b.data(), N * C);
  af_cpu_layernorm_forward(ref.data(), nullptr, nullptr, sum.data(), w.data(), beta.data(), N, C,
                           1e-12f);
  ASSERT_EQ(af_op_add_layernorm_forward(&d, out.data(), outb.data(), a.data(), out.data(), w.data(),
                                        beta.data(), N, C, 1e-12f, &err),
            AF_OK);
  for (int i = 0; i < N * C; i++) {
    ASSERT_EQ(out[i], ref[i]) << i;
    ASSERT_EQ(outb[i], af_bf16_from_f32(ref[i])) << i;
  }
  // bias + GELU + cast
  std::vector<float> pre(N * C), gl(N * C);
  for (int i = 0; i < N * C; i++) pre[i] = a[i] + bias[i % C];
  af_cpu_gelu_forward(gl.data(), pre.data(), N * C);
  ASSERT_EQ(af_op_bias_gelu_bf16_forward(&d, outb.data(), a.data(), bias.data(), N, C, &err), AF_OK);
  for (int i = 0; i < N * C; i++) ASSERT_EQ(outb[i], af_bf16_from_f32(gl[i])) << i;
  // mean pool + L2 norm, with an empty sequence
  std::vector<int32_t> cu = {0, 5, 5, 20, N};
  std::vector<float> pm(4 * C), pn(4 * C), fused(4 * C, NAN);
  af_cpu_mean_pool_forward(pm.data(), a.data(), cu.data(), 4, C);
  af_cpu_l2norm_forward(pn.data(), nullptr, pm.data(), 4, C);
  ASSERT_EQ(af_op_mean_pool_l2norm_forward(&d, fused.data(), a.data(), cu.data(), 4, C, &err), AF_OK);
  for (int i = 0; i < 4 * C; i++) ASSERT_EQ(fused[i], pn[i]) << i;
  for (int c = 0; c < C; c++) ASSERT_EQ(fused[C + c], 0.0f);  // the empty sequence
}

// linear_bf16 against a float64 product of the same bf16-rounded inputs.
// Bound 1e-5 relative (L2): fp32 sums of IC = 384 exact products move by
// ~sqrt(IC) 2^-24; a wrong rounding or index gives > 1e-3.
TEST(Bf16Ops, LinearBf16MatchesFloat64) {
  std::mt19937 g(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int N = 19, IC = 384, OC = 70;
  std::vector<uint16_t> x(N * IC), w(OC * IC);
  std::vector<float> bias(OC), out(N * OC, NAN);
  for (auto &v : x) v = af_bf16_from_f32(u(g));
  for (auto &v : w) v = af_bf16_from_f32(u(g));
  for (auto &v : bias) v = u(g);
  af_device d = af_device_cpu(1);
  af_error err{};
  ASSERT_EQ(af_op_linear_bf16_forward(&d, out.data(), x.data(), w.data(), bias.data(), N, IC, OC,
                                      &err),
            AF_OK);
  double num = 0, den = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias[o];
      for (int i = 0; i < IC; i++)
        s += (double)af_f32_from_bf16(x[n * IC + i]) * af_f32_from_bf16(w[o * IC + i]);
      double e = out[n * OC + o] - s;
      num += e * e;
      den += s * s;
    }
  EXPECT_LE(std::sqrt(num / den), 1e-5);
}


// The CPU twin of the tensor-core attention against the fp32 kernel (itself
// checked against PyTorch): relative L2 between 1e-5 and 1e-2 on packed
// sequences. Lower bound: it must differ (bf16 really applied); upper: bf16
// rounding of Q, K, V and P (2^-9 relative each) averages to ~1e-3.
TEST(Bf16Ops, AttentionTwinIsCloseToFp32) {
  std::mt19937 g(11);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  std::vector<int32_t> cu = {0, 9, 9, 20, 21, 84};
  const int B = 5, T = 84;
  for (int NH : {12, 6}) {
    const int C = 384;
    std::vector<float> qkv((size_t)T * 3 * C), ref((size_t)T * C);
    for (auto &x : qkv) x = u(g);
    std::vector<uint16_t> out((size_t)T * C);
    af_cpu_attention_forward(ref.data(), nullptr, qkv.data(), cu.data(), B, C, NH);
    af_cpu_attention_bf16_forward(out.data(), qkv.data(), cu.data(), B, C, NH);
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
      double d = (double)af_f32_from_bf16(out[i]) - ref[i];
      num += d * d;
      den += (double)ref[i] * ref[i];
    }
    double e = std::sqrt(num / den);
    EXPECT_GT(e, 1e-5) << "NH=" << NH;
    EXPECT_LT(e, 1e-2) << "NH=" << NH;
  }
}

}  // namespace
