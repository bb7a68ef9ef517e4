/* The fine-tuning loop: batches of pairs in the seeded epoch order, optimizer
 * steps, validation Recall@10, checkpoints and log.jsonl (include/affinity.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "nn/model.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

af_status af_train_evaluate(af_model *m, const af_device *dev, const af_tokenizer *tok,
                            const af_pair_set *val, int max_len, double *r1, double *r10,
                            double *mean_rank, af_error *err) {
  (void)max_len; /* the tokenizer's max_len applies */
  *r1 = *r10 = *mean_rank = 0;
  const int64_t n = val->n;
  if (n < 1)
    return AF_OK;
  const int C = m->cfg.hidden_size;
  float *ea = af_malloc((size_t)n * C, sizeof(float), err); // (n, C) anchors
  float *ep = ea ? af_malloc((size_t)n * C, sizeof(float), err) : NULL; // (n, C) positives
  af_encoder *enc = NULL;
  af_status st = ep ? af_encoder_create(m, dev, &enc, err) : AF_ERR_NOMEM;
  af_embed_options eo;
  af_embed_default_options(&eo);
  if (st == AF_OK)
    st = af_embed_texts(enc, tok, (const char *const *)val->anchor, n, &eo, ea, err);
  if (st == AF_OK)
    st = af_embed_texts(enc, tok, (const char *const *)val->positive, n, &eo, ep, err);
  if (st == AF_OK) {
    for (float *e = ea; e < ea + (size_t)n * C * 1; e += C) { /* cosine: normalise rows */
      double ss = 0;
      for (int k = 0; k < C; k++)
        ss += (double)e[k] * e[k];
      float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
      for (int k = 0; k < C; k++)
        e[k] *= inv;
    }
    for (float *e = ep; e < ep + (size_t)n * C; e += C) {
      double ss = 0;
      for (int k = 0; k < C; k++)
        ss += (double)e[k] * e[k];
      float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
      for (int k = 0; k < C; k++)
        e[k] *= inv;
    }
    int64_t hit1 = 0, hit10 = 0;
    double rank_sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : hit1, hit10, rank_sum)
    for (int64_t i = 0; i < n; i++) {
      const float *a = ea + (size_t)i * C;
      double own = 0;
      for (int k = 0; k < C; k++)
        own += (double)a[k] * ep[(size_t)i * C + k];
      int64_t above = 0; /* positives scoring strictly higher than the own one */
      for (int64_t j = 0; j < n; j++) {
        if (j == i)
          continue;
        double s = 0;
        for (int k = 0; k < C; k++)
          s += (double)a[k] * ep[(size_t)j * C + k];
        above += s > own;
      }
      hit1 += above < 1;
      hit10 += above < 10;
      rank_sum += (double)(above + 1);
    }
    *r1 = (double)hit1 / (double)n;
    *r10 = (double)hit10 / (double)n;
    *mean_rank = rank_sum / (double)n;
  }
  af_encoder_free(enc);
  free(ea);
  free(ep);
  return st;
}

/* Appends one line to out_dir/log.jsonl. */
static af_status append_log(const char *dir, const char *line, af_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  FILE *f = fopen(path, "a");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open for appending", path);
  int bad = fprintf(f, "%s\n", line) < 0;
  bad |= fclose(f) != 0;
  return bad ? af_error_set(err, AF_ERR_IO, "%s: write failed", path) : AF_OK;
}

static af_status emit(const af_train_loop_options *o, af_train_event *ev, af_error *err) {
  if (af_comm_rank(o->comm) != 0)
    return AF_OK;
  char line[1024];
  if (ev->is_eval)
    snprintf(line, sizeof line,
             "{\"step\": %lld, \"val_pairs\": %lld, \"val_recall_at_1\": %.6f, "
             "\"val_recall_at_10\": %.6f, \"val_mean_rank\": %.3f, \"elapsed_s\": %.3f}",
             (long long)ev->step, (long long)ev->n_val, ev->recall_at_1, ev->recall_at_10,
             ev->mean_rank, ev->elapsed_s);
  else
    snprintf(line, sizeof line,
             "{\"step\": %lld, \"epoch\": %lld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, "
             "\"tokens\": %lld, \"tokens_per_s\": %.1f, \"elapsed_s\": %.3f}",
             (long long)ev->step, (long long)ev->epoch, ev->loss, ev->lr, ev->grad_norm,
             (long long)ev->tokens, ev->tokens_per_s, ev->elapsed_s);
  ev->json = line;
  AF_TRY(append_log(o->out_dir, line, err));
  if (o->on_event)
    o->on_event(o->ctx, ev);
  ev->json = NULL;
  return AF_OK;
}

/* Deletes all but the newest `keep` step-XXXXXXX.h5 files of dir. */
static void prune(const char *dir, int64_t keep) {
  if (keep <= 0)
    return;
  DIR *d = opendir(dir);
  if (!d)
    return;
  long long *steps = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long long s;
    char tail[8];
    if (strlen(e->d_name) == 15 && sscanf(e->d_name, "step-%7lld%4s", &s, tail) == 2 &&
        strcmp(tail, ".h5") == 0) {
      if (n == cap) {
        size_t nc = cap ? cap * 2 : 16;
        long long *p = realloc(steps, nc * sizeof *p);
        if (!p)
          break;
        steps = p;
        cap = nc;
      }
      steps[n++] = s;
    }
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) { /* selection: remove every file with >= keep newer ones */
    size_t newer = 0;
    for (size_t j = 0; j < n; j++)
      newer += steps[j] > steps[i];
    if ((int64_t)newer >= keep) {
      char path[4096];
      snprintf(path, sizeof path, "%s/step-%07lld.h5", dir, steps[i]);
      unlink(path);
    }
  }
  free(steps);
}

static af_status save(af_trainer *t, const af_train_loop_options *o, const af_train_meta *meta,
                      int final, af_error *err) {
  if (af_comm_rank(o->comm) != 0)
    return AF_OK;
  char path[4096];
  if (final)
    snprintf(path, sizeof path, "%s/final.h5", o->out_dir);
  else
    snprintf(path, sizeof path, "%s/step-%07lld.h5", o->out_dir,
             (long long)af_trainer_steps_done(t));
  AF_TRY(af_train_checkpoint_save(path, t, meta, err));
  if (!final)
    prune(o->out_dir, o->keep);
  return AF_OK;
}

static af_status evaluate(af_trainer *t, const af_tokenizer *tok, const af_train_loop_options *o,
                          double t0, af_error *err) {
  if (!o->val || o->val->n < 1 || af_comm_rank(o->comm) != 0)
    return AF_OK;
  af_train_event ev;
  memset(&ev, 0, sizeof ev);
  ev.is_eval = 1;
  ev.step = af_trainer_steps_done(t);
  ev.n_val = o->val->n;
  /* On a GPU the evaluation runs there, on the trained parameters copied back
   * to the model; on the CPU with every core in fp32, as before. */
  AF_TRY(af_trainer_sync_host(t, err));
  const af_device *td = af_trainer_device(t);
  af_device dev = td->backend == AF_BACKEND_CPU ? af_device_cpu(0) : *td;
  AF_TRY(af_train_evaluate(af_trainer_model(t), &dev, tok, o->val, 0, &ev.recall_at_1,
                           &ev.recall_at_10, &ev.mean_rank, err));
  ev.elapsed_s = now_s() - t0;
  return emit(o, &ev, err);
}

af_status af_train_run(af_trainer *t, const af_tokenizer *tok, const af_train_loop_options *o,
                       af_train_meta *meta, af_error *err) {
  const af_train_config *c = af_trainer_config(t);
  const af_pair_set *tr = o->train;
  const int B = c->batch, accum = c->grad_accum;
  const int max_len = af_tokenizer_options_of(tok)->max_len;
  const int64_t n_ex = o->baskets ? o->baskets->n : tr->n; /* examples of an epoch */
  if (o->baskets && af_comm_size(o->comm) > 1)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "the basket objective runs in one process (no data parallel yet)");
  if (n_ex < B)
    return af_error_set(err, AF_ERR_ARG, "%lld training %s: fewer than one batch of %d",
                        (long long)n_ex, o->baskets ? "examples" : "pairs", B);
  if (meta->position < 0 || meta->position > n_ex)
    return af_error_set(err, AF_ERR_FORMAT, "data cursor %lld beyond %lld pairs",
                        (long long)meta->position, (long long)n_ex);
  AF_TRY(af_clean_stale_tmp(o->out_dir, NULL, err)); /* temporaries of killed runs */
  int64_t *perm = af_malloc((size_t)n_ex, sizeof(int64_t), err);
  int32_t *ids = perm ? af_malloc((size_t)2 * B * max_len, sizeof(int32_t), err) : NULL;
  int32_t *cu = ids ? af_malloc((size_t)2 * B + 1, sizeof(int32_t), err) : NULL;
  if (!cu) {
    free(perm);
    free(ids);
    return AF_ERR_NOMEM;
  }
  af_pairs_epoch_order(n_ex, c->seed, meta->epoch, perm);
  const double t0 = now_s();
  af_status st = AF_OK;
  const int64_t start = af_trainer_steps_done(t);
  /* The starting point of the curve. Rank 0's work (evaluation, log,
   * checkpoints) ends with every rank learning whether it succeeded. */
  if (start == 0)
    st = af_comm_agree(o->comm, evaluate(t, tok, o, t0, err), err);
  int64_t done_here = 0;
  while (st == AF_OK && af_trainer_steps_done(t) < c->total_steps &&
         (o->stop_after <= 0 || done_here < o->stop_after)) {
    const double ts = now_s();
    const int64_t step = af_trainer_steps_done(t);
    double loss_sum = 0;
    int64_t tokens = 0;
    /* GPUs over NCCL: the last micro-batch's backward reduces layer by layer. */
    const int overlap = af_trainer_can_overlap_reduce(t, o->comm);
    for (int mb = 0; mb < accum && st == AF_OK; mb++) {
      if (overlap)
        st = af_trainer_reduce_in_backward(t, mb == accum - 1 ? o->comm : NULL, err);
      if (st != AF_OK)
        break;
      if (meta->position + B > n_ex) { /* drop the last partial batch: next epoch */
        meta->epoch++;
        meta->position = 0;
        af_pairs_epoch_order(n_ex, c->seed, meta->epoch, perm);
      }
      if (o->baskets) { /* the basket objective: one call does the micro-batch */
        float loss = 0;
        int64_t nt = 0;
        st = af_trainer_accumulate_basket(t, tok, o->baskets, perm + meta->position, B,
                                          (uint64_t)step * (uint64_t)accum + (uint64_t)mb, &loss,
                                          &nt, err);
        meta->position += B;
        loss_sum += loss;
        tokens += nt;
        continue;
      }
      // ids (T), cu (2B + 1): the B anchors, then their B positives
      int T = 0;
      cu[0] = 0;
      for (int k = 0; k < 2 * B && st == AF_OK; k++) {
        int64_t pi = perm[meta->position + (k % B)];
        const char *text = k < B ? tr->anchor[pi] : tr->positive[pi];
        int n_ids = 0;
        st = af_tokenizer_encode(tok, text, strlen(text), ids + T, max_len, &n_ids, err);
        if (st != AF_OK)
          af_error_prefix(err, "training pair %lld: ", (long long)pi);
        T += n_ids;
        cu[k + 1] = T;
      }
      if (st != AF_OK)
        break;
      meta->position += B;
      af_batch batch = {2 * B, T, ids, cu};
      float loss = 0;
      st = af_trainer_accumulate_shared(t, o->comm, &batch,
                                        (uint64_t)step * (uint64_t)accum + (uint64_t)mb, &loss, err);
      loss_sum += loss;
      tokens += T;
    }
    if (st != AF_OK)
      break;
    af_train_event ev;
    memset(&ev, 0, sizeof ev);
    if (overlap) {
      af_trainer_reduce_in_backward(t, NULL, NULL);
      st = af_comm_wait(o->comm, err);
    } else if (af_comm_size(o->comm) > 1) {
      st = af_trainer_allreduce_grad(t, o->comm, err);
    }
    if (st == AF_OK)
      st = af_trainer_step(t, accum, &ev.lr, &ev.grad_norm, err);
    if (st != AF_OK)
      break;
    done_here++;
    meta->tokens_seen += tokens;
    const double dt = now_s() - ts;
    ev.step = af_trainer_steps_done(t);
    ev.total_steps = c->total_steps;
    ev.epoch = meta->epoch;
    ev.loss = loss_sum / accum;
    ev.tokens = tokens;
    ev.tokens_per_s = dt > 0 ? (double)tokens / dt : 0;
    ev.elapsed_s = now_s() - t0;
    st = emit(o, &ev, err);
    const int64_t s = ev.step;
    const int last = s == c->total_steps;
    if (st == AF_OK && o->eval_every > 0 && s % o->eval_every == 0 && !last)
      st = evaluate(t, tok, o, t0, err);
    if (st == AF_OK && o->save_every > 0 && s % o->save_every == 0)
      st = save(t, o, meta, 0, err);
    st = af_comm_agree(o->comm, st, err);
  }
  if (st == AF_OK && af_trainer_steps_done(t) > start) {
    const int64_t s = af_trainer_steps_done(t);
    if (s == c->total_steps) {
      st = evaluate(t, tok, o, t0, err);
      if (st == AF_OK)
        st = save(t, o, meta, 1, err);
    } else if (o->save_every <= 0 || s % o->save_every != 0) {
      st = save(t, o, meta, 0, err); /* stopped early: leave a checkpoint to resume from */
    }
    st = af_comm_agree(o->comm, st, err);
  }
  free(perm);
  free(ids);
  free(cu);
  return st;
}
