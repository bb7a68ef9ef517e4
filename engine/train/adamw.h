/* Internal to engine/train: the AdamW step's scalars in the op interface's
 * form (af_op_adamw_step, kernels/ops_backward.h). */
#ifndef AF_TRAIN_ADAMW_H
#define AF_TRAIN_ADAMW_H

#include "affinity.h"
#include "ops_backward.h"

#ifdef __cplusplus
extern "C" {
#endif

/* af_adamw_step_scalars(cfg, lr, step) with the gradient factor grad_scale. */
af_adamw_op_scalars af_adamw_op_scalars_of(const af_adamw_config *cfg, double lr, int64_t step,
                                           float grad_scale);

#ifdef __cplusplus
}
#endif
#endif
