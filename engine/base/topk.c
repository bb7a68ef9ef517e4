/* Running top-k selection (see topk.h): a binary min-heap under the order
 * "worse first", so the root is the entry the next better candidate evicts. */
#include "base/topk.h"

/* 1 when (sa, ia) ranks below (sb, ib): lower score, or equal score and higher index. */
static inline int worse(float sa, int64_t ia, float sb, int64_t ib) {
  return sa < sb || (sa == sb && ia > ib);
}

static void sift_down(float *s, int64_t *ix, int n, int i) {
  float sv = s[i];
  int64_t iv = ix[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && worse(s[c + 1], ix[c + 1], s[c], ix[c]))
      c++;
    if (!worse(s[c], ix[c], sv, iv))
      break;
    s[i] = s[c];
    ix[i] = ix[c];
    i = c;
  }
  s[i] = sv;
  ix[i] = iv;
}

void af_topk_push(af_topk *t, float score, int64_t idx) {
  if (!(score >= t->min_score) || t->k == 0)
    return;
  if (t->size < t->k) {
    /* sift up */
    int i = t->size++;
    while (i > 0) {
      int p = (i - 1) / 2;
      if (!worse(score, idx, t->score[p], t->idx[p]))
        break;
      t->score[i] = t->score[p];
      t->idx[i] = t->idx[p];
      i = p;
    }
    t->score[i] = score;
    t->idx[i] = idx;
    return;
  }
  if (!worse(t->score[0], t->idx[0], score, idx))
    return;
  t->score[0] = score;
  t->idx[0] = idx;
  sift_down(t->score, t->idx, t->size, 0);
}

void af_topk_extract(af_topk *t, int64_t *out_idx, float *out_score, int k_out) {
  /* Heap sort: repeatedly move the worst to the end of the heap region. */
  int n = t->size;
  for (int end = n - 1; end > 0; end--) {
    float s = t->score[0];
    int64_t ix = t->idx[0];
    t->score[0] = t->score[end];
    t->idx[0] = t->idx[end];
    t->score[end] = s;
    t->idx[end] = ix;
    sift_down(t->score, t->idx, end, 0);
  }
  /* Now best first. */
  for (int i = 0; i < k_out; i++) {
    if (i < n) {
      out_idx[i] = t->idx[i];
      out_score[i] = t->score[i];
    } else {
      out_idx[i] = -1;
      out_score[i] = -INFINITY;
    }
  }
  t->size = 0;
}

int af_scored_cmp(const void *x, const void *y) {
  const af_scored *a = x, *b = y;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  return a->i < b->i ? -1 : a->i > b->i;
}
