/* AdamW optimizer, learning-rate schedule and gradient clipping, with the
 * semantics of torch.optim.AdamW (single-tensor path),
 * transformers.get_linear_schedule_with_warmup and
 * torch.nn.utils.clip_grad_norm_.
 *
 * One optimizer step over a model whose parameters are a table of tensors:
 *   double ss = 0;  for each tensor: ss += af_grad_sumsq(grad, n);
 *   float  gs = accum_scale * af_clip_coef(accum_scale * sqrt(ss), max_norm);
 *   double lr = af_lr_linear_warmup(base_lr, steps_done, warmup, total);
 *   for each tensor: af_adamw_update(p, g, m, v, n, lr, &cfg,
 *                                    af_param_decays(name), steps_done + 1, gs);
 *   steps_done++; zero the gradients.
 * accum_scale turns summed micro-batch gradients into their mean (1 / number
 * of micro-batches; 1 without accumulation). */
#ifndef AF_ADAMW_H
#define AF_ADAMW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_adamw_config {
  float beta1, beta2; /* moment decay rates */
  float eps;          /* added to sqrt(v_hat), outside the square root */
  float weight_decay; /* decoupled: p -= lr * weight_decay * p, for decaying tensors */
} af_adamw_config;

/* torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
af_adamw_config af_adamw_defaults(void);

/* One AdamW step of one tensor; step is this update's 1-based count (the
 * bias corrections use beta^step). With g = grad_scale * grad:
 *   if decay: p *= 1 - lr * weight_decay
 *   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * param, grad, m, v (n); m and v start at zero. */
void af_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, double lr,
                     const af_adamw_config *cfg, int decay, int64_t step, float grad_scale);

/* The float scalars of one AdamW step (computed in double, then rounded, as
 * af_adamw_update uses them; a device kernel given these does the same
 * per-element float operations and gets the same bits). */
typedef struct af_adamw_scalars {
  float keep_decay; /* 1 - lr * weight_decay (decaying tensors; others keep 1) */
  float w1, w2, fb2; /* 1 - beta1, 1 - beta2, beta2 */
  float step_size;  /* lr / (1 - beta1^step) */
  float bc2_sqrt;   /* sqrt(1 - beta2^step) */
  float eps;
} af_adamw_scalars;
af_adamw_scalars af_adamw_step_scalars(const af_adamw_config *cfg, double lr, int64_t step);

/* 1 if the parameter of this Hugging Face name takes weight decay: 0 for
 * biases (".bias" at the end) and LayerNorm tensors ("LayerNorm" anywhere). */
int af_param_decays(const char *hf_name);

/* Learning rate of the optimizer step that follows `steps_done` steps:
 * base_lr * steps_done / warmup while steps_done < warmup, then
 * base_lr * max(0, (total - steps_done) / max(1, total - warmup)).
 * (transformers' get_linear_schedule_with_warmup: the first step runs at lr 0
 * when warmup > 0.) */
double af_lr_linear_warmup(double base_lr, int64_t steps_done, int64_t warmup, int64_t total);

/* Sum of squares of n gradient values, in double, in a fixed order
 * (independent of the thread count). Sum it over all tensors, take the square
 * root: the global L2 norm. */
double af_grad_sumsq(const float *grad, int64_t n);

/* clip_grad_norm_'s factor: min(1, max_norm / (total_norm + 1e-6)).
 * max_norm <= 0 disables clipping (returns 1). */
float af_clip_coef(double total_norm, double max_norm);

#ifdef __cplusplus
}
#endif
#endif /* AF_ADAMW_H */
