/* EASE (see ease.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* LAPACK (OpenBLAS ships it), Fortran ABI: the trailing size_t is the hidden
 * length of the character argument. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);

af_status af_spd_inverse(double *A, int64_t n, af_error *err) {
  if (n > 46340) /* n * n must fit LAPACK's int indexing */
    return af_error_set(err, AF_ERR_ARG, "EASE: %lld products exceed the dense limit 46340",
                        (long long)n);
  /* A is symmetric, so row- and column-major agree; LAPACK's lower triangle
   * (column-major) is element (i, j), i >= j, at A[i + j * n] */
  int ni = (int)n, info = 0;
  dpotrf_("L", &ni, A, &ni, &info, 1);
  if (info != 0)
    return af_error_set(err, AF_ERR_ARG, "matrix not positive definite "
                        "(dpotrf info %d)", info);
  dpotri_("L", &ni, A, &ni, &info, 1);
  if (info != 0)
    return af_error_set(err, AF_ERR_ARG, "EASE: inverse failed (dpotri info %d)", info);
  for (int64_t j = 0; j < n; j++) /* full symmetric */
    for (int64_t i = j + 1; i < n; i++)
      A[j + i * n] = A[i + j * n];
  return AF_OK;
}

af_status af_ease_solve(double *G, int64_t n, double lambda, af_error *err) {
  if (n < 1)
    return AF_OK;
  if (n > 46340) /* n * n must fit LAPACK's int indexing */
    return af_error_set(err, AF_ERR_ARG, "EASE: %lld products exceed the dense limit 46340",
                        (long long)n);
  if (!(lambda > 0))
    return af_error_set(err, AF_ERR_ARG, "EASE: lambda must be > 0, got %g", lambda);
  for (int64_t i = 0; i < n; i++)
    G[i * n + i] += lambda;
  AF_TRY(af_spd_inverse(G, n, err));
  double *inv_diag = malloc(sizeof *inv_diag * (size_t)n);
  if (!inv_diag)
    return af_error_set(err, AF_ERR_NOMEM, "EASE: out of memory");
  for (int64_t j = 0; j < n; j++)
    inv_diag[j] = 1.0 / G[j * n + j];
  for (int64_t i = 0; i < n; i++) /* B[i, j] = -P[i, j] / P[j, j], zero diagonal */
    for (int64_t j = 0; j < n; j++)
      G[i * n + j] = i == j ? 0.0 : -G[i * n + j] * inv_diag[j];
  free(inv_diag);
  return AF_OK;
}

typedef struct {
  int64_t count;
  int32_t row;
} item_count;

static int by_count_desc(const void *pa, const void *pb) {
  const item_count *a = pa, *b = pb;
  if (a->count != b->count)
    return a->count > b->count ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

static int by_row(const void *pa, const void *pb) {
  const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  return (a > b) - (a < b);
}

/* m->items, m->local, m->n: the products with >= min_count baskets, capped. */
static af_status select_items(const af_baskets *b, const af_ease_options *o, af_ease_model *m,
                              af_error *err) {
  const int32_t N = b->n_items;
  item_count *c = af_calloc((size_t)N + 1, sizeof *c, err);
  m->local = af_malloc((size_t)N + 1, sizeof *m->local, err);
  m->items = af_malloc((size_t)N + 1, sizeof *m->items, err);
  if (!c || !m->local || !m->items) {
    free(c);
    return AF_ERR_NOMEM;
  }
  for (int32_t i = 0; i < N; i++)
    c[i].row = i;
  for (int64_t i = 0; i < b->offsets[b->n_baskets]; i++)
    c[b->items[i]].count++;
  int64_t n = 0;
  const int64_t min_count = o->min_count < 1 ? 1 : o->min_count;
  for (int32_t i = 0; i < N; i++)
    if (c[i].count >= min_count)
      c[n++] = c[i];
  m->n_eligible = n;
  if (n > o->max_items) {
    qsort(c, (size_t)n, sizeof *c, by_count_desc);
    n = o->max_items;
  }
  for (int64_t i = 0; i < n; i++)
    m->items[i] = c[i].row;
  qsort(m->items, (size_t)n, sizeof *m->items, by_row);
  free(c);
  for (int32_t i = 0; i < N; i++)
    m->local[i] = -1;
  for (int64_t i = 0; i < n; i++)
    m->local[m->items[i]] = (int32_t)i;
  m->n = n;
  return AF_OK;
}

/* G (n, n) = X^T X over the modelled products. */
static af_status gram(const af_baskets *b, const af_ease_model *m, double *G, af_error *err) {
  const int64_t n = m->n;
  int32_t *loc = af_malloc((size_t)b->n_items + 1, sizeof *loc, err);
  if (!loc)
    return AF_ERR_NOMEM;
  for (int64_t k = 0; k < b->n_baskets; k++) {
    int nl = 0;
    for (int64_t p = b->offsets[k]; p < b->offsets[k + 1]; p++)
      if (m->local[b->items[p]] >= 0)
        loc[nl++] = m->local[b->items[p]];
    for (int x = 0; x < nl; x++)
      for (int y = x; y < nl; y++)
        G[(int64_t)loc[x] * n + loc[y]] += 1.0;
  }
  for (int64_t i = 0; i < n; i++) /* mirror the upper triangle */
    for (int64_t j = i + 1; j < n; j++)
      G[j * n + i] = G[i * n + j];
  free(loc);
  return AF_OK;
}

af_status af_ease_fit(const af_baskets *train, const af_ease_options *o, af_ease_model *out,
                      af_error *err) {
  memset(out, 0, sizeof *out);
  if (o->max_items < 1)
    return af_error_set(err, AF_ERR_ARG, "EASE: max_items must be >= 1, got %lld",
                        (long long)o->max_items);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  out->N = train->n_items;
  af_status st = select_items(train, o, out, err);
  const int64_t n = out->n;
  double *G = st == AF_OK ? af_calloc((size_t)(n * n) + 1, sizeof *G, err) : NULL; /* (n, n) */
  if (st == AF_OK && !G)
    st = AF_ERR_NOMEM;
  if (st == AF_OK)
    st = gram(train, out, G, err);
  if (st == AF_OK)
    st = af_ease_solve(G, n, o->lambda, err);
  if (st != AF_OK) {
    free(G);
    af_ease_free(out);
    return st;
  }
  /* to float in place: float k lies below double k, so a forward pass is
   * safe (byte copies: no type punning) */
  unsigned char *bytes = (unsigned char *)G;
  for (int64_t k = 0; k < n * n; k++) {
    double v;
    memcpy(&v, bytes + 8 * k, sizeof v);
    float f = (float)v;
    memcpy(bytes + 4 * k, &f, sizeof f);
  }
  float *shrunk = realloc(G, sizeof(float) * (size_t)(n * n) + 1);
  out->B = shrunk ? shrunk : (float *)(void *)G;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  return AF_OK;
}

void af_ease_free(af_ease_model *m) {
  free(m->items);
  free(m->local);
  free(m->B);
  memset(m, 0, sizeof *m);
}

void af_ease_query_scores(const af_ease_model *m, const int32_t *query, int n_query, float *out) {
  for (int i = 0; i < n_query; i++) {
    const int32_t q = m->local[query[i]];
    if (q < 0)
      continue;
    const float *row = m->B + (int64_t)q * m->n;
    for (int64_t j = 0; j < m->n; j++)
      out[m->items[j]] += row[j];
  }
}
