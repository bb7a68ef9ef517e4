/* EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), a closed-form
 * linear item-item model.
 *
 * With X the (baskets, n) 0/1 matrix of the modelled products and
 * G = X^T X the Gram matrix (G[i,j] = baskets holding both i and j, G[i,i] =
 * baskets holding i), B minimises ||X - X B||^2 + lambda ||B||^2 subject to
 * diag(B) = 0. Its closed form is
 *   P = (G + lambda I)^{-1},   B = I - P diag(1 / diag(P)),
 * i.e. B[i,j] = -P[i,j] / P[j,j] (i != j), B[j,j] = 0; it satisfies the
 * normal equations ((G + lambda I) B)[i,j] = G[i,j] for every i != j.
 * A query Q scores a candidate j by sum over q in Q of B[q, j].
 *
 * Modelled products: those in at least min_count training baskets. The
 * solve is dense: O(n^2) memory (8 n^2 bytes while solving, 4 n^2 after) and
 * O(n^3) time (a Cholesky factorisation and inverse, LAPACK dpotrf + dpotri
 * from OpenBLAS), so n is capped at max_items: above it only the max_items
 * most-bought products are modelled (ties: lower catalog row), the others
 * score 0 (docs/evaluation.md has the measured cost). */
#ifndef AF_EASE_H
#define AF_EASE_H

#include <stdint.h>

#include "base/error.h"
#include "assoc/fuse.h"
#include "io/baskets.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  double lambda;     /* L2 weight, > 0 (default 100: chosen on Instacart's validation split) */
  int64_t min_count; /* products in fewer training baskets are not modelled (default 2) */
  int64_t max_items; /* size limit of the dense solve (default 5000) */
} af_ease_options;

#define AF_EASE_DEFAULT_OPTIONS {.lambda = 100.0, .min_count = 2, .max_items = 5000}

typedef struct {
  int32_t N;          /* catalog products (baskets' n_items) */
  int64_t n;          /* modelled products */
  int64_t n_eligible; /* products with >= min_count baskets, before the max_items cap */
  int32_t *items;     /* (n) catalog rows of the modelled products, ascending */
  int32_t *local;     /* (N) catalog row -> index into items, or -1 */
  float *B;           /* (n, n) row-major: B[i * n + j] weight of item i for candidate j */
  double seconds;     /* fit time (Gram + solve) */
} af_ease_model;

/* In place: A (n, n) symmetric positive definite -> A^{-1} (LAPACK dpotrf +
 * dpotri); an error naming dpotrf's info when A is not positive definite. */
af_status af_spd_inverse(double *A, int64_t n, af_error *err);

/* In place: G (n, n) symmetric Gram matrix on entry, B on return (row-major,
 * B[i * n + j]). An error when G + lambda I is not positive definite. */
af_status af_ease_solve(double *G, int64_t n, double lambda, af_error *err);

/* Fits EASE on the baskets (item index = catalog row). */
af_status af_ease_fit(const af_baskets *train, const af_ease_options *o, af_ease_model *out,
                      af_error *err);
void af_ease_free(af_ease_model *m);

/* out[j] += sum over the modelled query items q of B[q, j] (out (N)). */
void af_ease_query_scores(const af_ease_model *m, const int32_t *query, int n_query, float *out);

/* associate with EASE complements: res's complement rows are replaced by
 * each modelled product's k best candidates with B[a, b] > 0 (ties: lower
 * row), with their co-purchase count and lift from baskets and the text
 * cosine of emb (N, d, L2-normalised; NULL: 0); res's substitutes stay. */
af_status af_ease_complements(const af_ease_model *m, const af_baskets *baskets, int k,
                              const float *emb, int d, af_fuse_result *res, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
