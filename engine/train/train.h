/* Fine-tuning the encoder on the CPU: the training forward (which keeps what
 * the backward needs), the backward through the whole encoder + pooling + L2
 * normalisation + multiple-negatives ranking loss into a gradient buffer laid
 * out exactly like the parameters (af_model.data, same table and offsets),
 * AdamW steps, and checkpoints with the optimizer state that resume
 * bit-exactly. The math is in docs/training.md; the checkpoint groups in
 * docs/checkpoint-format.md ("Training state").
 *
 * One micro-batch is a packed batch of 2B sequences: the B anchors, then the
 * B positives of the same pairs (af_batch, cu_seqlens (2B + 1)). Its pooled,
 * normalised embeddings (2B, C) go through af_mnr_loss (in-batch negatives).
 *
 * Dropout follows Hugging Face's BertModel in train mode: hidden dropout
 * after the embeddings' LayerNorm, after the attention output dense and after
 * the FFN output dense (before each residual add), and attention-probability
 * dropout on the softmax (af_op_attention_dropout_forward, kernels/ops_backward.h). Masks come from Philox
 * (engine/philox.h) with key = seed and
 *   stream = micro * AF_TRAIN_DROPOUT_SITES(L) + site,
 * site 0 = embeddings, 1 + 3l = layer l attention probabilities, 2 + 3l =
 * layer l attention output, 3 + 3l = layer l FFN output, micro = step *
 * grad_accum + index of the micro-batch in the step. So a step's masks depend on (seed, step) only, which makes resumed
 * runs bit-exact. With dropout 0 the training forward performs exactly the
 * inference forward's operations (af_encoder_forward), so the embeddings are
 * bitwise equal. */
#ifndef AF_TRAIN_H
#define AF_TRAIN_H

#include <stdint.h>

#include "train/adamw.h"
#include "base/error.h"
#include "nn/model.h"
#include "ops.h"
#include "train/pairs.h"
#include "nn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_TRAIN_DROPOUT_SITES(L) (1 + 3 * (uint64_t)(L))

typedef struct {
  float dropout;        /* hidden dropout probability, 0 <= p < 1 (BERT: 0.1) */
  float attn_dropout;   /* attention-probability dropout, 0 <= p < 1 (BERT: 0.1) */
  float scale;          /* MNR scale (sentence-transformers: 20) */
  int symmetric;        /* symmetric MNR loss */
  uint64_t seed;        /* dropout masks, pair shuffling */
  double lr;            /* peak learning rate */
  int64_t warmup;       /* warm-up steps */
  int64_t total_steps;  /* schedule length (lr reaches 0 there) */
  double max_grad_norm; /* <= 0: no clipping */
  int grad_accum;       /* micro-batches per optimizer step (>= 1) */
  int batch;            /* pairs per micro-batch (B) */
  af_adamw_config adamw;
} af_train_config;

/* dropout 0.1 (hidden and attention), scale 20, plain loss, seed 42, lr 2e-5, warmup 0, total 1,
 * max_grad_norm 1, grad_accum 1, batch 32, torch's AdamW defaults. */
void af_train_default_config(af_train_config *cfg);

typedef struct af_trainer af_trainer;

/* Trains m in place (CPU backend only: AF_ERR_UNSUPPORTED otherwise). The
 * trainer keeps pointers to m and allocates gradients and AdamW moments
 * (3 x n_floats floats). */
af_status af_trainer_create(af_model *m, const af_device *dev, const af_train_config *cfg,
                            af_trainer **out, af_error *err);
void af_trainer_free(af_trainer *t);

const af_train_config *af_trainer_config(const af_trainer *t);
/* The model being trained. */
af_model *af_trainer_model(const af_trainer *t);
/* Optimizer steps done so far. */
int64_t af_trainer_steps_done(const af_trainer *t);
/* (n_floats) gradient buffer, parallel to m->data (same offsets). */
float *af_trainer_grad(af_trainer *t);
void af_trainer_zero_grad(af_trainer *t);
/* AdamW moments (n_floats each). */
float *af_trainer_moment1(af_trainer *t);
float *af_trainer_moment2(af_trainer *t);
/* Sets the step counter (resume); moments are filled through the pointers above. */
void af_trainer_set_steps_done(af_trainer *t, int64_t steps);
/* Changes the schedule's length (a resumed run extended with --steps); >= steps done. */
af_status af_trainer_set_total_steps(af_trainer *t, int64_t total, af_error *err);
/* 1 if the parameter is trained: every parameter but pooler.* (BertModel's
 * pooler gets no gradient under mean/CLS pooling, so torch's AdamW skips it). */
int af_trainer_param_trained(const char *hf_name);

/* The training forward of a packed batch with the dropout masks of micro-batch
 * `micro`: out (B, C) pooled (and normalised when the model says so)
 * embeddings. Keeps the activations for af_trainer_backward. */
af_status af_trainer_forward(af_trainer *t, const af_batch *batch, uint64_t micro, float *out,
                             af_error *err);
/* Backward of the last af_trainer_forward given d loss / d out (B, C):
 * accumulates into the gradient buffer. */
af_status af_trainer_backward(af_trainer *t, const float *dout, af_error *err);

/* Forward + loss + backward of one micro-batch of pairs (2B sequences: B
 * anchors, then their B positives); gradients accumulate. *loss: the mean MNR
 * loss of the micro-batch. */
af_status af_trainer_accumulate(af_trainer *t, const af_batch *pairs, uint64_t micro, float *loss,
                                af_error *err);

/* One optimizer step over the n_micro micro-batches accumulated since the
 * last step: gradient mean (1 / n_micro), global-norm clipping, linear
 * warm-up/decay schedule, AdamW on every trained parameter; then zeroes the
 * gradients. *lr, *grad_norm (may be NULL): the lr used and the norm of the
 * mean gradient before clipping. */
af_status af_trainer_step(af_trainer *t, int n_micro, double *lr, double *grad_norm,
                          af_error *err);

/* ---- checkpoints (engine/train_checkpoint.c) -------------------------------- */

/* What the loop stores beside the model and optimizer. */
typedef struct {
  int64_t epoch;            /* data cursor: epoch ... */
  int64_t position;         /* ... and the next pair of that epoch's order */
  int64_t n_train, n_val;   /* pair counts, checked on resume */
  uint64_t data_fingerprint; /* af_pair_set_fingerprint of the training pairs */
  int64_t tokens_seen;
  int64_t max_len;          /* tokens per text used for training */
} af_train_meta;

/* Writes model + /optim + /train atomically (tmp + rename). */
af_status af_train_checkpoint_save(const char *path, const af_trainer *t,
                                   const af_train_meta *meta, af_error *err);

/* Reads a training checkpoint: *m gets the model, *t a trainer with its
 * config, moments and step, *meta the loop state. Every dataset's shape, the
 * configuration's ranges and a checksum over parameters and moments are
 * verified: a truncated or corrupted file is an AF_ERR_FORMAT/AF_ERR_HDF5
 * error naming the file (and nothing is returned). */
af_status af_train_checkpoint_load(const char *path, const af_device *dev, af_model *m,
                                   af_trainer **t, af_train_meta *meta, af_error *err);

/* 1 when the file looks like a training checkpoint (has /optim and /train). */
int af_train_checkpoint_is(const char *path);

/* ---- the loop (engine/train_loop.c) ------------------------------------------ */


/* One record of the loop's progress, handed to the callback (the CLI prints
 * it) and appended to <out_dir>/log.jsonl as one JSON line. */
typedef struct {
  int is_eval;
  int64_t step, total_steps, epoch;
  double loss, lr, grad_norm, tokens_per_s, elapsed_s; /* training records */
  int64_t tokens;                                      /* tokens in this step */
  double recall_at_1, recall_at_10, mean_rank;         /* evaluation records */
  int64_t n_val;
  const char *json; /* the JSON line (no newline) */
} af_train_event;

typedef void (*af_train_event_fn)(void *ctx, const af_train_event *ev);

typedef struct {
  const af_pair_set *train; /* required, n >= batch */
  const af_pair_set *val;   /* may be NULL or empty: no evaluation */
  int max_len;          /* tokens per text incl. [CLS]/[SEP] */
  int64_t stop_after;   /* stop after this many steps in this call (0: at total_steps) */
  int64_t save_every;   /* checkpoint every N steps (0: only at the end) */
  int64_t keep;         /* step-*.h5 checkpoints kept (0: all) */
  int64_t eval_every;   /* validation Recall@10 every N steps (0: at start and end only) */
  const char *out_dir;  /* existing folder: step-XXXXXXX.h5, final.h5, log.jsonl */
  af_train_event_fn on_event;
  void *ctx;
} af_train_loop_options;

/* Runs optimizer steps until total_steps (or stop_after in this call).
 * meta carries the data cursor in and out (a fresh run: zeroed, with n_train,
 * n_val, data_fingerprint and max_len set). Writes
 * out_dir/step-<step 7 digits>.h5 every save_every steps and when it stops
 * (keeping the newest `keep`), out_dir/final.h5 when the schedule is done, and
 * appends to out_dir/log.jsonl. Evaluation ranks each validation anchor's
 * positive among all validation positives (cosine). */
af_status af_train_run(af_trainer *t, const af_tokenizer *tok,
                       const af_train_loop_options *opt, af_train_meta *meta, af_error *err);

/* Recall@1, Recall@10 and the mean rank (1-based) of each pair's positive
 * among all positives of the set, ranked by cosine similarity to its anchor
 * with the current parameters (inference forward, no dropout). */
af_status af_train_evaluate(af_model *m, const af_device *dev, const af_tokenizer *tok,
                            const af_pair_set *val, int max_len, double *recall_at_1,
                            double *recall_at_10, double *mean_rank, af_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AF_TRAIN_H */
