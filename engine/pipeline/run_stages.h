/* Internal to engine/run*.c: the data a run holds in memory and one function
 * per stage. Each stage writes its outputs (paths in `out`, in the order
 * run.c lists them) atomically. */
#ifndef AF_RUN_STAGES_H
#define AF_RUN_STAGES_H

#include <cJSON.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_RUN_MAX_RULES 10000

typedef struct {
  const af_run_options *o;
  const char *id_column;
  const char *const *text_columns;
  int n_text_columns;
  const char *category_column; /* NULL: none */
  af_catalog catalog;
  int have_catalog;
  af_baskets baskets; /* item index == catalog row */
  int have_baskets;
  af_baskets_report brep;
  int64_t *item_baskets; /* (catalog.n) baskets holding each product */
  af_cooccur co;         /* built on first use, every pair (min count 1) */
  int have_co;
  char model_name[256];
  const char *embed_model; /* the model embed uses: o->model or DIR/finetuned.h5 */
} af_run_data;

af_status af_run_data_load(af_run_data *d, af_error *err);
void af_run_data_free(af_run_data *d);

af_status af_stage_load(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_embed(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_score(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_rules(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_cooccur(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_itemcf(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_report(af_run_data *d, char *const *out, af_error *err);
/* Fusion and evaluation through include/affinity.h and include/affinity.h (run_fuse.c). */
af_status af_stage_fuse(af_run_data *d, char *const *out, af_error *err);
af_status af_stage_eval(af_run_data *d, char *const *out, af_error *err);
/* Fine-tuning through include/affinity.h (run_train.c). */
af_status af_stage_finetune(af_run_data *d, char *const *out, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
