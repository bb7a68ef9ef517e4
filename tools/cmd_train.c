/* affinity train: contrastive fine-tuning of the encoder on co-purchase pairs
 * (or a CSV of pairs) on the CPU; thin over engine/train.h and engine/pairs.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basket_input.h"
#include "cli.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"model", "M.h5", "encoder checkpoint to start from (required unless --resume)"},
    {"out", "DIR", "output folder: step-XXXXXXX.h5, final.h5, log.jsonl (required)"},
    AF_BASKET_INPUT_FLAGS,
    {"pairs", "FILE.csv", "train on a CSV of anchor,positive texts (with a header) instead of baskets"},
    {"min-count", "N", "pairs bought together in at least N baskets (default 2)"},
    {"min-lift", "X", "pairs with lift >= X (default 1.0)"},
    {"max-pairs", "N", "keep at most N training pairs, sampled with the seed (default all)"},
    {"val-fraction", "X", "share of the pairs held out for validation (default 0.05)"},
    {"max-val", "N", "at most N validation pairs (default 1000)"},
    {"steps", "N", "optimizer steps (the schedule's length)"},
    {"epochs", "E", "or: passes over the training pairs (default 1 when --steps is absent)"},
    {"stop-after", "N", "stop after N steps of this run and leave a checkpoint (resume later)"},
    {"batch", "B", "pairs per micro-batch; in-batch negatives (default 32)"},
    {"grad-accum", "N", "micro-batches per optimizer step (default 1)"},
    {"lr", "X", "peak learning rate (default 2e-5)"},
    {"warmup", "N", "linear warm-up steps (default 10% of the steps)"},
    {"weight-decay", "X", "AdamW decoupled weight decay (default 0.01)"},
    {"max-grad-norm", "X", "clip the global gradient norm (default 1; 0 = off)"},
    {"dropout", "P", "hidden dropout (default 0.1, as BERT)"},
    {"attention-dropout", "P", "dropout on the attention probabilities (default 0.1, as BERT)"},
    {"scale", "X", "MNR loss scale = 1 / temperature (default 20)"},
    {"symmetric", NULL, "symmetric MNR loss (anchor->positive and positive->anchor)"},
    {"max-len", "N", "tokens per text incl. [CLS]/[SEP] (default: the model's max_seq_length)"},
    {"seed", "S", "seed of pairs, order and dropout (default 42)"},
    {"save-every", "N", "checkpoint every N steps (default: only at the end)"},
    {"keep", "N", "keep the newest N step checkpoints (default 3; 0 = all)"},
    {"eval-every", "N", "validation Recall@10 every N steps (default: start and end)"},
    {"resume", "CKPT.h5", "continue a run from its checkpoint (same data flags)"},
    {"threads", "N", "CPU threads (default: all cores)"},
    {"precision", "fp32|bf16", "GEMM inputs, forward and backward: fp32 (default) or bf16 with "
                               "fp32 accumulation (AVX512_BF16 CPUs; weights, LayerNorm, "
                               "softmax, loss and AdamW stay fp32)"},
};
static const af_cmd_spec SPEC = {
    "train",
    "--model M.h5 --out DIR (--baskets F --catalog F ... | --pairs F.csv) [--steps N | --epochs E] "
    "[--batch B] [--lr X] [--resume CKPT.h5] ...",
    "Fine-tunes the encoder with the multiple-negatives ranking loss on pairs of products\n"
    "bought together (count >= --min-count, lift >= --min-lift; texts from the catalog), or\n"
    "on a CSV of anchor,positive texts. Logs loss, learning rate, gradient norm, tokens/s and\n"
    "validation Recall@10 to stderr and DIR/log.jsonl; writes DIR/step-XXXXXXX.h5 checkpoints\n"
    "(model + AdamW state + data cursor) and DIR/final.h5. --resume continues bit-exactly\n"
    "(same thread count).",
    FLAGS, sizeof FLAGS / sizeof FLAGS[0]};

typedef struct {
  af_progress prog;
  int tty;
} loop_ctx;

static void on_event(void *vctx, const af_train_event *ev) {
  loop_ctx *c = vctx;
  if (c->tty)
    fputs("\r\033[K", stderr);
  if (ev->is_eval)
    fprintf(stderr, "step %lld: validation Recall@1 %.4f  Recall@10 %.4f  mean rank %.1f (%lld pairs)\n",
            (long long)ev->step, ev->recall_at_1, ev->recall_at_10, ev->mean_rank,
            (long long)ev->n_val);
  else
    fprintf(stderr, "step %lld/%lld  epoch %lld  loss %.4f  lr %.3e  grad norm %.3f  %.0f tokens/s\n",
            (long long)ev->step, (long long)ev->total_steps, (long long)ev->epoch, ev->loss, ev->lr,
            ev->grad_norm, ev->tokens_per_s);
  if (!ev->is_eval)
    af_progress_update(&c->prog, ev->step);
}

static af_status make_dir(const char *dir, af_error *err) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
  struct stat s;
  if (stat(dir, &s) != 0 || !S_ISDIR(s.st_mode))
    return af_error_set(err, AF_ERR_IO, "%s: not a folder", dir);
  return AF_OK;
}

int af_cmd_train(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  int rc = 0;
  af_model *m = NULL;
  int have_model = 0, have_input = 0;
  af_trainer *t = NULL;
  af_tokenizer *tok = NULL;
  af_basket_input in;
  af_pair_set tr = {0}, va = {0};
  af_train_meta meta;
  memset(&meta, 0, sizeof meta);
  memset(&in, 0, sizeof in);

  const char *out = NULL, *model_path = af_arg_str(&a, "model"), *resume = af_arg_str(&a, "resume");
  const char *pairs_csv = af_arg_str(&a, "pairs");
  int64_t steps, stop_after, batch, accum, warmup, max_len, seed, save_every, keep, eval_every;
  int64_t threads, min_count, max_pairs, max_val;
  double epochs, lr, wd, max_norm, dropout, attn_dropout, scale, min_lift, val_fraction;
  af_status st = af_arg_required(&a, "out", &out, &err);
  if (st == AF_OK && !model_path && !resume)
    st = af_error_set(&err, AF_ERR_ARG, "missing required flag --model (or --resume)");
  if (st == AF_OK && !pairs_csv && !af_arg_str(&a, "baskets"))
    st = af_error_set(&err, AF_ERR_ARG, "give --baskets (with --catalog) or --pairs");
  if (st == AF_OK && af_arg_str(&a, "steps") && af_arg_str(&a, "epochs"))
    st = af_error_set(&err, AF_ERR_ARG, "give --steps or --epochs, not both");
  if (st == AF_OK)
    st = af_arg_i64(&a, "steps", 0, 1, INT64_C(1) << 40, &steps, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "epochs", 1.0, 1e-6, 1e6, &epochs, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "stop-after", 0, 1, INT64_C(1) << 40, &stop_after, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "batch", 32, 1, 1 << 16, &batch, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "grad-accum", 1, 1, 1 << 16, &accum, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "warmup", -1, 0, INT64_C(1) << 40, &warmup, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "max-len", 0, 3, 1 << 20, &max_len, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "seed", 42, 0, INT64_MAX, &seed, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "save-every", 0, 0, INT64_C(1) << 40, &save_every, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "keep", 3, 0, 1 << 30, &keep, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "eval-every", 0, 0, INT64_C(1) << 40, &eval_every, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "threads", 0, 0, 4096, &threads, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "min-count", 2, 1, INT64_C(1) << 40, &min_count, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "max-pairs", 0, 0, INT64_C(1) << 40, &max_pairs, &err);
  if (st == AF_OK)
    st = af_arg_i64(&a, "max-val", 1000, 0, 1 << 24, &max_val, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "lr", 2e-5, 0, 10, &lr, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "weight-decay", 0.01, 0, 10, &wd, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "max-grad-norm", 1.0, 0, 1e9, &max_norm, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "dropout", 0.1, 0, 0.99, &dropout, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "attention-dropout", 0.1, 0, 0.99, &attn_dropout, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "scale", 20.0, 1e-6, 1e6, &scale, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "min-lift", 1.0, 0, 1e12, &min_lift, &err);
  if (st == AF_OK)
    st = af_arg_f64(&a, "val-fraction", 0.05, 0, 0.9, &val_fraction, &err);
  if (st != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
    af_args_free(&a);
    return rc;
  }
  af_device dev = af_device_cpu((int)threads);
  if ((st = af_device_set_precision(&dev, af_arg_str(&a, "precision"), &err)) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
    af_args_free(&a);
    return rc;
  }

  /* 1. the model and trainer: from a training checkpoint, or fresh */
  if (resume) {
    if ((st = af_model_alloc(&m, &err)) == AF_OK)
      st = af_train_checkpoint_load(resume, &dev, m, &t, &meta, &err);
    have_model = st == AF_OK;
  } else {
    st = af_model_open(model_path, &m, &err);
    have_model = st == AF_OK;
  }
  const af_train_config *rc_cfg = t ? af_trainer_config(t) : NULL;
  const uint64_t pair_seed = rc_cfg ? rc_cfg->seed : (uint64_t)seed;
  if (st == AF_OK && resume)
    max_len = meta.max_len;
  if (st == AF_OK)
    st = af_model_tokenizer(m, (int)max_len, &tok, &err);
  if (st == AF_OK && !resume)
    max_len = af_tokenizer_options_of(tok)->max_len;

  /* 2. the pairs */
  af_pairs_options po;
  af_pairs_default_options(&po);
  po.min_count = min_count;
  po.min_lift = min_lift;
  po.max_pairs = max_pairs;
  po.val_fraction = val_fraction;
  po.max_val = max_val;
  po.seed = pair_seed;
  if (st == AF_OK) {
    if (pairs_csv) {
      st = af_pairs_from_csv(pairs_csv, &po, &tr, &va, &err);
    } else {
      st = af_basket_input_load(&a, &in, &err);
      have_input = st == AF_OK;
      if (st == AF_OK) {
        af_basket_input_print_report(SPEC.cmd, &in, stderr);
        st = af_pairs_from_baskets(&in.baskets, in.has_catalog ? &in.catalog : NULL, &po, &tr,
                                   &va, &err);
      }
    }
  }
  if (st == AF_OK)
    fprintf(stderr, "affinity train: %lld training pairs, %lld validation pairs\n",
            (long long)tr.n, (long long)va.n);
  if (st == AF_OK && resume &&
      (meta.n_train != tr.n || meta.n_val != va.n ||
       meta.data_fingerprint != af_pair_set_fingerprint(&tr)))
    st = af_error_set(&err, AF_ERR_ARG,
                      "%s: the training pairs differ from the checkpoint's (%lld/%lld pairs now, "
                      "%lld/%lld then): give the same data flags as the first run",
                      resume, (long long)tr.n, (long long)va.n, (long long)meta.n_train,
                      (long long)meta.n_val);

  /* 3. a fresh trainer */
  if (st == AF_OK && !resume) {
    af_train_config cfg;
    af_train_default_config(&cfg);
    cfg.batch = (int)batch;
    cfg.grad_accum = (int)accum;
    if (tr.n < batch)
      st = af_error_set(&err, AF_ERR_ARG, "%lld training pairs: fewer than --batch %lld",
                        (long long)tr.n, (long long)batch);
    int64_t per_epoch = tr.n / batch / accum;
    cfg.total_steps = steps > 0 ? steps : (int64_t)ceil(epochs * (double)(per_epoch > 0 ? per_epoch : 1));
    if (cfg.total_steps < 1)
      cfg.total_steps = 1;
    cfg.warmup = warmup >= 0 ? warmup : cfg.total_steps / 10;
    cfg.lr = lr;
    cfg.adamw.weight_decay = (float)wd;
    cfg.max_grad_norm = max_norm;
    cfg.dropout = (float)dropout;
    cfg.attn_dropout = (float)attn_dropout;
    cfg.scale = (float)scale;
    cfg.symmetric = af_arg_flag(&a, "symmetric");
    cfg.seed = (uint64_t)seed;
    if (st == AF_OK)
      st = af_trainer_create(m, &dev, &cfg, &t, &err);
    meta.n_train = tr.n;
    meta.n_val = va.n;
    meta.data_fingerprint = af_pair_set_fingerprint(&tr);
    meta.max_len = max_len;
  } else if (st == AF_OK && steps > 0) {
    /* resume with a longer schedule */
    int64_t was = af_trainer_config(t)->total_steps;
    if (was != steps) {
      fprintf(stderr, "affinity train: schedule changed from %lld to %lld steps\n",
              (long long)was, (long long)steps);
      st = af_trainer_set_total_steps(t, steps, &err);
    }
  }
  if (st == AF_OK)
    st = make_dir(out, &err);

  /* 4. the loop */
  if (st == AF_OK) {
    const af_train_config *c = af_trainer_config(t);
    fprintf(stderr,
            "affinity train: %s step %lld of %lld; batch %d x %d, lr %.2e, warm-up %lld, dropout "
            "%.2f/%.2f, max-len %lld, seed %llu\n",
            resume ? "resuming at" : "starting at", (long long)af_trainer_steps_done(t),
            (long long)c->total_steps, c->batch, c->grad_accum, c->lr, (long long)c->warmup,
            c->dropout, c->attn_dropout, (long long)max_len, (unsigned long long)c->seed);
    loop_ctx lc;
    af_progress_init(&lc.prog, "train", c->total_steps);
    lc.tty = lc.prog.enabled;
    af_train_loop_options lo;
    memset(&lo, 0, sizeof lo);
    lo.train = &tr;
    lo.val = &va;
    lo.max_len = (int)max_len;
    lo.stop_after = stop_after;
    lo.save_every = save_every;
    lo.keep = keep;
    lo.eval_every = eval_every;
    lo.out_dir = out;
    lo.on_event = on_event;
    lo.ctx = &lc;
    st = af_train_run(t, tok, &lo, &meta, &err);
    if (st == AF_OK) {
      af_progress_done(&lc.prog);
      fprintf(stderr, "affinity train: %lld steps done; %s/%s\n",
              (long long)af_trainer_steps_done(t), out,
              af_trainer_steps_done(t) == c->total_steps ? "final.h5" : "step-*.h5");
    }
  }
  if (st != AF_OK)
    rc = af_cli_fail(SPEC.cmd, &err);
  af_trainer_free(t);
  af_tokenizer_free(tok);
  af_pair_set_free(&tr);
  af_pair_set_free(&va);
  if (have_input)
    af_basket_input_free(&in);
  if (have_model)
    af_model_close(m);
  else
    free(m); /* allocated, but the checkpoint did not load */
  af_args_free(&a);
  return rc;
}
