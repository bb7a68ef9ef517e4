/* The AdamW element update and the gradient sum of squares (CPU), behind
 * af_op_adamw_step / af_op_grad_sumsq and engine/train/adamw.c's
 * af_adamw_update / af_grad_sumsq. torch's single-tensor AdamW operation by
 * operation in float (the C build does not contract multiply-adds, so the
 * CUDA twin in kernels/cuda/adamw.cu, with explicitly rounded intrinsics,
 * gives the same bits). */
#include <math.h>

#include "ops_backward.h"

void af_cpu_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n,
                         int decay, const af_adamw_op_scalars *s) {
  const float keep = decay ? s->keep_decay : 1.0f, gs = s->grad_scale;
  const float w1 = s->w1, w2 = s->w2, fb2 = s->fb2, step_size = s->step_size;
  const float bc2_sqrt = s->bc2_sqrt, eps = s->eps;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i] * gs;
    float p = param[i] * keep;
    float mi = m[i] + w1 * (g - m[i]);     // torch lerp_ with weight < 0.5
    float vi = v[i] * fb2 + w2 * g * g;     // mul_(beta2).addcmul_(g, g, 1 - beta2)
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = p + -step_size * mi / denom; // addcdiv_(m, denom, value=-step_size)
    m[i] = mi;
    v[i] = vi;
  }
}

#define AF_SUMSQ_CHUNK 4096 // values per partial sum: the order is fixed by n alone

double af_cpu_grad_sumsq(const float *grad, int64_t n) {
  int64_t n_chunks = (n + AF_SUMSQ_CHUNK - 1) / AF_SUMSQ_CHUNK;
  double total = 0.0;
  // Chunks in parallel, their partial sums added in chunk order by the
  // ordered clause: the same bits for any thread count.
#pragma omp parallel for ordered schedule(static)
  for (int64_t ch = 0; ch < n_chunks; ch++) {
    int64_t i0 = ch * AF_SUMSQ_CHUNK, i1 = i0 + AF_SUMSQ_CHUNK < n ? i0 + AF_SUMSQ_CHUNK : n;
    double s = 0.0;
    for (int64_t i = i0; i < i1; i++)
      s += (double)grad[i] * grad[i];
#pragma omp ordered
    total += s;
  }
  return total;
}
