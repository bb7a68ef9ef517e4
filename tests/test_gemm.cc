// Our GEMM (kernels/cpu/gemm.h), every ISA path forced, against a float64
// reference written here from the definition C = A . B (+ C0).
//
// Shapes: the encoder's (K, N) in {384, 1536} (MiniLM) and {768, 3072}
// (BERT-base) with an odd token count M = 97, and all combinations of the odd
// sizes {1, 7, 33, 385} for M, N and K; each in the three layouts the linear
// layers use: A.B^T (forward), A.B (dX) and A^T.B (dW), with and without
// accumulation into C, and with C having a leading dimension larger than N.
//
// Tolerance, and why: a float32 dot product of length K, summed in any order
// with fused or unfused multiply-adds, differs from the exact value by at most
// gamma_{K+1} (sum_p |a_ip b_pj| + |c0_ij|), gamma_n = n u / (1 - n u) with
// u = 2^-24 (Higham, Accuracy and Stability, Thm 3.1/3.5). We allow exactly
// that worst-case bound (plus the float32 rounding of the inputs, which the
// reference sees as doubles of the same floats, so none). It cannot be hit by
// rounding; a wrong index, a lost or doubled panel, or a missed edge gives
// errors of order |a_ip b_pj| and fails (checked by planting one: see
// PlantedErrorIsCaught).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/gemm.h"

namespace {

enum Layout { kNT, kNN, kTN }; // C = A B^T (forward), A B (dX), A^T B (dW)

struct Problem {
  int M, N, K;
  Layout lay;
  int64_t ldc;
  std::vector<float> a, b, c0;
  int64_t rsa, csa, rsb, csb;
};

Problem make(int M, int N, int K, Layout lay, unsigned seed) {
  Problem p{M, N, K, lay, (int64_t)N + 3, {}, {}, {}, 0, 0, 0, 0};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  p.a.resize((size_t)M * K + 1);
  p.b.resize((size_t)K * N + 1);
  p.c0.resize((size_t)M * p.ldc + 1);
  for (auto &x : p.a) x = u(rng);
  for (auto &x : p.b) x = u(rng);
  for (auto &x : p.c0) x = u(rng);
  // A stored (M, K) row-major, or (K, M) for A^T; B stored (K, N), or (N, K) for B^T.
  if (lay == kTN) { p.rsa = 1; p.csa = M; } else { p.rsa = K; p.csa = 1; }
  if (lay == kNT) { p.rsb = 1; p.csb = K; } else { p.rsb = N; p.csb = 1; }
  return p;
}

// The float64 products' sums and magnitudes of p, (M, N) each.
struct Ref {
  std::vector<double> sum, mag;
};

Ref reference(const Problem &p) {
  Ref r{std::vector<double>((size_t)p.M * p.N), std::vector<double>((size_t)p.M * p.N)};
  for (int i = 0; i < p.M; i++)
    for (int j = 0; j < p.N; j++) {
      double s = 0, mag = 0;
      for (int q = 0; q < p.K; q++) {
        double t = (double)p.a[i * p.rsa + q * p.csa] * (double)p.b[q * p.rsb + j * p.csb];
        s += t;
        mag += std::fabs(t);
      }
      r.sum[(size_t)i * p.N + j] = s;
      r.mag[(size_t)i * p.N + j] = mag;
    }
  return r;
}

// Elements of c (a result for p) outside the bound; max_ratio = max err / bound.
int verify(const Problem &p, const Ref &ref, const std::vector<float> &c, int accumulate,
           double *max_ratio) {
  int bad = 0;
  *max_ratio = 0;
  const double u = std::ldexp(1.0, -24);
  const double gamma = (p.K + 1) * u / (1 - (p.K + 1) * u);
  for (int i = 0; i < p.M; i++) {
    for (int j = 0; j < p.N; j++) {
      double s = ref.sum[(size_t)i * p.N + j], mag = ref.mag[(size_t)i * p.N + j];
      double c0 = p.c0[i * p.ldc + j];
      if (accumulate) {
        s += c0;
        mag += std::fabs(c0);
      }
      double err = std::fabs((double)c[i * p.ldc + j] - s), bound = gamma * mag;
      if (err > bound) bad++;
      if (bound > 0) *max_ratio = std::max(*max_ratio, err / bound);
    }
    for (int64_t j = p.N; j < p.ldc; j++) // padding past N untouched
      if (std::memcmp(&c[i * p.ldc + j], &p.c0[i * p.ldc + j], sizeof(float)) != 0) bad++;
  }
  return bad;
}

std::vector<float> run(const Problem &p, af_gemm_isa isa, int accumulate) {
  std::vector<float> c = p.c0;
  af_gemm_isa_run(isa, p.M, p.N, p.K, p.a.data(), p.rsa, p.csa, p.b.data(), p.rsb, p.csb,
                  c.data(), p.ldc, accumulate);
  return c;
}

int check(const Problem &p, const Ref &ref, af_gemm_isa isa, int accumulate, double *max_ratio) {
  return verify(p, ref, run(p, isa, accumulate), accumulate, max_ratio);
}

std::vector<af_gemm_isa> paths() {
  std::vector<af_gemm_isa> v;
  for (af_gemm_isa isa : {AF_GEMM_SCALAR, AF_GEMM_AVX2, AF_GEMM_AVX512}) {
    if (af_gemm_isa_supported(isa))
      v.push_back(isa);
    else
      std::printf("[ skip ] %s: not supported by this CPU\n", af_gemm_isa_name(isa));
  }
  return v;
}

TEST(Gemm, EncoderShapesEveryPath) {
  const int shapes[][2] = {{384, 1536}, {1536, 384}, {768, 3072}, {3072, 768}}; // (K, N)
  for (auto &s : shapes)
    for (Layout lay : {kNT, kNN, kTN}) {
      Problem p = make(37, s[1], s[0], lay, 1 + s[0] + lay);
      Ref ref = reference(p);
      for (af_gemm_isa isa : paths())
        for (int acc : {0, 1}) {
          double r;
          EXPECT_EQ(check(p, ref, isa, acc, &r), 0) << af_gemm_isa_name(isa) << " K=" << s[0]
                                                    << " N=" << s[1] << " layout " << lay;
          std::printf("%-6s K=%4d N=%4d layout %d acc %d: max err / bound %.4f\n",
                      af_gemm_isa_name(isa), s[0], s[1], lay, acc, r);
        }
    }
}

TEST(Gemm, OddSizesEveryPath) {
  const int sizes[] = {1, 7, 33, 385};
  for (int M : sizes)
    for (int N : sizes)
      for (int K : sizes)
        for (Layout lay : {kNT, kNN, kTN}) {
          Problem p = make(M, N, K, lay, 7 * M + 11 * N + 13 * K + lay);
          Ref ref = reference(p);
          for (af_gemm_isa isa : paths()) {
            double r;
            EXPECT_EQ(check(p, ref, isa, (M + N + K) & 1, &r), 0)
                << af_gemm_isa_name(isa) << " M=" << M << " N=" << N << " K=" << K;
          }
        }
}

TEST(Gemm, BigMCrossesEveryBlock) {
  // M > 144 (row blocks), K > 384 (K blocks, accumulation between them), N > 3072 (column blocks).
  Problem p = make(150, 3100, 400, kNT, 5);
  Ref ref = reference(p);
  for (af_gemm_isa isa : paths()) {
    double r;
    EXPECT_EQ(check(p, ref, isa, 0, &r), 0) << af_gemm_isa_name(isa);
  }
}

TEST(Gemm, KZero) {
  Problem p = make(5, 6, 0, kNN, 3);
  Ref ref = reference(p);
  for (af_gemm_isa isa : paths()) {
    double r;
    EXPECT_EQ(check(p, ref, isa, 0, &r), 0);
    EXPECT_EQ(check(p, ref, isa, 1, &r), 0);
  }
}

TEST(Gemm, SameBitsForAnyThreadCount) {
  // Threads split rows and columns, never K: every element's sum has one order.
  for (af_gemm_isa isa : paths()) {
    Problem p = make(301, 1536, 384, kNT, 9); // 3 row blocks
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> ref = run(p, isa, 1);
    for (int t : {2, 3, 5}) {
      omp_set_num_threads(t);
      std::vector<float> c = run(p, isa, 1);
      EXPECT_EQ(std::memcmp(ref.data(), c.data(), c.size() * sizeof(float)), 0)
          << af_gemm_isa_name(isa) << " threads " << t;
    }
    omp_set_num_threads(saved);
  }
}

TEST(Gemm, PlantedErrorIsCaught) {
  // The bound sees one wrong product: B off by 1% in one element gives a
  // result that must fail against the unperturbed reference, on every path.
  Problem p = make(33, 33, 385, kNN, 4);
  Problem q = p;
  q.b[5 * q.rsb + 3] += 0.01f;
  Ref ref = reference(p);
  for (af_gemm_isa isa : paths()) {
    double r;
    EXPECT_GT(verify(p, ref, run(q, isa, 0), 0, &r), 0) << af_gemm_isa_name(isa);
  }
}

TEST(Gemm, BestPathIsNamed) {
  af_gemm_isa best = af_gemm_isa_best();
  EXPECT_TRUE(af_gemm_isa_supported(best));
  std::printf("best GEMM path on this CPU: %s\n", af_gemm_isa_name(best));
  if (__builtin_cpu_supports("avx512f")) {
    EXPECT_EQ(best, AF_GEMM_AVX512);
  }
}

} // namespace

namespace {

float round_bf16(float f) {  // nearest even, as the packing does
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// The bf16 path: inputs rounded to bf16 (8 significant bits: unit roundoff
// 2^-8 each), products of two bf16 exact in fp32, fp32 accumulation.
// (1) Against the float64 product of the bf16-rounded inputs it must meet the
//     same fp32 accumulation bound gamma_{K+1} as the fp32 paths: this checks
//     the pairing of K elements, the packing and the edges exactly.
// (2) Against the float64 product of the original inputs: |err| <= (2 * 2^-8
//     + 2^-16 + gamma_{K+1}) sum |a b|, the input rounding bound.
TEST(GemmBf16, MatchesRoundedReferenceAndInputRoundingBound) {
  if (!af_gemm_isa_supported(AF_GEMM_AVX512_BF16))
    GTEST_SKIP() << "this CPU has no AVX512_BF16";
  struct S { int M, N, K; Layout lay; } shapes[] = {
      {37, 1536, 384, kNT}, {37, 384, 1536, kNT}, {33, 768, 385, kNN}, {385, 33, 7, kTN},
      {1, 7, 1, kNT},       {7, 33, 33, kNN},     {150, 3100, 400, kNT}};
  for (auto &s : shapes) {
    Problem p = make(s.M, s.N, s.K, s.lay, 17 + s.K);
    Problem r = p;  // the same problem with bf16-rounded inputs
    for (auto &x : r.a) x = round_bf16(x);
    for (auto &x : r.b) x = round_bf16(x);
    for (int acc : {0, 1}) {
      std::vector<float> c = run(p, AF_GEMM_AVX512_BF16, acc);
      double ratio;
      EXPECT_EQ(verify(r, reference(r), c, acc, &ratio), 0)
          << "rounded reference M=" << s.M << " N=" << s.N << " K=" << s.K;
      // (2): scale the bound by hand.
      Ref ref = reference(p);
      const double u = std::ldexp(1.0, -24), gamma = (p.K + 1) * u / (1 - (p.K + 1) * u);
      const double rel = 2 * std::ldexp(1.0, -8) + std::ldexp(1.0, -16) + 1.01 * gamma;
      int bad = 0;
      for (int i = 0; i < p.M; i++)
        for (int j = 0; j < p.N; j++) {
          double want = ref.sum[(size_t)i * p.N + j], mag = ref.mag[(size_t)i * p.N + j];
          double c0 = p.c0[i * p.ldc + j];
          if (acc) want += c0;
          if (std::fabs(c[i * p.ldc + j] - want) > rel * mag + gamma * std::fabs(c0)) bad++;
        }
      EXPECT_EQ(bad, 0) << "input bound M=" << s.M << " N=" << s.N << " K=" << s.K;
    }
  }
}

TEST(GemmBf16, SameBitsForAnyThreadCount) {
  if (!af_gemm_isa_supported(AF_GEMM_AVX512_BF16))
    GTEST_SKIP() << "this CPU has no AVX512_BF16";
  Problem p = make(301, 1536, 385, kNT, 9);
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<float> ref = run(p, AF_GEMM_AVX512_BF16, 1);
  omp_set_num_threads(3);
  std::vector<float> c = run(p, AF_GEMM_AVX512_BF16, 1);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(ref.data(), c.data(), c.size() * sizeof(float)), 0);
}

}  // namespace
