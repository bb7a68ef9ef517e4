/* Multiple-negatives ranking loss (see loss.h): the CPU kernel
 * (kernels/cpu/mnr_loss.c), which the CPU backend's af_op_mnr_loss runs too. */
#include "train/loss.h"

#include "ops_backward.h"

af_status af_mnr_loss(const float *anchors, const float *positives, const float *negatives, int B,
                      int M, int C, float scale, int symmetric, float *loss, float *d_anchors,
                      float *d_positives, float *d_negatives, af_error *err) {
  return af_cpu_mnr_loss(anchors, positives, negatives, B, M, C, scale, symmetric, loss, d_anchors,
                         d_positives, d_negatives, err);
}
