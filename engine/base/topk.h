/* Running top-k selection: a bounded heap whose root is the worst entry kept,
 * guarded by a threshold so that most candidates cost one comparison.
 *
 * Order (a total order, so the result never depends on the order in which
 * candidates arrive): a is better than b when a.score > b.score, or the
 * scores are equal and a.idx < b.idx (ties go to the lower index).
 * Candidates below min_score are never kept. */
#ifndef AF_TOPK_H
#define AF_TOPK_H

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  float *score;  /* (k) heap storage, caller-owned */
  int64_t *idx;  /* (k) */
  int k;
  int size;
  float min_score;
} af_topk;

/* Starts an empty selection over caller storage score (k), idx (k). */
static inline void af_topk_init(af_topk *t, float *score, int64_t *idx, int k, float min_score) {
  t->score = score;
  t->idx = idx;
  t->k = k;
  t->size = 0;
  t->min_score = min_score;
}

/* Candidates with score < threshold cannot enter; a candidate equal to the
 * threshold may (it can win a tie by index), so filter with >=. */
static inline float af_topk_threshold(const af_topk *t) {
  return t->size < t->k ? t->min_score : t->score[0];
}

/* Offers (score, idx); keeps it if it is among the k best so far. */
void af_topk_push(af_topk *t, float score, int64_t idx);

/* Sorts the kept entries best first into out_idx (k_out), out_score (k_out);
 * slots past the kept count get index -1 and score -inf. Empties t. */
void af_topk_extract(af_topk *t, int64_t *out_idx, float *out_score, int k_out);

/* A scored row for a full sort (qsort with af_scored_cmp): highest score
 * first, ties to the lower index, so the order is deterministic. */
typedef struct {
  double score;
  int64_t i;
} af_scored;
int af_scored_cmp(const void *x, const void *y);

#ifdef __cplusplus
}
#endif
#endif
