/* Our GEMM driver (see gemm.h and docs/performance.md), BLIS-style:
 *
 *   for jc in N step NC:                       B block (KC, NC) packed once, shared
 *     for pc in K step KC:                     K order fixed: results thread-independent
 *       pack B (KC, NC) into NR-wide micro-panels        (omp for)
 *       for each (MC-row block, column chunk):           (omp for, dynamic)
 *         pack A (MC, KC) into MR-tall micro-panels      (thread-local, stays in L2)
 *         for each B micro-panel (kc, NR) of the chunk:  (stays in L1)
 *           for each A micro-panel: micro-kernel MR x NR (registers)
 *
 * Partial tiles are zero-padded in the packed panels and written through a
 * small tile buffer. */
#include "cpu/gemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/gemm_kernels.h"

#define KC 384  /* K per packed block: A micro-panel 12 x 384 + B micro-panel 384 x 32
                   (bf16: 768, as 384 pairs in the same bytes) */
#define MC 144  /* rows per A block (a multiple of every MR) */
#define NC 3072 /* columns per B block (a multiple of every NR) */

typedef struct {
  int mr, nr;
  af_gemm_ukr_fn ukr;
  int bf16; /* panels hold bf16 pairs along K (kp = ceil(kc / 2) steps) */
} ukr_desc;

void af_gemm_ukr_scalar(int kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        int load_c) {
  enum { R = AF_GEMM_SCALAR_MR, C = AF_GEMM_SCALAR_NR };
  float acc[R][C] = {{0}};
  for (int p = 0; p < kc; p++)
    for (int r = 0; r < R; r++)
      for (int j = 0; j < C; j++)
        acc[r][j] += ap[p * R + r] * bp[p * C + j];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < C; j++)
      c[r * ldc + j] = load_c ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

int af_gemm_isa_supported(af_gemm_isa isa) {
  switch (isa) {
  case AF_GEMM_AUTO:
  case AF_GEMM_SCALAR:
    return 1;
  case AF_GEMM_AVX2:
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case AF_GEMM_AVX512:
    return __builtin_cpu_supports("avx512f");
  case AF_GEMM_AVX512_BF16:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  }
  return 0;
}

af_gemm_isa af_gemm_isa_best(void) {
  if (af_gemm_isa_supported(AF_GEMM_AVX512))
    return AF_GEMM_AVX512;
  if (af_gemm_isa_supported(AF_GEMM_AVX2))
    return AF_GEMM_AVX2;
  return AF_GEMM_SCALAR;
}

const char *af_gemm_isa_name(af_gemm_isa isa) {
  static const char *const names[] = {"auto", "scalar", "avx2", "avx512", "avx512_bf16"};
  return isa >= AF_GEMM_AUTO && isa <= AF_GEMM_AVX512_BF16 ? names[isa] : "?";
}

static ukr_desc pick(af_gemm_isa isa) {
  if (isa == AF_GEMM_AUTO)
    isa = af_gemm_isa_best();
  while (isa > AF_GEMM_SCALAR && !af_gemm_isa_supported(isa))
    isa = (af_gemm_isa)(isa - 1);
  if (isa == AF_GEMM_AVX512_BF16)
    return (ukr_desc){AF_GEMM_AVX512_MR, AF_GEMM_AVX512_NR, af_gemm_ukr_avx512_bf16, 1};
  if (isa == AF_GEMM_AVX512)
    return (ukr_desc){AF_GEMM_AVX512_MR, AF_GEMM_AVX512_NR, af_gemm_ukr_avx512, 0};
  if (isa == AF_GEMM_AVX2)
    return (ukr_desc){AF_GEMM_AVX2_MR, AF_GEMM_AVX2_NR, af_gemm_ukr_avx2, 0};
  return (ukr_desc){AF_GEMM_SCALAR_MR, AF_GEMM_SCALAR_NR, af_gemm_ukr_scalar, 0};
}

typedef struct {
  int M, N, K;
  const float *a;
  int64_t rsa, csa;
  const float *b;
  int64_t rsb, csb;
  float *c;
  int64_t ldc;
  int accumulate;
  ukr_desc u;
} gemm_job;

/* fp32 -> bf16, round to nearest even (NaN stays NaN). */
static inline uint32_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* The 32-bit bf16 pair (x[p], x[p+1]) of a strided vector, 0 past kc. */
static inline uint32_t bf16_pair(const float *x, int64_t stride, int p, int kc) {
  uint32_t lo = bf16_bits(x[(int64_t)p * stride]);
  uint32_t hi = p + 1 < kc ? bf16_bits(x[(int64_t)(p + 1) * stride]) : 0u;
  return lo | hi << 16;
}

/* bf16 twin of pack_b_panel: micro-panel (kp, nr) of pairs along K. */
static void pack_b_panel_bf16(const gemm_job *g, int p0, int kc, int j0, int nc, int panel,
                              float *bp) {
  const int nr = g->u.nr, kp = (kc + 1) / 2;
  uint32_t *dst = (uint32_t *)(void *)bp + (int64_t)panel * kp * nr; // (kp, nr)
  int jb = j0 + panel * nr, w = nc - panel * nr < nr ? nc - panel * nr : nr;
  for (int j = 0; j < nr; j++) {
    const float *src = j < w ? g->b + (int64_t)p0 * g->rsb + (int64_t)(jb + j) * g->csb : NULL;
    for (int q = 0; q < kp; q++)
      dst[(int64_t)q * nr + j] = src ? bf16_pair(src, g->rsb, 2 * q, kc) : 0u;
  }
}

/* bf16 twin of pack_a: micro-panels (kp, mr) of pairs along K. */
static void pack_a_bf16(const gemm_job *g, int i0, int mc, int p0, int kc, float *ap) {
  const int mr = g->u.mr, kp = (kc + 1) / 2;
  for (int ib = 0; ib < mc; ib += mr) {
    uint32_t *dst = (uint32_t *)(void *)ap + (int64_t)(ib / mr) * kp * mr; // (kp, mr)
    int h = mc - ib < mr ? mc - ib : mr;
    for (int r = 0; r < mr; r++) {
      const float *src = r < h ? g->a + (int64_t)(i0 + ib + r) * g->rsa + (int64_t)p0 * g->csa : NULL;
      for (int q = 0; q < kp; q++)
        dst[(int64_t)q * mr + r] = src ? bf16_pair(src, g->csa, 2 * q, kc) : 0u;
    }
  }
}

/* B rows [p0, p0+kc) x columns [j0, j0+nc) into micro-panels bp (ceil(nc/nr), kc, nr). */
static void pack_b_panel(const gemm_job *g, int p0, int kc, int j0, int nc, int panel,
                         float *bp) {
  const int nr = g->u.nr;
  float *dst = bp + (int64_t)panel * kc * nr; // (kc, nr)
  int jb = j0 + panel * nr, w = nc - panel * nr < nr ? nc - panel * nr : nr;
  if (g->rsb == 1 && g->csb != 1) { /* B transposed (W of out = x W^T): read along p */
    for (int j = 0; j < nr; j++) {
      const float *src = g->b + (int64_t)p0 + (int64_t)(jb + j) * g->csb; // (kc)
      for (int p = 0; p < kc; p++)
        dst[(int64_t)p * nr + j] = j < w ? src[p] : 0.0f;
    }
    return;
  }
  for (int p = 0; p < kc; p++) {
    const float *src = g->b + (int64_t)(p0 + p) * g->rsb + (int64_t)jb * g->csb;
    float *d = dst + (int64_t)p * nr; // (nr)
    int j = 0;
    if (g->csb == 1)
      for (; j < w; j++)
        d[j] = src[j];
    else
      for (; j < w; j++)
        d[j] = src[(int64_t)j * g->csb];
    for (; j < nr; j++)
      d[j] = 0.0f;
  }
}

/* A rows [i, i+h) x columns [p0, p0+kc) into one micro-panel dst (kc, mr), zero padded. */
static void pack_a_rows(const gemm_job *g, int i, int h, int p0, int kc, float *dst) {
  const int mr = g->u.mr;
  for (int r = 0; r < mr; r++) {
    if (r >= h) {
      for (int p = 0; p < kc; p++)
        dst[(int64_t)p * mr + r] = 0.0f;
      continue;
    }
    const float *src = g->a + (int64_t)(i + r) * g->rsa + (int64_t)p0 * g->csa;
    if (g->csa == 1)
      for (int p = 0; p < kc; p++)
        dst[(int64_t)p * mr + r] = src[p];
    else
      for (int p = 0; p < kc; p++)
        dst[(int64_t)p * mr + r] = src[(int64_t)p * g->csa];
  }
}

/* A rows [i0, i0+mc) x columns [p0, p0+kc) into micro-panels ap (ceil(mc/mr), kc, mr). */
static void pack_a(const gemm_job *g, int i0, int mc, int p0, int kc, float *ap) {
  const int mr = g->u.mr;
  for (int ib = 0; ib < mc; ib += mr) {
    float *dst = ap + (int64_t)(ib / mr) * kc * mr; // (kc, mr)
    int h = mc - ib < mr ? mc - ib : mr;
    if (g->csa == 1 || g->rsa != 1)
      pack_a_rows(g, i0 + ib, h, p0, kc, dst);
    else /* A transposed (dout^T of dW = dout^T x): read along i */
      for (int p = 0; p < kc; p++) {
        const float *src = g->a + (int64_t)(p0 + p) * g->csa + (i0 + ib); // (h)
        for (int r = 0; r < mr; r++)
          dst[(int64_t)p * mr + r] = r < h ? src[r] : 0.0f;
      }
  }
}

/* C rows [i0, i0+mc) x columns [j0+q0, j0+q1) (panels [pa, pb) of the B block). */
static void macro_kernel(const gemm_job *g, const float *ap, const float *bp, int i0, int mc,
                         int j0, int nc, int pa, int pb, int kc, int load_c) {
  const int mr = g->u.mr, nr = g->u.nr;
  if (g->u.bf16)
    kc = (kc + 1) / 2; /* packed depth: bf16 pairs, one 32-bit word each */
  float tile[AF_GEMM_AVX512_MR * AF_GEMM_AVX512_NR] __attribute__((aligned(64)));
  for (int ib = 0; ib < mc; ib += mr) {
    const float *a = ap + (int64_t)(ib / mr) * kc * mr; // (kc, mr)
    int h = mc - ib < mr ? mc - ib : mr;
    for (int panel = pa; panel < pb; panel++) {
      const float *b = bp + (int64_t)panel * kc * nr; // (kc, nr)
      int j = j0 + panel * nr, w = nc - panel * nr < nr ? nc - panel * nr : nr;
      float *c = g->c + (int64_t)(i0 + ib) * g->ldc + j;
      if (h == mr && w == nr) {
        g->u.ukr(kc, a, b, c, g->ldc, load_c);
        continue;
      }
      g->u.ukr(kc, a, b, tile, nr, 0);
      for (int r = 0; r < h; r++)
        for (int q = 0; q < w; q++)
          c[(int64_t)r * g->ldc + q] =
              load_c ? c[(int64_t)r * g->ldc + q] + tile[r * nr + q] : tile[r * nr + q];
    }
  }
}

/* Unblocked fallback when the packing buffers cannot be allocated. */
static void gemm_naive(const gemm_job *g) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < g->M; i++)
    for (int j = 0; j < g->N; j++) {
      float s = 0.0f;
      for (int p = 0; p < g->K; p++)
        s += g->a[(int64_t)i * g->rsa + (int64_t)p * g->csa] *
             g->b[(int64_t)p * g->rsb + (int64_t)j * g->csb];
      float *c = g->c + (int64_t)i * g->ldc + j;
      *c = g->accumulate ? *c + s : s;
    }
}

static void zero_or_keep(const gemm_job *g) {
  if (g->accumulate)
    return;
  for (int i = 0; i < g->M; i++)
    memset(g->c + (int64_t)i * g->ldc, 0, (size_t)g->N * sizeof(float));
}

/* bp: the shared B block; ap: one A block (MC/mr, KC, mr) per thread, threads of them. */
static void gemm_blocked(const gemm_job *g, float *bp, float *ap_all, int threads) {
  const int nr = g->u.nr;
  const int n_ic = (g->M + MC - 1) / MC;
#pragma omp parallel num_threads(threads)
  {
    float *ap = ap_all + (size_t)omp_get_thread_num() * MC * KC;
    int team = omp_get_num_threads();
    for (int j0 = 0; j0 < g->N; j0 += NC) {
      int nc = g->N - j0 < NC ? g->N - j0 : NC;
      int n_panels = (nc + nr - 1) / nr;
      /* Few row blocks: also split the columns so every thread has work. */
      int n_jc = n_ic >= 2 * team ? 1 : (2 * team + n_ic - 1) / n_ic;
      if (n_jc > n_panels)
        n_jc = n_panels;
      /* bf16 packs pairs: twice the K per block in the same bytes and registers' depth */
      const int kc_max = g->u.bf16 ? 2 * KC : KC;
      for (int p0 = 0; p0 < g->K; p0 += kc_max) {
        int kc = g->K - p0 < kc_max ? g->K - p0 : kc_max;
#pragma omp for schedule(static)
        for (int panel = 0; panel < n_panels; panel++) {
          if (g->u.bf16)
            pack_b_panel_bf16(g, p0, kc, j0, nc, panel, bp);
          else
            pack_b_panel(g, p0, kc, j0, nc, panel, bp);
        }
        int load_c = g->accumulate || p0 > 0;
#pragma omp for schedule(dynamic, 1)
        for (int item = 0; item < n_ic * n_jc; item++) {
          int ic = item / n_jc, jc = item % n_jc;
          int i0 = ic * MC, mc = g->M - i0 < MC ? g->M - i0 : MC;
          if (g->u.bf16)
            pack_a_bf16(g, i0, mc, p0, kc, ap);
          else
            pack_a(g, i0, mc, p0, kc, ap);
          int pa = (int)((int64_t)n_panels * jc / n_jc);
          int pb = (int)((int64_t)n_panels * (jc + 1) / n_jc);
          macro_kernel(g, ap, bp, i0, mc, j0, nc, pa, pb, kc, load_c);
        }
      }
    }
  }
}

void af_gemm_isa_run(af_gemm_isa isa, int M, int N, int K, const float *a, int64_t rsa,
                     int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c,
                     int64_t ldc, int accumulate) {
  if (M <= 0 || N <= 0)
    return;
  gemm_job g = {M, N, K, a, rsa, csa, b, rsb, csb, c, ldc, accumulate, pick(isa)};
  if (K <= 0) {
    zero_or_keep(&g);
    return;
  }
  int nc = N < NC ? N : NC, kc = K < KC ? K : KC;
  size_t b_floats = (size_t)((nc + g.u.nr - 1) / g.u.nr) * g.u.nr * kc; // (nc/nr, kc, nr)
  int threads = omp_get_max_threads();
  float *bp = aligned_alloc(64, (b_floats * sizeof(float) + 63) / 64 * 64);
  float *ap = aligned_alloc(64, (size_t)threads * MC * KC * sizeof(float)); // (threads, MC*KC)
  if (bp && ap)
    gemm_blocked(&g, bp, ap, threads);
  else /* no memory for the packing buffers: correct, unblocked, slow */
    gemm_naive(&g);
  free(bp);
  free(ap);
}

void af_sgemm(int M, int N, int K, const float *a, int64_t rsa, int64_t csa, const float *b,
              int64_t rsb, int64_t csb, float *c, int64_t ldc, int accumulate) {
  af_gemm_isa_run(AF_GEMM_AUTO, M, N, K, a, rsa, csa, b, rsb, csb, c, ldc, accumulate);
}
