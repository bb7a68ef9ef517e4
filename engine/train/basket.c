/* The basket-completion objective (include/affinity.h, "train/basket";
 * docs/training.md): examples from training baskets, their seeded queries,
 * and one micro-batch's forward + loss + backward through the trainer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/search.h"
#include "nn/model.h"
#include "train/basket_loss.h"

#define STREAM_SAMPLE 0x4241534b53000000ULL /* "BASKS": the max_examples sample */

static int has_text(const char *const *texts, int32_t item) {
  return texts[item] && texts[item][0];
}

void af_basket_examples_free(af_basket_examples *ex) {
  if (!ex)
    return;
  free(ex->basket), free(ex->held), free(ex->log_q);
  memset(ex, 0, sizeof *ex);
}

/* log_q (n_items): log share of the item occurrences of b. */
static void fill_log_q(const af_baskets *b, double *log_q) {
  const double total = (double)b->offsets[b->n_baskets];
  for (int32_t i = 0; i < b->n_items; i++)
    log_q[i] = 0;
  for (int64_t p = 0; p < b->offsets[b->n_baskets]; p++)
    log_q[b->items[p]] += 1;
  for (int32_t i = 0; i < b->n_items; i++)
    log_q[i] = log((log_q[i] > 0 ? log_q[i] : 0.5) / (total > 0 ? total : 1));
}

static int cmp_u64(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Keeps the m examples with the smallest seeded keys, in their order. */
static af_status sample(af_basket_examples *ex, int64_t m, af_error *err) {
  uint64_t *key = af_malloc((size_t)ex->n, sizeof *key, err);
  uint64_t *sorted = key ? af_malloc((size_t)ex->n, sizeof *sorted, err) : NULL;
  if (!sorted) {
    free(key);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < ex->n; i++)
    key[i] = sorted[i] = af_pairs_rand_below(ex->seed, STREAM_SAMPLE, (uint64_t)i, UINT64_MAX);
  qsort(sorted, (size_t)ex->n, sizeof *sorted, cmp_u64);
  const uint64_t cut = sorted[m - 1];
  int64_t k = 0, ties = 0; /* equal 64-bit keys: practically never, but exact */
  for (int64_t i = 0; i < m; i++)
    ties += sorted[i] == cut;
  for (int64_t i = 0; i < ex->n; i++)
    if (key[i] < cut || (key[i] == cut && ties-- > 0))
      ex->basket[k] = ex->basket[i], ex->held[k++] = ex->held[i];
  ex->n = k;
  free(key), free(sorted);
  return AF_OK;
}

af_status af_basket_examples_build(const af_baskets *b, const char *const *texts, int max_query,
                                   int logq, int64_t max_examples, uint64_t seed,
                                   af_basket_examples *out, af_error *err) {
  memset(out, 0, sizeof *out);
  if (max_query < 1 || max_query > AF_BASKET_MAX_QUERY || max_examples < 0)
    return af_error_set(err, AF_ERR_ARG, "basket examples: max query %d must be in [1, %d]",
                        max_query, AF_BASKET_MAX_QUERY);
  const int64_t cap = b->offsets[b->n_baskets] + 1;
  *out = (af_basket_examples){.baskets = b, .texts = texts, .max_query = max_query,
                              .logq = logq, .seed = seed};
  out->basket = af_malloc((size_t)cap, sizeof *out->basket, err);
  out->held = out->basket ? af_malloc((size_t)cap, sizeof *out->held, err) : NULL;
  out->log_q = out->held ? af_malloc((size_t)b->n_items + 1, sizeof *out->log_q, err) : NULL;
  if (!out->log_q) {
    af_basket_examples_free(out);
    return AF_ERR_NOMEM;
  }
  fill_log_q(b, out->log_q);
  for (int64_t k = 0; k < b->n_baskets; k++) {
    int valid = 0;
    for (int64_t p = b->offsets[k]; p < b->offsets[k + 1] && valid < 2; p++)
      valid += has_text(texts, b->items[p]);
    for (int64_t p = b->offsets[k]; valid >= 2 && p < b->offsets[k + 1]; p++)
      if (has_text(texts, b->items[p]))
        out->basket[out->n] = k, out->held[out->n++] = b->items[p];
  }
  af_status st = AF_OK;
  if (max_examples > 0 && out->n > max_examples)
    st = sample(out, max_examples, err);
  if (st == AF_OK && out->n < 1)
    st = af_error_set(err, AF_ERR_ARG, "no basket examples: no basket has two items with a text");
  if (st != AF_OK)
    af_basket_examples_free(out);
  return st;
}

uint64_t af_basket_examples_fingerprint(const af_basket_examples *ex) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const uint64_t head[4] = {(uint64_t)ex->n, (uint64_t)ex->max_query, (uint64_t)ex->logq,
                            ex->seed};
  for (int64_t i = -4; i < ex->n; i++) {
    uint64_t v = i < 0 ? head[i + 4] : ((uint64_t)ex->basket[i] << 32) ^ (uint32_t)ex->held[i];
    for (int k = 0; k < 8; k++) {
      h ^= (v >> (8 * k)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

/* The j-th (0-based) item of basket k with a text other than `held`. */
static int32_t candidate(const af_basket_examples *ex, int64_t k, int32_t held, int j) {
  const af_baskets *b = ex->baskets;
  for (int64_t p = b->offsets[k]; p < b->offsets[k + 1]; p++)
    if (b->items[p] != held && has_text(ex->texts, b->items[p]) && j-- == 0)
      return b->items[p];
  return -1;
}

static int cmp_i32(const void *a, const void *b) {
  const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

int af_basket_query(const af_basket_examples *ex, int64_t e, int32_t *q) {
  const af_baskets *b = ex->baskets;
  const int64_t k = ex->basket[e];
  const int32_t held = ex->held[e];
  int n = 0; /* candidates */
  for (int64_t p = b->offsets[k]; p < b->offsets[k + 1]; p++)
    n += b->items[p] != held && has_text(ex->texts, b->items[p]);
  const int m = n < ex->max_query ? n : ex->max_query;
  int32_t sel[AF_BASKET_MAX_QUERY]; /* Floyd's sample of m distinct candidate positions */
  for (int j = n - m, got = 0; j < n; j++) {
    int t = (int)af_pairs_rand_below(ex->seed, AF_BASKET_STREAM_QUERY + (uint64_t)e,
                                     (uint64_t)j, (uint64_t)j + 1);
    for (int x = 0; x < got; x++)
      t = sel[x] == t ? j : t;
    sel[got++] = t;
  }
  for (int x = 0; x < m; x++)
    q[x] = candidate(ex, k, held, sel[x]);
  qsort(q, (size_t)m, sizeof *q, cmp_i32);
  return m;
}

/* One micro-batch: the distinct items and, per example, its rows. */
typedef struct {
  int B, nu, cap;
  int32_t *items; /* (cap) distinct items: one sequence each */
  int *qn;        /* (B) query sizes */
  int *qrow;      /* (B, max_query) rows of the query items */
  int *prow;      /* (B) row of the positive */
} mb_rows;

static int row_of(mb_rows *r, int32_t item) {
  for (int u = 0; u < r->nu; u++)
    if (r->items[u] == item)
      return u;
  r->items[r->nu] = item;
  return r->nu++;
}

static void collect_rows(const af_basket_examples *ex, const int64_t *idx, mb_rows *r) {
  int32_t q[AF_BASKET_MAX_QUERY];
  r->nu = 0;
  for (int i = 0; i < r->B; i++) {
    r->qn[i] = af_basket_query(ex, idx[i], q);
    for (int k = 0; k < r->qn[i]; k++)
      r->qrow[i * ex->max_query + k] = row_of(r, q[k]);
    r->prow[i] = row_of(r, ex->held[idx[i]]);
  }
}

/* The packed batch of the distinct items' texts: ids (nu max_len), cu (nu + 1). */
static af_status tokenize_rows(const af_tokenizer *tok, const af_basket_examples *ex,
                               const mb_rows *r, int32_t *ids, int32_t *cu, af_error *err) {
  const int max_len = af_tokenizer_options_of(tok)->max_len;
  cu[0] = 0;
  for (int u = 0; u < r->nu; u++) {
    const char *text = ex->texts[r->items[u]];
    int n = 0;
    af_status st = af_tokenizer_encode(tok, text, strlen(text), ids + cu[u], max_len, &n, err);
    if (st != AF_OK)
      return af_error_prefix(err, "basket item %lld: ", (long long)r->items[u]);
    cu[u + 1] = cu[u] + n;
  }
  return AF_OK;
}

/* 1 when item is in basket k (items ascending). */
static int in_basket(const af_baskets *b, int64_t k, int32_t item) {
  const int64_t i = af_lower_bound_i32(b->items, b->offsets[k], b->offsets[k + 1], item);
  return i < b->offsets[k + 1] && b->items[i] == item;
}

/* Loss and d loss / d out (nu, C) from the encoder outputs out (nu, C). */
static af_status loss_and_grad(const af_basket_examples *ex, const int64_t *idx, const mb_rows *r,
                               const float *out, int C, const af_train_config *cfg, float *loss,
                               float *dout, af_error *err) {
  const int B = r->B, nu = r->nu, mq = ex->max_query;
  double *E = af_malloc((size_t)nu * C, sizeof *E, err);         /* (nu, C) unit rows */
  double *nrm = af_malloc((size_t)nu, sizeof *nrm, err);         /* (nu) */
  double *U = af_calloc((size_t)B * C, sizeof *U, err);          /* (B, C) query means */
  double *P = af_malloc((size_t)B * C, sizeof *P, err);          /* (B, C) positives */
  double *dU = af_malloc((size_t)B * C, sizeof *dU, err);        /* (B, C) */
  double *dP = af_malloc((size_t)B * C, sizeof *dP, err);        /* (B, C) */
  double *dE = af_calloc((size_t)nu * C, sizeof *dE, err);       /* (nu, C) d / d unit rows */
  double *lq = af_malloc((size_t)B, sizeof *lq, err);            /* (B) */
  unsigned char *mask = af_calloc((size_t)B * B, 1, err);        /* (B, B) */
  af_status st = E && nrm && U && P && dU && dP && dE && lq && mask ? AF_OK : AF_ERR_NOMEM;
  for (int u = 0; st == AF_OK && u < nu; u++) {
    double ss = 0;
    for (int c = 0; c < C; c++)
      ss += (double)out[(size_t)u * C + c] * out[(size_t)u * C + c];
    nrm[u] = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
    for (int c = 0; c < C; c++)
      E[(size_t)u * C + c] = out[(size_t)u * C + c] / nrm[u];
  }
  for (int i = 0; st == AF_OK && i < B; i++) {
    for (int k = 0; k < r->qn[i]; k++)
      for (int c = 0; c < C; c++)
        U[(size_t)i * C + c] += E[(size_t)r->qrow[i * mq + k] * C + c] / r->qn[i];
    for (int c = 0; c < C; c++)
      P[(size_t)i * C + c] = out[(size_t)r->prow[i] * C + c];
    lq[i] = ex->log_q[ex->held[idx[i]]];
    for (int j = 0; j < B; j++)
      mask[(size_t)i * B + j] = j != i && in_basket(ex->baskets, ex->basket[idx[i]],
                                                    ex->held[idx[j]]);
  }
  double l = 0;
  if (st == AF_OK)
    st = af_basket_loss(U, P, ex->logq ? lq : NULL, mask, B, C, cfg->scale, cfg->symmetric, &l,
                        dU, dP, err);
  *loss = (float)l;
  for (int i = 0; st == AF_OK && i < B; i++) /* mean of unit rows: d unit row = dU / n */
    for (int k = 0; k < r->qn[i]; k++)
      for (int c = 0; c < C; c++)
        dE[(size_t)r->qrow[i * mq + k] * C + c] += dU[(size_t)i * C + c] / r->qn[i];
  for (int u = 0; st == AF_OK && u < nu; u++) { /* back through the unit rows */
    double edE = 0;
    for (int c = 0; nrm[u] > 1e-12 && c < C; c++)
      edE += E[(size_t)u * C + c] * dE[(size_t)u * C + c];
    for (int c = 0; c < C; c++)
      dE[(size_t)u * C + c] = (dE[(size_t)u * C + c] - E[(size_t)u * C + c] * edE) / nrm[u];
  }
  for (int i = 0; st == AF_OK && i < B; i++)
    for (int c = 0; c < C; c++)
      dE[(size_t)r->prow[i] * C + c] += dP[(size_t)i * C + c];
  for (size_t k = 0; st == AF_OK && k < (size_t)nu * C; k++)
    dout[k] = (float)dE[k];
  free(E), free(nrm), free(U), free(P), free(dU), free(dP), free(dE), free(lq), free(mask);
  return st;
}

af_status af_trainer_accumulate_basket(af_trainer *t, const af_tokenizer *tok,
                                       const af_basket_examples *ex, const int64_t *idx, int B,
                                       uint64_t micro, float *loss, int64_t *tokens,
                                       af_error *err) {
  if (B < 1)
    return af_error_set(err, AF_ERR_ARG, "a basket batch needs at least one example");
  const int C = af_trainer_model(t)->cfg.hidden_size;
  const int max_len = af_tokenizer_options_of(tok)->max_len;
  const int cap = B * (ex->max_query + 1);
  mb_rows r = {.B = B, .cap = cap};
  r.items = af_malloc((size_t)cap, sizeof *r.items, err);
  r.qn = af_malloc((size_t)B, sizeof *r.qn, err);
  r.qrow = af_malloc((size_t)B * ex->max_query, sizeof *r.qrow, err);
  r.prow = af_malloc((size_t)B, sizeof *r.prow, err);
  int32_t *ids = af_malloc((size_t)cap * max_len, sizeof *ids, err); /* (T) */
  int32_t *cu = af_malloc((size_t)cap + 1, sizeof *cu, err);         /* (nu + 1) */
  float *out = af_malloc((size_t)cap * C, sizeof *out, err);         /* (nu, C) */
  float *dout = af_malloc((size_t)cap * C, sizeof *dout, err);       /* (nu, C) */
  af_status st = r.items && r.qn && r.qrow && r.prow && ids && cu && out && dout ? AF_OK
                                                                                  : AF_ERR_NOMEM;
  if (st == AF_OK) {
    collect_rows(ex, idx, &r);
    st = tokenize_rows(tok, ex, &r, ids, cu, err);
  }
  if (st == AF_OK) {
    af_batch batch = {r.nu, cu[r.nu], ids, cu};
    *tokens = cu[r.nu];
    st = af_trainer_forward(t, &batch, micro, out, err);
  }
  if (st == AF_OK)
    st = loss_and_grad(ex, idx, &r, out, C, af_trainer_config(t), loss, dout, err);
  if (st == AF_OK)
    st = af_trainer_backward(t, dout, err);
  free(r.items), free(r.qn), free(r.qrow), free(r.prow), free(ids), free(cu), free(out),
      free(dout);
  return st;
}
