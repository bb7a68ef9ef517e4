/* The optional fine-tune stage of `affinity run` (--fine-tune-steps N):
 * contrastive fine-tuning of the encoder on co-purchase pairs through
 * include/affinity.h and include/affinity.h, saved as DIR/finetuned.h5, which the
 * embed stage then uses. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "affinity.h"
#include "io/run_files.h"
#include "nn/model.h"
#include "pipeline/run_stages.h"


#define FINETUNE_MAX_LEN 32 /* tokens per title while training: product titles are short */
#define FINETUNE_BATCH 32

/* Pairs bought together in >= min-count baskets with lift >= 1 (seed 42),
 * 5% (at most 1,000) held out; batch 32, lr 2e-5, 10% warm-up, dropout 0.1:
 * `affinity train`'s defaults. The loop's checkpoints go to DIR/finetune/. */
af_status af_stage_finetune(af_run_data *d, char *const *out, af_error *err) {
  const af_run_options *o = d->o;
  char dir[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "finetune", dir, err));
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
  af_model m;
  AF_TRY(af_model_load(o->model, &m, err));
  af_pairs_options po;
  af_pairs_default_options(&po);
  po.min_count = o->itemcf_min_count;
  po.seed = 42;
  af_pair_set tr = {0}, va = {0};
  af_tokenizer *tok = NULL;
  af_trainer *t = NULL;
  af_device cpu = af_device_cpu(o->threads);
  af_status st = af_pairs_from_baskets(&d->baskets, &d->catalog, &po, &tr, &va, err);
  if (st == AF_OK && tr.n < FINETUNE_BATCH)
    st = af_error_set(err, AF_ERR_ARG,
                      "--fine-tune-steps: only %lld co-purchase training pairs (need %d)",
                      (long long)tr.n, FINETUNE_BATCH);
  if (st == AF_OK)
    st = af_model_tokenizer(&m, FINETUNE_MAX_LEN, &tok, err);
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.batch = FINETUNE_BATCH;
  cfg.total_steps = o->fine_tune_steps;
  cfg.warmup = o->fine_tune_steps / 10;
  /* Scale 5, not sentence-transformers' 20: on co-purchase pairs, which MiniLM
   * scores like random pairs, scale 20 first collapses every similarity
   * (PyTorch does the same); docs/evaluation.md "Fine-tuning". */
  cfg.scale = 5.0f;
  if (st == AF_OK)
    st = af_trainer_create(&m, &cpu, &cfg, &t, err);
  af_train_meta meta;
  memset(&meta, 0, sizeof meta);
  meta.n_train = tr.n;
  meta.n_val = va.n;
  meta.data_fingerprint = af_pair_set_fingerprint(&tr);
  meta.max_len = FINETUNE_MAX_LEN;
  af_train_loop_options lo;
  memset(&lo, 0, sizeof lo);
  lo.train = &tr;
  lo.val = &va;
  lo.max_len = FINETUNE_MAX_LEN;
  lo.keep = 1;
  lo.out_dir = dir;
  if (st == AF_OK)
    st = af_train_run(t, tok, &lo, &meta, err);
  if (st == AF_OK)
    st = af_model_save(out[0], &m, err);
  af_trainer_free(t);
  af_tokenizer_free(tok);
  af_pair_set_free(&tr);
  af_pair_set_free(&va);
  af_model_free(&m);
  return st;
}
