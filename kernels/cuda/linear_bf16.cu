/* Linear layer in bf16 (CUDA): one cuBLASLt matmul on tensor cores, bf16
 * inputs, fp32 accumulation (CUBLAS_COMPUTE_32F), fp32 output, and the bias
 * in the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS: exact, it is one fp32 add
 * per output). The GELU epilogue is not used: cuBLASLt documents it as the
 * tanh approximation, and BERT's GELU is erf (bf16.cu has our own kernel).
 *
 * Row-major trick as linear.cu: out^T (OC, N) = W (OC, IC) * inp^T (IC, N) in
 * column-major views: A = w stored (IC, OC) ld IC with transa = T, B = inp
 * stored (IC, N) ld IC, D = out stored (OC, N) ld OC; the bias has OC entries
 * (the rows of D). The descriptors and the heuristic are made per call (a few
 * µs; a per-shape cache is the next step if the benchmark shows it). */
#include <cublasLt.h>
#include <stdint.h>

#include "cuda_check.h"

typedef struct {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, d;
  cublasLtMatmulPreference_t pref;
} lt_plan;

static void plan_free(lt_plan *p) {
  if (p->pref)
    (void)cublasLtMatmulPreferenceDestroy(p->pref);
  if (p->d)
    (void)cublasLtMatrixLayoutDestroy(p->d);
  if (p->b)
    (void)cublasLtMatrixLayoutDestroy(p->b);
  if (p->a)
    (void)cublasLtMatrixLayoutDestroy(p->a);
  if (p->op)
    (void)cublasLtMatmulDescDestroy(p->op);
}

#define LT(call)                                                                                   \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                             \
      af_cuda_record_cublas(ctx, s_, #call, __FILE__, __LINE__);                                   \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

static void make_plan(af_cuda_context *ctx, lt_plan *p, const float *bias, int N, int IC, int OC) {
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LT(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bt = CUDA_R_32F;
    LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                      sizeof bias));
    LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
  }
  LT(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, (uint64_t)IC, (uint64_t)OC, IC));
  LT(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, (uint64_t)IC, (uint64_t)N, IC));
  LT(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, (uint64_t)OC, (uint64_t)N, OC));
  LT(cublasLtMatmulPreferenceCreate(&p->pref));
  const size_t ws = ctx->workspace_bytes;
  LT(cublasLtMatmulPreferenceSetAttribute(p->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                          sizeof ws));
}

static void run_plan(af_cuda_context *ctx, lt_plan *p, float *out, const uint16_t *inp,
                     const uint16_t *w, int N, int IC, int OC) {
  cublasLtMatmulHeuristicResult_t h;
  int found = 0;
  LT(cublasLtMatmulAlgoGetHeuristic(ctx->cublaslt, p->op, p->a, p->b, p->d, p->d, p->pref, 1, &h,
                                    &found));
  if (found == 0) {
    af_cuda_record(ctx, AF_ERR_CUDA,
                   "linear_bf16_forward: cuBLASLt has no bf16 algorithm for N=%d IC=%d OC=%d", N,
                   IC, OC);
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  LT(cublasLtMatmul(ctx->cublaslt, p->op, &alpha, w, p->a, inp, p->b, &beta, out, p->d, out, p->d,
                    &h.algo, ctx->workspace, ctx->workspace_bytes, ctx->stream));
}

extern "C" void af_cuda_linear_bf16_forward(af_cuda_context *ctx, float *out, const uint16_t *inp,
                                            const uint16_t *w, const float *bias, int N, int IC,
                                            int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || OC <= 0)
    return;
  if (IC <= 0) { // an empty sum: the fp32 op writes zeros, then the bias
    af_cuda_linear_forward(ctx, out, NULL, NULL, bias, N, 0, OC);
    return;
  }
  lt_plan p = {};
  make_plan(ctx, &p, bias, N, IC, OC);
  if (!af_cuda_has_pending(ctx))
    run_plan(ctx, &p, out, inp, w, N, IC, OC);
  plan_free(&p);
}
