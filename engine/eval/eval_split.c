/* The evaluation split and the ranking metrics (see eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/philox.h"

const int af_eval_ks[AF_EVAL_NK] = {10, 20};

enum { STREAM_TEST = 1, STREAM_COLD = 2, STREAM_HIDDEN = 3 };

void af_eval_split_default_options(af_eval_split_options *o) {
  o->seed = 42;
  o->test_fraction = 0.2;
  o->cold_fraction = 0.1;
}

static uint64_t draw64(uint64_t seed, uint64_t stream, uint64_t i) {
  uint32_t w[4];
  af_philox_block(seed, stream, i, w);
  return ((uint64_t)w[0] << 32) | w[1];
}

typedef struct {
  uint64_t key;
  int64_t idx;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Marks exactly round(frac * n_cand) of the candidates (cand (n_cand)): those
 * with the smallest seeded keys. */
static af_status seeded_pick(const int64_t *cand, int64_t n_cand, double frac, uint64_t seed,
                             uint64_t stream, unsigned char *mark, int64_t *n_marked,
                             af_error *err) {
  int64_t want = (int64_t)llround(frac * (double)n_cand);
  if (want > n_cand)
    want = n_cand;
  keyed *k = af_malloc((size_t)n_cand + 1, sizeof *k, err);
  if (!k)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < n_cand; i++) {
    k[i].key = draw64(seed, stream, (uint64_t)cand[i]);
    k[i].idx = cand[i];
  }
  qsort(k, (size_t)n_cand, sizeof *k, keyed_cmp);
  for (int64_t i = 0; i < want; i++)
    mark[k[i].idx] = 1;
  free(k);
  *n_marked = want;
  return AF_OK;
}

void af_eval_split_free(af_eval_split *s) {
  af_baskets_free(&s->train);
  free(s->cold);
  free(s->q_off);
  free(s->q_items);
  free(s->hidden);
  free(s->q_basket);
  free(s->group);
  memset(s, 0, sizeof *s);
}

/* Queries from the baskets marked in is_test (NULL: every basket of b). */
static af_status make_queries(const af_baskets *b, const unsigned char *is_test, uint64_t seed,
                              af_eval_split *s, af_error *err) {
  int64_t nq = 0, nitems = 0;
  for (int64_t k = 0; k < b->n_baskets; k++) {
    if (is_test && !is_test[k])
      continue;
    int64_t len = b->offsets[k + 1] - b->offsets[k];
    if (len >= 2) {
      nq++;
      nitems += len - 1;
    }
  }
  s->q_off = af_malloc((size_t)nq + 1, sizeof *s->q_off, err);
  s->q_items = af_malloc((size_t)nitems + 1, sizeof *s->q_items, err);
  s->hidden = af_malloc((size_t)nq + 1, sizeof *s->hidden, err);
  s->q_basket = af_malloc((size_t)nq + 1, sizeof *s->q_basket, err);
  s->group = af_malloc((size_t)nq + 1, 1, err);
  if (!s->q_off || !s->q_items || !s->hidden || !s->q_basket || !s->group)
    return AF_ERR_NOMEM;
  s->q_off[0] = 0;
  int64_t q = 0, pos = 0;
  const int64_t *count = NULL;
  int64_t *item_count = af_calloc((size_t)s->N + 1, sizeof *item_count, err);
  if (!item_count)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < s->train.offsets[s->train.n_baskets]; i++)
    item_count[s->train.items[i]]++;
  count = item_count;
  for (int64_t k = 0; k < b->n_baskets; k++) {
    if (is_test && !is_test[k])
      continue;
    int64_t o = b->offsets[k], len = b->offsets[k + 1] - o;
    s->n_test_baskets++;
    if (len < 2) {
      s->n_test_too_small++;
      continue;
    }
    int64_t h = (int64_t)(draw64(seed, STREAM_HIDDEN, (uint64_t)k) % (uint64_t)len);
    for (int64_t i = 0; i < len; i++)
      if (i != h)
        s->q_items[pos++] = b->items[o + i];
    int32_t hid = b->items[o + h];
    s->hidden[q] = hid;
    s->q_basket[q] = k;
    s->group[q] = count[hid] > 0 ? AF_EVAL_WARM : AF_EVAL_COLD;
    if (s->group[q] == AF_EVAL_COLD && s->cold && s->cold[hid])
      s->n_cold_seeded++;
    s->q_off[++q] = pos;
  }
  free(item_count);
  s->n_queries = q;
  return AF_OK;
}

af_status af_eval_split_random(const af_baskets *all, const af_eval_split_options *o,
                               af_eval_split *out, af_error *err) {
  memset(out, 0, sizeof *out);
  if (!(o->test_fraction > 0 && o->test_fraction < 1))
    return af_error_set(err, AF_ERR_ARG, "test fraction must be in (0, 1), got %g",
                        o->test_fraction);
  if (!(o->cold_fraction >= 0 && o->cold_fraction < 1))
    return af_error_set(err, AF_ERR_ARG, "cold fraction must be in [0, 1), got %g",
                        o->cold_fraction);
  const int64_t nb = all->n_baskets;
  const int32_t N = all->n_items;
  out->N = N;
  af_status st = AF_OK;
  unsigned char *is_test = af_calloc((size_t)nb + 1, 1, err);
  int64_t *cand = af_malloc((size_t)(nb > N ? nb : N) + 1, sizeof *cand, err);
  unsigned char *sold = af_calloc((size_t)N + 1, 1, err);
  out->cold = af_calloc((size_t)N + 1, 1, err);
  int64_t *toff = af_malloc((size_t)nb + 1, sizeof *toff, err);
  int32_t *titems = af_malloc((size_t)all->offsets[nb] + 1, sizeof *titems, err);
  if (!is_test || !cand || !sold || !out->cold || !toff || !titems) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  int64_t n_test;
  for (int64_t k = 0; k < nb; k++)
    cand[k] = k;
  if ((st = seeded_pick(cand, nb, o->test_fraction, o->seed, STREAM_TEST, is_test, &n_test,
                        err)) != AF_OK)
    goto done;
  for (int64_t i = 0; i < all->offsets[nb]; i++)
    sold[all->items[i]] = 1;
  int64_t n_sold = 0;
  for (int32_t i = 0; i < N; i++)
    if (sold[i])
      cand[n_sold++] = i;
  if ((st = seeded_pick(cand, n_sold, o->cold_fraction, o->seed, STREAM_COLD, out->cold,
                        &out->n_cold_products, err)) != AF_OK)
    goto done;
  /* training baskets: the others, cold products removed */
  int64_t ntb = 0, pos = 0;
  toff[0] = 0;
  for (int64_t k = 0; k < nb; k++) {
    if (is_test[k])
      continue;
    for (int64_t i = all->offsets[k]; i < all->offsets[k + 1]; i++)
      if (!out->cold[all->items[i]])
        titems[pos++] = all->items[i];
    toff[++ntb] = pos;
  }
  if ((st = af_baskets_from_arrays(ntb, N, toff, titems, &out->train, err)) != AF_OK)
    goto done;
  st = make_queries(all, is_test, o->seed, out, err);
done:
  free(is_test), free(cand), free(sold), free(toff), free(titems);
  if (st != AF_OK)
    af_eval_split_free(out);
  return st;
}

af_status af_eval_split_given(const af_baskets *train, const af_baskets *test, uint64_t seed,
                              af_eval_split *out, af_error *err) {
  memset(out, 0, sizeof *out);
  if (train->n_items != test->n_items)
    return af_error_set(err, AF_ERR_ARG, "training and test baskets index %d and %d items",
                        train->n_items, test->n_items);
  out->N = train->n_items;
  af_status st = af_baskets_from_arrays(train->n_baskets, train->n_items, train->offsets,
                                        train->items, &out->train, err);
  if (st == AF_OK)
    st = make_queries(test, NULL, seed, out, err);
  if (st != AF_OK)
    af_eval_split_free(out);
  return st;
}

/* ---- metrics ------------------------------------------------------------------ */

static int beats(const float *s, const float *tie, int64_t b, int64_t h) {
  if (s[b] != s[h])
    return s[b] > s[h];
  if (tie && tie[b] != tie[h])
    return tie[b] > tie[h];
  return b < h;
}

int64_t af_eval_rank(const float *scores, const float *tie, int64_t N, int32_t hidden,
                     const int32_t *query, int n_query) {
  const float sh = scores[hidden];
  int64_t above = 0;
  if (!tie) {
    for (int64_t b = 0; b < hidden; b++)
      above += scores[b] >= sh;
    for (int64_t b = hidden + 1; b < N; b++)
      above += scores[b] > sh;
  } else {
    for (int64_t b = 0; b < N; b++)
      if (scores[b] >= sh && b != hidden)
        above += scores[b] > sh || beats(scores, tie, b, hidden);
  }
  for (int i = 0; i < n_query; i++) {
    int32_t q = query[i];
    if (q != hidden && beats(scores, tie, q, hidden))
      above--;
  }
  return above + 1;
}

void af_eval_metrics_add(af_eval_metrics *m, int64_t rank) {
  m->n++;
  for (int i = 0; i < AF_EVAL_NK; i++)
    if (rank <= af_eval_ks[i]) {
      m->recall[i] += 1.0;
      m->ndcg[i] += 1.0 / log2((double)rank + 1.0);
    }
  m->mrr += 1.0 / (double)rank;
}

void af_eval_metrics_finish(af_eval_metrics *m) {
  if (m->n == 0)
    return;
  for (int i = 0; i < AF_EVAL_NK; i++) {
    m->recall[i] /= (double)m->n;
    m->ndcg[i] /= (double)m->n;
  }
  m->mrr /= (double)m->n;
}
