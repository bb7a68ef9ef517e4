/* affinity train: contrastive fine-tuning of the encoder on co-purchase pairs
 * (or a CSV of pairs) on the CPU or a CUDA GPU; thin over include/affinity.h. */
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
    {"objective", "pair|basket", "pair: co-purchase pairs (default); basket: each training basket "
                                 "with one item held out, the other items' pooled texts against "
                                 "it (docs/training.md)"},
    {"max-query", "N", "basket: at most N query items per example, drawn with the seed (default 8)"},
    {"no-logq", NULL, "basket: no popularity (log q) correction of the in-batch logits"},
    {"max-examples", "N", "basket: keep a seeded sample of N examples (default all)"},
    {"split-seed", "S", "basket: train on the training side of eval's split with this seed only "
                        "(the same --test-fraction and --cold-fraction as eval)"},
    {"split-validate", NULL, "basket, with --split-seed: on the training side of eval's "
                             "validation split (seed S + 1) inside it (for tuning)"},
    {"test-fraction", "X", "basket, with --split-seed: as eval (default 0.2)"},
    {"cold-fraction", "X", "basket, with --split-seed: as eval (default 0.1)"},
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
    {"threads", "N", "CPU threads (default: all cores; per rank under mpirun)"},
    {"device", "cpu|cuda|cuda:N", "where to train (default cpu); under mpirun/srun `cuda` is "
                                  "the GPU of the rank's local rank, and gradients go over NCCL"},
    {"comm-timeout", "S", "under mpirun/srun: seconds a rank waits for the others before it "
                          "gives up with an error (default 600)"},
    {"nccl-id-dir", "DIR", "GPUs under srun without MPI: a folder every node sees, where rank 0 "
                           "leaves the NCCL bootstrap id for the others"},
    {"precision", "fp32|bf16", "GEMM inputs, forward and backward: fp32 (default) or bf16 with "
                               "fp32 accumulation (CUDA, or CPUs with AVX512_BF16; master "
                               "weights, LayerNorm, softmax, loss and AdamW stay fp32)"},
};
static const af_cmd_spec SPEC = {
    "train",
    "--model M.h5 --out DIR (--baskets F --catalog F ... | --pairs F.csv) [--steps N | --epochs E] "
    "[--batch B] [--lr X] [--resume CKPT.h5] ...",
    "Fine-tunes the encoder with the multiple-negatives ranking loss on pairs of products\n"
    "bought together (count >= --min-count, lift >= --min-lift; texts from the catalog), or\n"
    "on a CSV of anchor,positive texts. --objective basket instead fine-tunes for basket\n"
    "completion: a training basket's other items (pooled) against its held-out item, in-batch\n"
    "negatives with the log q popularity correction. Logs loss, learning rate, gradient norm, tokens/s and\n"
    "validation Recall@10 to stderr and DIR/log.jsonl; writes DIR/step-XXXXXXX.h5 checkpoints\n"
    "(model + AdamW state + data cursor) and DIR/final.h5. --resume continues bit-exactly\n"
    "(same thread count and device). --device cuda trains on a GPU (fp32, or bf16 GEMMs with\n"
    "--precision bf16). Under `mpirun -np R` (or srun) the R processes train one model\n"
    "data-parallel: --batch is the global batch, split over the ranks, with in-batch\n"
    "negatives over all of it; rank 0 writes the checkpoints and the log; any rank count\n"
    "can resume them (docs/distributed.md).",
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

/* The parsed flags. */
typedef struct {
  const char *out, *model_path, *resume, *pairs_csv;
  int64_t steps, stop_after, batch, accum, warmup, max_len, seed, save_every, keep, eval_every;
  int64_t threads, min_count, max_pairs, max_val, max_query, max_examples, split_seed;
  int basket;
  double test_fraction, cold_fraction;
  double epochs, lr, wd, max_norm, dropout, attn_dropout, scale, min_lift, val_fraction;
  double comm_timeout;
} train_flags;

/* --objective and the flags that belong to one objective only. */
static af_status parse_objective(const af_args *a, train_flags *f, af_error *err) {
  const char *obj = af_arg_str(a, "objective");
  if (obj && strcmp(obj, "pair") && strcmp(obj, "basket"))
    return af_error_set(err, AF_ERR_ARG, "--objective: expected pair or basket, got '%s'", obj);
  f->basket = obj && !strcmp(obj, "basket");
  static const char *basket_only[] = {"max-query", "no-logq", "max-examples", "split-seed",
                                      "split-validate", "test-fraction", "cold-fraction"};
  for (size_t i = 0; !f->basket && i < sizeof basket_only / sizeof *basket_only; i++)
    if (af_arg_str(a, basket_only[i]) || af_arg_flag(a, basket_only[i]))
      return af_error_set(err, AF_ERR_ARG, "--%s needs --objective basket", basket_only[i]);
  if (f->basket && (f->pairs_csv || !af_arg_str(a, "baskets")))
    return af_error_set(err, AF_ERR_ARG, "--objective basket trains on --baskets (not --pairs)");
  if (af_arg_flag(a, "split-validate") && !af_arg_str(a, "split-seed"))
    return af_error_set(err, AF_ERR_ARG, "--split-validate needs --split-seed");
  return AF_OK;
}

static af_status parse_flags(const af_args *a, train_flags *f, af_error *err) {
  memset(f, 0, sizeof *f);
  f->model_path = af_arg_str(a, "model");
  f->resume = af_arg_str(a, "resume");
  f->pairs_csv = af_arg_str(a, "pairs");
  AF_TRY(af_arg_required(a, "out", &f->out, err));
  if (!f->model_path && !f->resume)
    return af_error_set(err, AF_ERR_ARG, "missing required flag --model (or --resume)");
  if (!f->pairs_csv && !af_arg_str(a, "baskets"))
    return af_error_set(err, AF_ERR_ARG, "give --baskets (with --catalog) or --pairs");
  if (af_arg_str(a, "steps") && af_arg_str(a, "epochs"))
    return af_error_set(err, AF_ERR_ARG, "give --steps or --epochs, not both");
  const int64_t big = INT64_C(1) << 40;
  const struct {
    const char *name;
    int64_t def, lo, hi, *v;
  } ints[] = {
      {"steps", 0, 1, big, &f->steps},          {"stop-after", 0, 1, big, &f->stop_after},
      {"batch", 32, 1, 1 << 16, &f->batch},      {"grad-accum", 1, 1, 1 << 16, &f->accum},
      {"warmup", -1, 0, big, &f->warmup},        {"max-len", 0, 3, 1 << 20, &f->max_len},
      {"seed", 42, 0, INT64_MAX, &f->seed},      {"save-every", 0, 0, big, &f->save_every},
      {"keep", 3, 0, 1 << 30, &f->keep},         {"eval-every", 0, 0, big, &f->eval_every},
      {"threads", 0, 0, 4096, &f->threads},      {"min-count", 2, 1, big, &f->min_count},
      {"max-pairs", 0, 0, big, &f->max_pairs},   {"max-val", 1000, 0, 1 << 24, &f->max_val},
      {"max-query", 8, 1, AF_BASKET_MAX_QUERY, &f->max_query},
      {"max-examples", 0, 0, big, &f->max_examples},
      {"split-seed", 0, 0, INT64_MAX, &f->split_seed},
  };
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    AF_TRY(af_arg_i64(a, ints[i].name, ints[i].def, ints[i].lo, ints[i].hi, ints[i].v, err));
  const struct {
    const char *name;
    double def, lo, hi, *v;
  } reals[] = {
      {"epochs", 1.0, 1e-6, 1e6, &f->epochs},
      {"lr", 2e-5, 0, 10, &f->lr},
      {"weight-decay", 0.01, 0, 10, &f->wd},
      {"max-grad-norm", 1.0, 0, 1e9, &f->max_norm},
      {"dropout", 0.1, 0, 0.99, &f->dropout},
      {"attention-dropout", 0.1, 0, 0.99, &f->attn_dropout},
      {"scale", 20.0, 1e-6, 1e6, &f->scale},
      {"min-lift", 1.0, 0, 1e12, &f->min_lift},
      {"val-fraction", 0.05, 0, 0.9, &f->val_fraction},
      {"comm-timeout", 600, 1, 1e7, &f->comm_timeout},
      {"test-fraction", 0.2, 1e-9, 1 - 1e-9, &f->test_fraction},
      {"cold-fraction", 0.1, 0, 1 - 1e-9, &f->cold_fraction},
  };
  for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
    AF_TRY(af_arg_f64(a, reals[i].name, reals[i].def, reals[i].lo, reals[i].hi, reals[i].v, err));
  return parse_objective(a, f, err);
}

/* Everything one training run holds; job_free releases what was made. */
typedef struct {
  train_flags f;
  af_device dev;
  af_model *m;
  int have_model, have_input;
  af_trainer *t;
  af_tokenizer *tok;
  af_basket_input in;
  af_pair_set tr, va;
  af_eval_split sp[2];   /* basket objective with --split-seed: the split (and its validation) */
  af_basket_examples ex; /* basket objective */
  af_train_meta meta;
  af_comm *comm; /* the ranks of an mpirun/srun launch (one process: single) */
  int rank, ranks;
} train_job;

static void job_free(train_job *j) {
  af_trainer_free(j->t);
  af_tokenizer_free(j->tok);
  af_pair_set_free(&j->tr);
  af_pair_set_free(&j->va);
  af_basket_examples_free(&j->ex);
  af_eval_split_free(&j->sp[0]);
  af_eval_split_free(&j->sp[1]);
  if (j->have_input)
    af_basket_input_free(&j->in);
  if (j->have_model)
    af_model_close(j->m);
  else
    free(j->m); /* allocated, but the checkpoint did not load */
}

/* 1. The model (and with --resume the trainer) and its tokenizer. */
static af_status load_model(train_job *j, af_error *err) {
  train_flags *f = &j->f;
  if (f->resume) {
    AF_TRY(af_model_alloc(&j->m, err));
    AF_TRY(af_train_checkpoint_load(f->resume, &j->dev, j->m, &j->t, &j->meta, err));
    j->have_model = 1;
    f->max_len = j->meta.max_len;
  } else {
    AF_TRY(af_model_open(f->model_path, &j->m, err));
    j->have_model = 1;
  }
  AF_TRY(af_model_tokenizer(j->m, (int)f->max_len, &j->tok, err));
  if (!f->resume)
    f->max_len = af_tokenizer_options_of(j->tok)->max_len;
  return AF_OK;
}

/* 2b. The basket objective's examples: from the training side of eval's
 * split when --split-seed is given (never its test baskets). */
static af_status load_examples(train_job *j, const af_args *a, af_error *err) {
  const train_flags *f = &j->f;
  if (j->ranks > 1) /* before anything is loaded or created */
    return af_error_set(err, AF_ERR_UNSUPPORTED, "--objective basket runs in one process: "
                        "data-parallel training (mpirun/srun) supports the pair objective only");
  AF_TRY(af_basket_input_load(a, &j->in, err));
  j->have_input = 1;
  if (j->rank == 0)
    af_basket_input_print_report(SPEC.cmd, &j->in, stderr);
  if (!j->in.has_catalog)
    return af_error_set(err, AF_ERR_ARG, "--objective basket needs --catalog (the item texts)");
  const af_baskets *b = &j->in.baskets;
  if (af_arg_str(a, "split-seed")) {
    af_eval_split_options so;
    af_eval_split_default_options(&so);
    so.seed = (uint64_t)f->split_seed;
    so.test_fraction = f->test_fraction;
    so.cold_fraction = f->cold_fraction;
    AF_TRY(af_eval_split_random(b, &so, &j->sp[0], err));
    b = &j->sp[0].train;
    if (af_arg_flag(a, "split-validate")) {
      so.seed++;
      AF_TRY(af_eval_split_random(b, &so, &j->sp[1], err));
      b = &j->sp[1].train;
    }
    fprintf(stderr, "affinity train: the training side of eval's %ssplit (seed %lld): %lld "
            "baskets\n", af_arg_flag(a, "split-validate") ? "validation " : "",
            (long long)so.seed, (long long)b->n_baskets);
  }
  const uint64_t seed = j->t ? af_trainer_config(j->t)->seed : (uint64_t)f->seed;
  AF_TRY(af_basket_examples_build(b, (const char *const *)j->in.catalog.texts, (int)f->max_query,
                                  !af_arg_flag(a, "no-logq"), f->max_examples, seed, &j->ex, err));
  fprintf(stderr, "affinity train: %lld basket examples (query <= %lld items, log q correction "
          "%s)\n", (long long)j->ex.n, (long long)f->max_query, j->ex.logq ? "on" : "off");
  const af_train_meta *mt = &j->meta;
  if (f->resume && (mt->n_train != j->ex.n || mt->n_val != 0 ||
                    mt->data_fingerprint != af_basket_examples_fingerprint(&j->ex)))
    return af_error_set(err, AF_ERR_ARG, "%s: the basket examples differ from the checkpoint's: "
                        "give the same data flags as the first run", f->resume);
  return AF_OK;
}

/* 2. The training and validation pairs (a resumed run must see the same). */
static af_status load_pairs(train_job *j, const af_args *a, af_error *err) {
  const train_flags *f = &j->f;
  if (f->basket)
    return load_examples(j, a, err);
  af_pairs_options po;
  af_pairs_default_options(&po);
  po.min_count = f->min_count;
  po.min_lift = f->min_lift;
  po.max_pairs = f->max_pairs;
  po.val_fraction = f->val_fraction;
  po.max_val = f->max_val;
  po.seed = j->t ? af_trainer_config(j->t)->seed : (uint64_t)f->seed;
  if (f->pairs_csv) {
    AF_TRY(af_pairs_from_csv(f->pairs_csv, &po, &j->tr, &j->va, err));
  } else {
    AF_TRY(af_basket_input_load(a, &j->in, err));
    j->have_input = 1;
    if (j->rank == 0)
      af_basket_input_print_report(SPEC.cmd, &j->in, stderr);
    AF_TRY(af_pairs_from_baskets(&j->in.baskets, j->in.has_catalog ? &j->in.catalog : NULL, &po,
                                 &j->tr, &j->va, err));
  }
  if (j->rank == 0)
    fprintf(stderr, "affinity train: %lld training pairs, %lld validation pairs\n",
            (long long)j->tr.n, (long long)j->va.n);
  const af_train_meta *mt = &j->meta;
  if (f->resume && (mt->n_train != j->tr.n || mt->n_val != j->va.n ||
                    mt->data_fingerprint != af_pair_set_fingerprint(&j->tr)))
    return af_error_set(err, AF_ERR_ARG,
                        "%s: the training pairs differ from the checkpoint's (%lld/%lld pairs now, "
                        "%lld/%lld then): give the same data flags as the first run",
                        f->resume, (long long)j->tr.n, (long long)j->va.n, (long long)mt->n_train,
                        (long long)mt->n_val);
  return AF_OK;
}

/* 3. A fresh trainer, or the resumed one's schedule stretched to --steps. */
static af_status make_trainer(train_job *j, const af_args *a, af_error *err) {
  const train_flags *f = &j->f;
  if (f->resume) {
    int64_t was = af_trainer_config(j->t)->total_steps;
    if (f->steps > 0 && was != f->steps) {
      if (j->rank == 0)
        fprintf(stderr, "affinity train: schedule changed from %lld to %lld steps\n",
              (long long)was, (long long)f->steps);
      AF_TRY(af_trainer_set_total_steps(j->t, f->steps, err));
    }
    return AF_OK;
  }
  const int64_t n_train = f->basket ? j->ex.n : j->tr.n;
  if (n_train < f->batch)
    return af_error_set(err, AF_ERR_ARG, "%lld training %s: fewer than --batch %lld",
                        (long long)n_train, f->basket ? "examples" : "pairs", (long long)f->batch);
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.batch = (int)f->batch;
  cfg.grad_accum = (int)f->accum;
  int64_t per_epoch = n_train / f->batch / f->accum;
  cfg.total_steps = f->steps > 0 ? f->steps
                                 : (int64_t)ceil(f->epochs * (double)(per_epoch > 0 ? per_epoch : 1));
  if (cfg.total_steps < 1)
    cfg.total_steps = 1;
  cfg.warmup = f->warmup >= 0 ? f->warmup : cfg.total_steps / 10;
  cfg.lr = f->lr;
  cfg.adamw.weight_decay = (float)f->wd;
  cfg.max_grad_norm = f->max_norm;
  cfg.dropout = (float)f->dropout;
  cfg.attn_dropout = (float)f->attn_dropout;
  cfg.scale = (float)f->scale;
  cfg.symmetric = af_arg_flag(a, "symmetric");
  cfg.seed = (uint64_t)f->seed;
  AF_TRY(af_trainer_create(j->m, &j->dev, &cfg, &j->t, err));
  j->meta.n_train = n_train;
  j->meta.n_val = f->basket ? 0 : j->va.n;
  j->meta.data_fingerprint = f->basket ? af_basket_examples_fingerprint(&j->ex)
                                       : af_pair_set_fingerprint(&j->tr);
  j->meta.max_len = f->max_len;
  return AF_OK;
}

/* The communicator: data parallel when launched by mpirun/srun with several
 * tasks; every rank needs a share of the global batch. */
static af_status make_comm(train_job *j, const af_args *a, af_error *err) {
  af_comm_options co = af_comm_default_options();
  co.backend = af_comm_launched_parallel() ? AF_COMM_MPI : AF_COMM_SINGLE;
  co.timeout_s = j->f.comm_timeout;
  co.nccl_id_dir = af_arg_str(a, "nccl-id-dir");
  const char *dev = af_arg_str(a, "device");
  if (co.backend == AF_COMM_MPI && dev && strncmp(dev, "cuda", 4) == 0) {
    /* GPUs: NCCL (bootstrapped over MPI) when the build has it, else MPI. */
    co.backend = AF_COMM_NCCL;
    af_error e2 = {0};
    if (af_comm_create(&co, &j->comm, &e2) != AF_OK) {
      if (e2.code != AF_ERR_UNSUPPORTED)
        return af_error_set(err, e2.code, "%s", e2.msg);
      co.backend = AF_COMM_MPI; /* a build without NCCL: host all-reduce */
    }
  }
  if (!j->comm)
    AF_TRY(af_comm_create(&co, &j->comm, err));
  j->rank = af_comm_rank(j->comm);
  j->ranks = af_comm_size(j->comm);
  return AF_OK;
}

/* The device: --device; under several ranks, `cuda` alone is the GPU of the
 * rank's local rank (one rank per GPU). */
static af_status make_device(train_job *j, const af_args *a, af_error *err) {
  const char *d = af_arg_str(a, "device");
  if (j->ranks > 1 && d && strcmp(d, "cuda") == 0)
    return af_device_cuda(af_comm_local_rank(j->comm), &j->dev, err);
  return af_cli_device(a, (int)j->f.threads, &j->dev, err);
}

/* 4. The loop, with progress on stderr (rank 0). */
static af_status run_loop(train_job *j, af_error *err) {
  const train_flags *f = &j->f;
  const af_train_config *c = af_trainer_config(j->t);
  if (j->ranks > c->batch)
    return af_error_set(err, AF_ERR_ARG, "%d ranks for a global batch of %d pairs: use --batch "
                        ">= the rank count", j->ranks, c->batch);
  if (j->rank == 0 && j->ranks > 1)
    fprintf(stderr, "affinity train: data parallel over %d ranks (%s); global batch %d, about %d "
            "pairs per rank\n", j->ranks, af_comm_backend_name(af_comm_backend_of(j->comm)),
            c->batch, c->batch / j->ranks);
  if (j->rank == 0)
    fprintf(stderr,
          "affinity train: %s step %lld of %lld; batch %d x %d, lr %.2e, warm-up %lld, dropout "
          "%.2f/%.2f, max-len %lld, seed %llu\n",
          f->resume ? "resuming at" : "starting at", (long long)af_trainer_steps_done(j->t),
          (long long)c->total_steps, c->batch, c->grad_accum, c->lr, (long long)c->warmup,
          c->dropout, c->attn_dropout, (long long)f->max_len, (unsigned long long)c->seed);
  loop_ctx lc;
  af_progress_init(&lc.prog, "train", c->total_steps);
  if (j->rank != 0)
    lc.prog.enabled = 0;
  lc.tty = lc.prog.enabled;
  af_train_loop_options lo = {.train = &j->tr,
                              .val = &j->va,
                              .max_len = (int)f->max_len,
                              .stop_after = f->stop_after,
                              .save_every = f->save_every,
                              .keep = f->keep,
                              .eval_every = f->eval_every,
                              .out_dir = f->out,
                              .on_event = on_event,
                              .ctx = &lc,
                              .comm = j->comm,
                              .baskets = f->basket ? &j->ex : NULL};
  AF_TRY(af_train_run(j->t, j->tok, &lo, &j->meta, err));
  if (j->rank != 0)
    return AF_OK;
  af_progress_done(&lc.prog);
  fprintf(stderr, "affinity train: %lld steps done; %s/%s\n",
          (long long)af_trainer_steps_done(j->t), f->out,
          af_trainer_steps_done(j->t) == c->total_steps ? "final.h5" : "step-*.h5");
  return AF_OK;
}

int af_cmd_train(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  train_job j;
  memset(&j, 0, sizeof j);
  af_status st = parse_flags(&a, &j.f, &err);
  if (st == AF_OK)
    st = make_comm(&j, &a, &err);
  if (st == AF_OK) {
    if ((st = make_device(&j, &a, &err)) == AF_OK &&
        (st = af_device_set_precision(&j.dev, af_arg_str(&a, "precision"), &err)) == AF_OK &&
        (st = load_model(&j, &err)) == AF_OK && (st = load_pairs(&j, &a, &err)) == AF_OK &&
        (st = make_trainer(&j, &a, &err)) == AF_OK && (st = make_dir(j.f.out, &err)) == AF_OK)
      st = run_loop(&j, &err);
  }
  int rc = 0;
  if (st != AF_OK) {
    if (j.ranks > 1 && strncmp(err.msg, "rank ", 5) != 0)
      af_error_prefix(&err, "rank %d of %d: ", j.rank, j.ranks);
    rc = af_cli_fail(SPEC.cmd, &err);
    if (j.ranks > 1) {
      fflush(stderr);
      af_comm_abort(j.comm, rc); /* ends every rank now: none is left waiting */
    }
  }
  af_comm_free(j.comm);
  job_free(&j);
  af_device_release(&j.dev);
  af_args_free(&a);
  return rc;
}
