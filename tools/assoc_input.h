/* Shared by `affinity associate` and `affinity eval`: the catalog with its
 * text and category columns, the baskets indexed by catalog row, and product
 * vectors from an embeddings file or from a model run in memory. */
#ifndef AF_ASSOC_INPUT_H
#define AF_ASSOC_INPUT_H

#include "basket_input.h"
#include "cli.h"

#define AF_ASSOC_MAX_LEVELS 4

#define AF_ASSOC_INPUT_FLAGS                                                                     \
  AF_BASKET_INPUT_FLAGS,                                                                         \
      {"category-column", "NAME",                                                                \
       "catalog category column; repeat from fine to coarse (aisle, then department)"},          \
      {"device", "cpu|cuda", "where to run --model (default cpu; cuda: bf16, like embed)"},       \
      {"threads", "N", "CPU threads (default: all cores)"}

typedef struct {
  af_basket_input in; /* catalog (+ first category level) and baskets */
  int n_levels;
  const char *const *levels[AF_ASSOC_MAX_LEVELS]; /* (N) each */
  af_catalog extra[AF_ASSOC_MAX_LEVELS];          /* catalogs loaded for levels >= 1 */
} af_assoc_input;

/* Loads --catalog (required), its --text-column(s) and --category-column(s),
 * and --baskets against it. */
af_status af_assoc_input_load(const af_args *a, af_assoc_input *ai, af_error *err);
void af_assoc_input_free(af_assoc_input *ai);

/* Product vectors in catalog order, L2-normalised: from an embeddings file
 * (emb_path) or by running a model checkpoint (model_path) over the catalog
 * texts. out (N, d) malloc'd. */
af_status af_assoc_vectors(const af_args *a, const af_catalog *c, const char *emb_path,
                           const char *model_path, float **out, int *d, af_error *err);

#endif
