/* AdamW, linear warm-up schedule and global-norm clipping (see adamw.h).
 * The per-element arithmetic follows torch's single-tensor AdamW operation by
 * operation in float, with the scalar factors computed in double as Python
 * does, so that results agree with torch to a few float ulps. */
#include "affinity.h"
#include "train/adamw.h"

#include <math.h>
#include <string.h>

af_adamw_config af_adamw_defaults(void) {
  af_adamw_config c = {0.9f, 0.999f, 1e-8f, 0.01f};
  return c;
}

af_adamw_scalars af_adamw_step_scalars(const af_adamw_config *cfg, double lr, int64_t step) {
  const double b1 = cfg->beta1, b2 = cfg->beta2;
  af_adamw_scalars s = {
      .keep_decay = (float)(1.0 - lr * cfg->weight_decay),
      .w1 = (float)(1.0 - b1), // lerp weight of m toward g
      .w2 = (float)(1.0 - b2), // weight of g^2 in v
      .fb2 = (float)b2,
      .step_size = (float)(lr / (1.0 - pow(b1, (double)step))),
      .bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)step)),
      .eps = cfg->eps,
  };
  return s;
}

void af_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, double lr,
                     const af_adamw_config *cfg, int decay, int64_t step, float grad_scale) {
  const af_adamw_op_scalars s = af_adamw_op_scalars_of(cfg, lr, step, grad_scale);
  af_cpu_adamw_update(param, grad, m, v, n, decay, &s); // kernels/cpu/adamw.c
}

af_adamw_op_scalars af_adamw_op_scalars_of(const af_adamw_config *cfg, double lr, int64_t step,
                                           float grad_scale) {
  const af_adamw_scalars a = af_adamw_step_scalars(cfg, lr, step);
  af_adamw_op_scalars s = {.keep_decay = a.keep_decay,
                           .w1 = a.w1,
                           .w2 = a.w2,
                           .fb2 = a.fb2,
                           .step_size = a.step_size,
                           .bc2_sqrt = a.bc2_sqrt,
                           .eps = a.eps,
                           .grad_scale = grad_scale};
  return s;
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

double af_grad_sumsq(const float *grad, int64_t n) { return af_cpu_grad_sumsq(grad, n); }

float af_clip_coef(double total_norm, double max_norm) {
  if (!(max_norm > 0.0))
    return 1.0f;
  float coef = (float)(max_norm / (total_norm + 1e-6));
  return coef < 1.0f ? coef : 1.0f;
}
