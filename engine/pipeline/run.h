/* The whole pipeline in one call: catalog (+ baskets) -> a run folder
 * (docs/report.md).
 *
 * Stages, each writing its outputs into the run folder DIR:
 *   load      products.csv (the cleaned catalog: product_id,product,category,baskets)
 *   embed     embeddings.h5                       (engine/embed.h)
 *   score     neighbors.h5                        (engine/nbrfile.h)
 *   rules     rules.csv, rules.jsonl              (engine/rules.h)      baskets only
 *   cooccur   cooccur.csv                         (engine/cooccur.h)    baskets only
 *   itemcf    itemcf.csv                          (engine/itemcf.h)     baskets only
 *   finetune  finetuned.h5 (with fine_tune_steps)  (engine/train.h)      baskets only
 *   associate associations.csv                    (engine/fuse.h)
 *   eval      eval.json                           (engine/eval.h)       baskets only
 *   report    report.html, network.png, heatmap.png (engine/report.h)
 * and run.json (metadata, parameters, per-stage timings).
 *
 * Re-running skips a stage when its key is unchanged and its outputs exist.
 * The key of a stage is a 64-bit FNV-1a hash over: the binary version string,
 * the stage name, the stage's parameters (as text) and the bytes of every
 * input file (the user's files and the outputs of earlier stages). Keys are
 * kept in DIR/manifest.json. A stage that reruns changes its outputs, so the
 * keys of the stages after it change and they rerun too. */
#ifndef AF_RUN_H
#define AF_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "io/baskets.h"
#include "base/error.h"
#include "ops.h"
#include "io/run_files.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*af_run_log_fn)(void *ctx, const char *line);

typedef struct {
  const char *out_dir;
  /* catalog */
  const char *catalog;
  const char *id_column;              /* NULL: product_id */
  const char *const *text_columns;    /* NULL: {"product_name"} */
  int n_text_columns;
  const char *category_column;        /* NULL: "department" when the catalog has it, else none;
                                         "" : none */
  /* baskets (NULL: text-only run; basket stages are skipped) */
  const char *baskets;
  af_baskets_options baskets_opt;
  /* model */
  const char *model;
  int fine_tune_steps; /* 0: none */
  const af_device *dev;
  int threads; /* CPU threads for scoring (0: all) */
  /* parameters */
  int max_len;             /* embed: tokens per title, 0 = the model's */
  int score_k;             /* neighbours per product (default 20) */
  double min_support;      /* rules */
  double min_confidence;
  int max_itemset_len;
  int64_t cooccur_min_count; /* pairs kept in cooccur.csv */
  int itemcf_k;
  int64_t itemcf_min_count;
  double substitute_min_cosine; /* fusion: substitutes need this title cosine */
  int assoc_k;                  /* complements and substitutes kept per product */
  int report_top;               /* products in the report's network */
  int force;                    /* rerun every stage */
  const char *binary_version;   /* part of every stage key */
  af_run_log_fn log;            /* may be NULL */
  void *log_ctx;
} af_run_options;

void af_run_default_options(af_run_options *o);

/* Runs the pipeline. On failure the stages already done keep their outputs
 * (and manifest entries), so the next run resumes after them. */
af_status af_run_pipeline(const af_run_options *o, af_error *err);

/* CSV fields and JSON strings are written with engine/base/out_format.h. */
#include "base/out_format.h"

#ifdef __cplusplus
}
#endif
#endif
