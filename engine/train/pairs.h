/* Training pairs for contrastive fine-tuning: (anchor text, positive text).
 *
 * From baskets: every unordered pair of items (a, b) bought together in at
 * least min_count baskets whose lift (af_pair_stats_compute) is >= min_lift,
 * both with a non-empty text. The eligible pairs, enumerated in (a, b) order,
 * are shuffled with the seed; each pair's orientation (which item is the
 * anchor) is drawn from the seed too; the first n_val become the held-out
 * validation set, then at most max_pairs of the rest the training set.
 * From a CSV (header row, first two columns anchor, positive): same shuffle
 * and split.
 *
 * Every draw is Philox4x32-10 (engine/philox.h) with key = seed on a fixed
 * stream, so the sets and every epoch's order are functions of (data, options,
 * seed) alone. The epoch order is a Fisher-Yates shuffle on stream
 * AF_PAIRS_STREAM_EPOCH + epoch: a data cursor (epoch, position) is all a
 * checkpoint needs to continue the same sequence of batches. */
#ifndef AF_PAIRS_H
#define AF_PAIRS_H

#include <stdint.h>

#include "io/baskets.h"
#include "io/catalog.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_PAIRS_STREAM_SPLIT 0x5041495253000000ULL /* "PAIRS" */
#define AF_PAIRS_STREAM_EPOCH 0x4550434800000000ULL /* "EPCH" + epoch */

typedef struct af_pair_set {
  int64_t n;
  char **anchor;   /* (n) */
  char **positive; /* (n) */
  int32_t *item_a; /* (n) anchor item index (baskets), -1 for CSV pairs */
  int32_t *item_b; /* (n) positive item index, -1 for CSV pairs */
  int64_t *count;  /* (n) baskets holding both (0 for CSV pairs) */
  double *lift;    /* (n) (0 for CSV pairs) */
} af_pair_set;

typedef struct {
  int64_t min_count;   /* >= 1 (default 2) */
  double min_lift;     /* default 1.0 */
  int64_t max_pairs;   /* training pairs kept; 0 = all */
  double val_fraction; /* share of the eligible pairs held out (default 0.05) */
  int64_t max_val;     /* at most this many validation pairs (default 1000; 0 = none) */
  uint64_t seed;
} af_pairs_options;

void af_pairs_default_options(af_pairs_options *opt);

/* texts: catalog->texts when catalog != NULL (items are catalog rows), else
 * the baskets' item ids (e.g. Groceries item names). */
af_status af_pairs_from_baskets(const af_baskets *b, const af_catalog *catalog,
                                const af_pairs_options *opt, af_pair_set *train, af_pair_set *val,
                                af_error *err);

/* A CSV with a header; the first two columns are anchor and positive. Rows with
 * an empty field are errors naming the file and line. */
af_status af_pairs_from_csv(const char *path, const af_pairs_options *opt, af_pair_set *train,
                            af_pair_set *val, af_error *err);

void af_pair_set_free(af_pair_set *s);

/* FNV-1a 64 of the pair texts in order (checkpoints verify resumed data). */
uint64_t af_pair_set_fingerprint(const af_pair_set *s);

/* perm (n): the order of epoch `epoch`, a permutation of 0..n-1. */
void af_pairs_epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);

/* A uniform integer in [0, bound) from draw `i` of stream (seed, stream). */
uint64_t af_pairs_rand_below(uint64_t seed, uint64_t stream, uint64_t i, uint64_t bound);

#ifdef __cplusplus
}
#endif
#endif /* AF_PAIRS_H */
