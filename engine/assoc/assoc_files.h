/* The association output files, one writer each, used by both the CLI
 * commands (rules, cooccur, itemcf) and the run stages (docs/data-formats.md):
 *
 *   rules.csv    antecedent,consequent,support,confidence,lift,leverage,conviction,count
 *                [,antecedent_ids,consequent_ids when the items have names]
 *   rules.jsonl  {"antecedent": [...], "consequent": [...], ["antecedent_ids", "consequent_ids",]
 *                 "support", "confidence", "lift", "leverage", "conviction", "count"}
 *   cooccur.csv  item_a,item_b,count,support,confidence_ab,confidence_ba,lift,leverage,
 *                conviction,jaccard,cosine[,name_a,name_b when the items have names]
 *   itemcf.csv   item,rank,neighbor,score,count[,item_name,neighbor_name when named]
 *
 * A side of a rule joins its names with " | " and its ids with " "; numbers are
 * "%.10g" (af_format_g10), infinite conviction "inf" in CSV and null in JSONL.
 * Every file is written to a temporary and renamed (base/atomic_file.h). */
#ifndef AF_ASSOC_FILES_H
#define AF_ASSOC_FILES_H

#include <stdint.h>

#include "assoc/cooccur.h"
#include "assoc/rules.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How items are shown: ids (n_items) always; names (n_items) or NULL when
 * there is no catalog (then the name columns are left out and the display
 * name of an item is its id). */
typedef struct {
  const char *const *ids;
  const char *const *names;
} af_item_labels;

/* rules.csv (jsonl = 0) or rules.jsonl (jsonl = 1). */
af_status af_rules_write(const char *path, int jsonl, const af_itemsets *fi, const af_rules *rs,
                         const af_item_labels *lab, af_error *err);

/* One row per pair with count >= min_count, in af_cooccur_next's order. */
af_status af_cooccur_write_csv(const char *path, const af_cooccur *co, int64_t min_count,
                               const af_item_labels *lab, af_error *err);

/* nbr, score: (n_items, k) from af_itemcf_topk; rows end at the first nbr < 0. */
af_status af_itemcf_write_csv(const char *path, const af_cooccur *co, int k, const int32_t *nbr,
                              const double *score, const af_item_labels *lab, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
