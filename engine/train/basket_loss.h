/* Basket-completion loss (docs/training.md, "Basket-completion objective"):
 * in-batch softmax of each pooled query basket against the held-out items of
 * the batch, with the popularity (logQ) correction and a mask for in-batch
 * candidates that are true positives of another row.
 *
 * Given query vectors U (B, C) (any scale: normalised here) and positives
 * P (B, C):
 *   S_ij = scale * cos(U_i, P_j) - log q_j           (B, B)  (logq NULL: no term)
 *   S_ij = -inf for i != j with mask[i B + j] = 1     (excluded both ways)
 *   loss = mean_i ( logsumexp_j S_ij - S_ii )                       plain
 *   loss = mean_i ( (logsumexp_j S_ij + logsumexp_k S_ki) / 2 - S_ii ) symmetric
 * In the symmetric (positive -> query) direction the -log q_i of a column is
 * the same for every row, so it cancels: that direction is the plain softmax
 * over the batch's queries. Everything is double; O(B^2 C). */
#ifndef AF_BASKET_LOSS_H
#define AF_BASKET_LOSS_H

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *loss the mean loss; dU, dP (B, C) the gradients, WRITTEN (NULL: not
 * wanted). logq (B) or NULL; mask (B, B) or NULL (the diagonal is ignored).
 * AF_ERR_ARG for B < 1, C < 1, scale <= 0, or a non-finite logq. */
af_status af_basket_loss(const double *U, const double *P, const double *logq,
                         const unsigned char *mask, int B, int C, double scale, int symmetric,
                         double *loss, double *dU, double *dP, af_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AF_BASKET_LOSS_H */
