/* AdamW, linear warm-up schedule and global-norm clipping (see adamw.h).
 * The per-element arithmetic follows torch's single-tensor AdamW operation by
 * operation in float, with the scalar factors computed in double as Python
 * does, so that results agree with torch to a few float ulps. */
#include "affinity.h"

#include <math.h>
#include <string.h>

af_adamw_config af_adamw_defaults(void) {
  af_adamw_config c = {0.9f, 0.999f, 1e-8f, 0.01f};
  return c;
}

void af_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, double lr,
                     const af_adamw_config *cfg, int decay, int64_t step, float grad_scale) {
  const double b1 = cfg->beta1, b2 = cfg->beta2;
  const float keep = decay ? (float)(1.0 - lr * cfg->weight_decay) : 1.0f;
  const float w1 = (float)(1.0 - b1);      // lerp weight of m toward g
  const float w2 = (float)(1.0 - b2);      // weight of g^2 in v
  const float fb2 = (float)b2;
  const double bc1 = 1.0 - pow(b1, (double)step);
  const double bc2 = 1.0 - pow(b2, (double)step);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float eps = cfg->eps;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i] * grad_scale;
    float p = param[i] * keep;
    float mi = m[i] + w1 * (g - m[i]);     // torch lerp_ with weight < 0.5
    float vi = v[i] * fb2 + w2 * g * g;     // mul_(beta2).addcmul_(g, g, 1 - beta2)
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = p + -step_size * mi / denom; // addcdiv_(m, denom, value=-step_size)
    m[i] = mi;
    v[i] = vi;
  }
}

int af_param_decays(const char *hf_name) {
  size_t len = strlen(hf_name);
  if (len >= 5 && strcmp(hf_name + len - 5, ".bias") == 0)
    return 0;
  if (strstr(hf_name, "LayerNorm"))
    return 0;
  return 1;
}

double af_lr_linear_warmup(double base_lr, int64_t steps_done, int64_t warmup, int64_t total) {
  if (steps_done < warmup)
    return base_lr * ((double)steps_done / (double)(warmup > 1 ? warmup : 1));
  double rest = (double)(total - steps_done) / (double)(total - warmup > 1 ? total - warmup : 1);
  return base_lr * (rest > 0.0 ? rest : 0.0);
}

#define AF_SUMSQ_CHUNK 4096 // values per partial sum: the order is fixed by n alone

double af_grad_sumsq(const float *grad, int64_t n) {
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

float af_clip_coef(double total_norm, double max_norm) {
  if (!(max_norm > 0.0))
    return 1.0f;
  float coef = (float)(max_norm / (total_norm + 1e-6));
  return coef < 1.0f ? coef : 1.0f;
}
