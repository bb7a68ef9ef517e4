/* The training forward/backward of the encoder and the optimizer step
 * (include/affinity.h; math in docs/training.md). Every op goes through the op
 * interface and its status is checked. Parameters, gradients, AdamW moments
 * and activations live in the device's memory (af_dev_alloc; on the CPU
 * backend that is host memory and the parameters are the model's own
 * buffer), so the same code trains on the CPU and on CUDA; the host sees
 * the batch going in, the (2B, C) embeddings coming out for the loss, and the
 * parameters when a checkpoint or an evaluation asks (af_trainer_sync_host). */
#include "affinity.h"
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/adamw.h"
#include "train/loss.h"
#include "ops_backward.h"

struct af_trainer {
  af_model *m;
  af_device dev;
  af_train_config cfg;
  float *params;         /* (n_floats) device; == m->data on the CPU */
  float *grad, *m1, *m2; /* (n_floats) each, device, parallel to m->data */
  /* (n_floats) device, bf16 mode on a table with the w16 ops: the bf16
   * rounding of params (the working copy the linear layers read), written at
   * creation (so after a resume) and by every AdamW step; NULL otherwise. */
  uint16_t *work;
  af_adamw_tensor *table; /* (n_table) host: the trained tensors, for the fused AdamW */
  int n_table;
  /* Gradient buckets (data parallel on GPUs): layer l's parameters are the
   * contiguous range [layer_lo[l], layer_hi[l]) of the buffer; the rest
   * (embeddings before, pooler after) is reduced last. */
  int64_t *layer_lo, *layer_hi; /* (L) each */
  int buckets_ok;               /* the layers are contiguous and in order */
  af_comm *reduce_comm;         /* non-NULL: the next backward queues the buckets' all-reduce */
  int64_t steps;
  /* activation capacity */
  int cap_T, cap_B;
  int64_t cap_probs;
  /* the last forward */
  int T, B, have_fwd;
  uint64_t micro;
  int64_t n_probs;   /* per layer */
  int32_t *pos_host; /* (T) position of each token in its sequence, host */
  int32_t *ids_host, *cu_host; /* (T), (B + 1) host copies of the batch: the CUDA embedding
                                  and attention backward need them on the host (no sync) */
  int32_t *pos;      /* (T) device copy */
  int32_t *ids, *cu; /* (T), (B + 1) device copies of the batch */
  int32_t *gtok_host; /* (T) host: global token index of each token (data parallel) */
  int32_t *gtok_dev;  /* (T) device copy; NULL when the batch is whole */
  int64_t *gprob_dev; /* (B) device copy of gprob */
  float *emb;                  /* (T, C) embedding sum: input of the embeddings' LayerNorm */
  float *emb_mean, *emb_rstd;  /* (T) */
  float *xin;                  /* (L + 1, T, C) input of each layer; [L] = last hidden state */
  float *qkv;                  /* (L, T, 3C) */
  float *probs;                /* (L, n_probs) attention probabilities */
  float *att;                  /* (L, T, C) attention output (input of attention.output.dense) */
  float *h1;                   /* (L, T, C) input of attention.output.LayerNorm */
  float *ln1_mean, *ln1_rstd;  /* (L, T) */
  float *x1;                   /* (L, T, C) output of attention.output.LayerNorm */
  float *fcpre;                /* (L, T, F) GELU input */
  float *gelu;                 /* (L, T, F) GELU output (input of output.dense) */
  float *h2;                   /* (L, T, C) input of output.LayerNorm */
  float *ln2_mean, *ln2_rstd;  /* (L, T) */
  float *pooled;               /* (B, C) before normalisation */
  float *out;                  /* (B, C) after normalisation */
  float *norms;                /* (B) */
  /* backward scratch */
  float *dx, *dh, *dtmp, *datt; /* (T, C) */
  float *dF1, *dF2;             /* (T, F) */
  float *dqkv;                  /* (T, 3C) */
  float *dpooled;               /* (B, C) */
  float *dloss;                 /* (B, C) d loss / d out */
  /* data parallel (af_trainer_set_layout): where this rank's sequences sit in
   * the global batch, for the dropout masks; NULL when the batch is whole */
  int32_t *gtok;  /* (B) host: global token index of each sequence's first token */
  int64_t *gprob; /* (B) host: global index of each sequence's first attention probability */
  int layout_cap;
  int have_layout; /* gtok_dev / gprob_dev hold the layout of the current batch */
};

void af_train_default_config(af_train_config *c) {
  memset(c, 0, sizeof *c);
  c->dropout = 0.1f;
  c->attn_dropout = 0.1f;
  c->scale = AF_MNR_DEFAULT_SCALE;
  c->symmetric = 0;
  c->seed = 42;
  c->lr = 2e-5;
  c->warmup = 0;
  c->total_steps = 1;
  c->max_grad_norm = 1.0;
  c->grad_accum = 1;
  c->batch = 32;
  c->adamw = af_adamw_defaults();
}

int af_trainer_param_trained(const char *name) { return strncmp(name, "pooler.", 7) != 0; }

/* The activation buffers, each with its size in elements of 4 or 8 bytes. */
#define AF_TRAINER_ACTS(X)                                                                         \
  X(pos, TT, int32_t) X(ids, TT, int32_t) X(cu, BB + 1, int32_t) X(gtok_dev, TT, int32_t)          \
  X(gprob_dev, BB, int64_t) X(emb, TT * C, float) X(emb_mean, TT, float) X(emb_rstd, TT, float)    \
  X(xin, (L + 1) * TT * C, float) X(qkv, L * TT * 3 * C, float) X(probs, L * PP, float)            \
  X(att, L * TT * C, float) X(h1, L * TT * C, float) X(ln1_mean, L * TT, float)                    \
  X(ln1_rstd, L * TT, float) X(x1, L * TT * C, float) X(fcpre, L * TT * F, float)                  \
  X(gelu, L * TT * F, float) X(h2, L * TT * C, float) X(ln2_mean, L * TT, float)                   \
  X(ln2_rstd, L * TT, float) X(pooled, BB * C, float) X(out, BB * C, float) X(norms, BB, float)    \
  X(dx, TT * C, float) X(dh, TT * C, float) X(dtmp, TT * C, float) X(datt, TT * C, float)          \
  X(dF1, TT * F, float) X(dF2, TT * F, float) X(dqkv, TT * 3 * C, float)                           \
  X(dpooled, BB * C, float) X(dloss, BB * C, float)

static void free_acts(af_trainer *t) {
  const af_device *d = &t->dev;
#define FREE_ONE(ptr, n, type)                                                                     \
  af_dev_free(d, t->ptr);                                                                          \
  t->ptr = NULL;
  AF_TRAINER_ACTS(FREE_ONE)
#undef FREE_ONE
  free(t->pos_host);
  free(t->gtok_host);
  free(t->ids_host);
  free(t->cu_host);
  t->pos_host = t->gtok_host = t->ids_host = t->cu_host = NULL;
  t->cap_T = t->cap_B = 0;
  t->cap_probs = 0;
  t->have_fwd = 0;
}

static af_status reserve(af_trainer *t, int T, int B, int64_t n_probs, af_error *err) {
  if (T <= t->cap_T && B <= t->cap_B && n_probs <= t->cap_probs)
    return AF_OK;
  int nT = T > t->cap_T ? T + T / 4 : t->cap_T, nB = B > t->cap_B ? B + B / 4 : t->cap_B;
  int64_t nP = n_probs > t->cap_probs ? n_probs + n_probs / 4 : t->cap_probs;
  free_acts(t);
  const af_device *d = &t->dev;
  const size_t C = (size_t)t->m->cfg.hidden_size, F = (size_t)t->m->cfg.intermediate_size;
  const size_t L = (size_t)t->m->cfg.num_layers, TT = (size_t)nT, BB = (size_t)nB;
  const size_t PP = (size_t)nP;
  af_status st = AF_OK;
#define ALLOC_ONE(ptr, n, type)                                                                    \
  if (st == AF_OK)                                                                                 \
    st = af_dev_alloc(d, (n) * sizeof(type), (void **)&t->ptr, err);
  AF_TRAINER_ACTS(ALLOC_ONE)
#undef ALLOC_ONE
  if (st == AF_OK && (!(t->pos_host = af_malloc(TT, sizeof(int32_t), err)) ||
                      !(t->gtok_host = af_malloc(TT, sizeof(int32_t), err)) ||
                      !(t->ids_host = af_malloc(TT, sizeof(int32_t), err)) ||
                      !(t->cu_host = af_malloc(BB + 1, sizeof(int32_t), err))))
    st = AF_ERR_NOMEM;
  if (st != AF_OK) {
    free_acts(t);
    return st;
  }
  t->cap_T = nT;
  t->cap_B = nB;
  t->cap_probs = nP;
  return AF_OK;
}

static af_status check_config(const af_train_config *c, af_error *err) {
  if (!(c->dropout >= 0.0f && c->dropout < 1.0f) ||
      !(c->attn_dropout >= 0.0f && c->attn_dropout < 1.0f))
    return af_error_set(err, AF_ERR_ARG, "dropout %g and attention dropout %g must be in [0, 1)",
                        c->dropout, c->attn_dropout);
  if (!(c->scale > 0.0f) || !isfinite(c->scale))
    return af_error_set(err, AF_ERR_ARG, "loss scale %g must be positive", c->scale);
  if (!(c->lr >= 0.0) || !isfinite(c->lr))
    return af_error_set(err, AF_ERR_ARG, "learning rate %g must be >= 0", c->lr);
  if (c->warmup < 0 || c->total_steps < 1)
    return af_error_set(err, AF_ERR_ARG, "warmup %lld must be >= 0 and total steps %lld >= 1",
                        (long long)c->warmup, (long long)c->total_steps);
  if (c->grad_accum < 1 || c->batch < 1)
    return af_error_set(err, AF_ERR_ARG, "batch %d and grad_accum %d must be >= 1", c->batch,
                        c->grad_accum);
  if (!isfinite(c->max_grad_norm) || !(c->adamw.beta1 >= 0 && c->adamw.beta1 < 1) ||
      !(c->adamw.beta2 >= 0 && c->adamw.beta2 < 1) || !(c->adamw.eps > 0) ||
      !(c->adamw.weight_decay >= 0))
    return af_error_set(err, AF_ERR_ARG, "invalid AdamW settings or gradient-norm limit");
  return AF_OK;
}

/* The fused AdamW's table: every trained tensor with its decay flag. */
static af_status make_table(af_trainer *t, af_error *err) {
  const af_model *m = t->m;
  t->table = af_malloc((size_t)m->n_params, sizeof *t->table, err);
  if (!t->table)
    return AF_ERR_NOMEM;
  for (int i = 0; i < m->n_params; i++) {
    const af_param_info *p = &m->params[i];
    if (af_trainer_param_trained(p->name))
      t->table[t->n_table++] =
          (af_adamw_tensor){.offset = p->offset, .numel = p->numel, .decay = af_param_decays(p->name)};
  }
  return AF_OK;
}

/* Each layer's range of the parameter buffer, from the names
 * "encoder.layer.<l>.*" (contiguous in the table: nn/model.c). */
static af_status make_buckets(af_trainer *t, af_error *err) {
  const af_model *m = t->m;
  const int L = m->cfg.num_layers;
  t->layer_lo = af_malloc((size_t)L, sizeof(int64_t), err);
  t->layer_hi = t->layer_lo ? af_malloc((size_t)L, sizeof(int64_t), err) : NULL;
  if (!t->layer_hi)
    return AF_ERR_NOMEM;
  int64_t in_layers = 0;
  for (int l = 0; l < L; l++) {
    char pre[32];
    const int np = snprintf(pre, sizeof pre, "encoder.layer.%d.", l);
    t->layer_lo[l] = m->n_floats;
    t->layer_hi[l] = 0;
    for (int i = 0; i < m->n_params; i++) {
      const af_param_info *p = &m->params[i];
      if (strncmp(p->name, pre, (size_t)np) != 0)
        continue;
      t->layer_lo[l] = p->offset < t->layer_lo[l] ? p->offset : t->layer_lo[l];
      t->layer_hi[l] = p->offset + p->numel > t->layer_hi[l] ? p->offset + p->numel : t->layer_hi[l];
      in_layers += p->numel;
    }
  }
  t->buckets_ok = L > 0 && in_layers == t->layer_hi[L - 1] - t->layer_lo[0];
  for (int l = 0; l + 1 < L; l++)
    t->buckets_ok &= t->layer_hi[l] == t->layer_lo[l + 1];
  return AF_OK;
}

/* Parameters (uploaded), zeroed gradients and moments on the device. */
static af_status alloc_state(af_trainer *t, af_error *err) {
  const af_device *d = &t->dev;
  const size_t bytes = sizeof(float) * (size_t)t->m->n_floats;
  if (d->backend == AF_BACKEND_CPU) {
    t->params = t->m->data;
  } else {
    AF_TRY(af_dev_alloc(d, bytes, (void **)&t->params, err));
    AF_TRY(af_dev_upload(d, t->params, t->m->data, bytes, err));
  }
  float **bufs[] = {&t->grad, &t->m1, &t->m2};
  for (int i = 0; i < 3; i++) {
    AF_TRY(af_dev_alloc(d, bytes, (void **)bufs[i], err));
    AF_TRY(af_dev_zero(d, *bufs[i], bytes, err));
  }
  if (af_device_is_bf16(d) && af_op_has_linear_w16(d)) {
    const int64_t n = t->m->n_floats;
    AF_TRY(af_dev_alloc(d, sizeof(uint16_t) * (size_t)n, (void **)&t->work, err));
    AF_TRY(af_op_cast_bf16(d, t->work, t->params, n, err));
  }
  return af_dev_sync(d, err);
}

af_status af_trainer_create(af_model *m, const af_device *dev, const af_train_config *cfg,
                            af_trainer **out, af_error *err) {
  *out = NULL;
  if (!af_backward_supported(dev))
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "training: the device's backend lacks the training ops");
  AF_TRY(check_config(cfg, err));
  af_trainer *t = af_calloc(1, sizeof *t, err);
  if (!t)
    return AF_ERR_NOMEM;
  t->m = m;
  t->dev = *dev;
  t->cfg = *cfg;
  af_status st = make_table(t, err);
  if (st == AF_OK)
    st = make_buckets(t, err);
  if (st == AF_OK)
    st = alloc_state(t, err);
  if (st != AF_OK) {
    af_trainer_free(t);
    return st;
  }
  *out = t;
  return AF_OK;
}

void af_trainer_free(af_trainer *t) {
  if (!t)
    return;
  free_acts(t);
  free(t->gtok);
  free(t->gprob);
  free(t->table);
  free(t->layer_lo);
  free(t->layer_hi);
  af_dev_free(&t->dev, t->grad);
  af_dev_free(&t->dev, t->m1);
  af_dev_free(&t->dev, t->m2);
  af_dev_free(&t->dev, t->work);
  if (t->params && t->params != t->m->data)
    af_dev_free(&t->dev, t->params);
  free(t);
}

const af_train_config *af_trainer_config(const af_trainer *t) { return &t->cfg; }
int64_t af_trainer_steps_done(const af_trainer *t) { return t->steps; }
af_model *af_trainer_model(const af_trainer *t) { return t->m; }
const af_device *af_trainer_device(const af_trainer *t) { return &t->dev; }
float *af_trainer_grad(af_trainer *t) { return t->grad; }
float *af_trainer_moment1(af_trainer *t) { return t->m1; }
float *af_trainer_moment2(af_trainer *t) { return t->m2; }
float *af_trainer_params(af_trainer *t) { return t->params; }
const uint16_t *af_trainer_work_bf16(const af_trainer *t) { return t->work; }
void af_trainer_set_steps_done(af_trainer *t, int64_t steps) { t->steps = steps; }
af_status af_trainer_set_total_steps(af_trainer *t, int64_t total, af_error *err) {
  if (total < 1 || total < t->steps)
    return af_error_set(err, AF_ERR_ARG, "total steps %lld below the %lld steps done",
                        (long long)total, (long long)t->steps);
  t->cfg.total_steps = total;
  return AF_OK;
}
af_status af_trainer_zero_grad(af_trainer *t, af_error *err) {
  return af_dev_zero(&t->dev, t->grad, sizeof(float) * (size_t)t->m->n_floats, err);
}

af_status af_trainer_sync_host(af_trainer *t, af_error *err) {
  if (t->params == t->m->data)
    return AF_OK;
  return af_dev_download(&t->dev, t->m->data, t->params, sizeof(float) * (size_t)t->m->n_floats,
                         err);
}

af_status af_trainer_read_state(const af_trainer *t, float *grad, float *m1, float *m2,
                                af_error *err) {
  const size_t bytes = sizeof(float) * (size_t)t->m->n_floats;
  const float *src[3] = {t->grad, t->m1, t->m2};
  float *dst[3] = {grad, m1, m2};
  for (int i = 0; i < 3; i++)
    if (dst[i])
      AF_TRY(af_dev_download(&t->dev, dst[i], src[i], bytes, err));
  return AF_OK;
}

af_status af_trainer_write_moments(af_trainer *t, const float *m1, const float *m2,
                                   af_error *err) {
  const size_t bytes = sizeof(float) * (size_t)t->m->n_floats;
  if (m1 != t->m1)
    AF_TRY(af_dev_upload(&t->dev, t->m1, m1, bytes, err));
  if (m2 != t->m2)
    AF_TRY(af_dev_upload(&t->dev, t->m2, m2, bytes, err));
  return AF_OK;
}

/* The device address of a host parameter pointer (a weight of m->w). */
static const float *W(const af_trainer *t, const float *host) {
  return t->params + (host - t->m->data);
}

/* The linear layer of weight w, bias b (host pointers of m->w): on the bf16
 * working copy when the trainer keeps one, else on the fp32 parameters. */
static af_status lin_fwd(const af_trainer *t, float *out, const float *inp, const float *w,
                         const float *b, int N, int IC, int OC, af_error *err) {
  if (t->work)
    return af_op_linear_forward_w16(&t->dev, out, inp, t->work + (w - t->m->data), W(t, b), N, IC,
                                    OC, err);
  return af_op_linear_forward(&t->dev, out, inp, W(t, w), W(t, b), N, IC, OC, err);
}

/* The gradient of a parameter pointer. */
static float *G(const af_trainer *t, const float *param) { return t->grad + (param - t->m->data); }

/* dinp += dout w; the gradients of w and b (host pointers of m->w) +=. */
static af_status lin_bwd(const af_trainer *t, float *dinp, const float *dout, const float *inp,
                         const float *w, const float *b, int N, int IC, int OC, af_error *err) {
  if (t->work)
    return af_op_linear_backward_w16(&t->dev, dinp, G(t, w), G(t, b), dout, inp,
                                     t->work + (w - t->m->data), N, IC, OC, err);
  return af_op_linear_backward(&t->dev, dinp, G(t, w), G(t, b), dout, inp, W(t, w), N, IC, OC,
                               err);
}

static uint64_t stream_of(const af_trainer *t, int site) {
  return t->micro * AF_TRAIN_DROPOUT_SITES(t->m->cfg.num_layers) + (uint64_t)site;
}

af_status af_trainer_set_layout(af_trainer *t, const int32_t *gtok, const int64_t *gprob, int B,
                                af_error *err) {
  if (!gtok) {
    free(t->gtok);
    free(t->gprob);
    t->gtok = NULL;
    t->gprob = NULL;
    t->layout_cap = 0;
    return AF_OK;
  }
  if (B > t->layout_cap) {
    int32_t *a = af_realloc(t->gtok, (size_t)B, sizeof *a, err);
    if (!a)
      return AF_ERR_NOMEM;
    t->gtok = a;
    int64_t *b = af_realloc(t->gprob, (size_t)B, sizeof *b, err);
    if (!b)
      return AF_ERR_NOMEM;
    t->gprob = b;
    t->layout_cap = B;
  }
  memcpy(t->gtok, gtok, sizeof *gtok * (size_t)B);
  memcpy(t->gprob, gprob, sizeof *gprob * (size_t)B);
  return AF_OK;
}

/* Hidden dropout of x (T, C) in place at a site: the op over the whole batch,
 * or, for a rank's share of a global batch, the masks of the global positions. */
static af_status drop_fwd(const af_trainer *t, float *x, int site, af_error *err) {
  const int C = t->m->cfg.hidden_size;
  if (!t->have_layout)
    return af_op_dropout_forward(&t->dev, x, x, (int64_t)t->T * C, t->cfg.dropout, t->cfg.seed,
                                 stream_of(t, site), err);
  return af_op_dropout_tokens_forward(&t->dev, x, t->gtok_dev, t->T, C, t->cfg.dropout,
                                      t->cfg.seed, stream_of(t, site), err);
}

/* dinp (T, C) += mask ⊙ dout / (1 - p), the backward of drop_fwd. */
static af_status drop_bwd(const af_trainer *t, float *dinp, const float *dout, int site,
                          af_error *err) {
  const int C = t->m->cfg.hidden_size;
  if (!t->have_layout)
    return af_op_dropout_backward(&t->dev, dinp, dout, (int64_t)t->T * C, t->cfg.dropout,
                                  t->cfg.seed, stream_of(t, site), err);
  return af_op_dropout_tokens_backward(&t->dev, dinp, dout, t->gtok_dev, t->T, C,
                                       t->cfg.dropout, t->cfg.seed, stream_of(t, site), err);
}

/* The batch onto the device: ids, positions, cu_seqlens and, for a share of
 * a global batch, each token's global index and each sequence's first
 * global attention probability. */
static af_status upload_batch(af_trainer *t, const af_batch *b, af_error *err) {
  const af_device *d = &t->dev;
  for (int i = 0; i < b->B; i++)
    for (int k = b->cu_seqlens[i]; k < b->cu_seqlens[i + 1]; k++) {
      t->pos_host[k] = k - b->cu_seqlens[i];
      if (t->gtok)
        t->gtok_host[k] = t->gtok[i] + (k - b->cu_seqlens[i]);
    }
  memcpy(t->ids_host, b->ids, sizeof(int32_t) * (size_t)b->T);
  memcpy(t->cu_host, b->cu_seqlens, sizeof(int32_t) * (size_t)(b->B + 1));
  AF_TRY(af_dev_upload(d, t->ids, b->ids, sizeof(int32_t) * (size_t)b->T, err));
  AF_TRY(af_dev_upload(d, t->pos, t->pos_host, sizeof(int32_t) * (size_t)b->T, err));
  AF_TRY(af_dev_upload(d, t->cu, b->cu_seqlens, sizeof(int32_t) * (size_t)(b->B + 1), err));
  t->have_layout = 0;
  if (!t->gtok)
    return AF_OK;
  if (b->B > t->layout_cap)
    return af_error_set(err, AF_ERR_ARG, "batch of %d sequences, layout of %d", b->B,
                        t->layout_cap);
  AF_TRY(af_dev_upload(d, t->gtok_dev, t->gtok_host, sizeof(int32_t) * (size_t)b->T, err));
  AF_TRY(af_dev_upload(d, t->gprob_dev, t->gprob, sizeof(int64_t) * (size_t)b->B, err));
  t->have_layout = 1;
  return AF_OK;
}

/* One layer's training forward: xin[l] -> xin[l + 1], keeping what the
 * backward needs. */
static af_status layer_forward(af_trainer *t, int l, af_error *err) {
  const af_model_config *c = &t->m->cfg;
  const af_layer_params *lp = &t->m->w.layers[l];
  const af_device *d = &t->dev;
  const int T = t->T, B = t->B, C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C, TF = (size_t)T * F;
  const float p = t->cfg.dropout;
  const float *inp = t->xin + (size_t)l * TC; // (T, C)
  float *qkv = t->qkv + (size_t)l * 3 * TC;    // (T, 3C)
  float *probs = t->probs + (size_t)l * (size_t)t->n_probs;
  float *att = t->att + (size_t)l * TC, *h1 = t->h1 + (size_t)l * TC; // (T, C)
  float *x1 = t->x1 + (size_t)l * TC, *h2 = t->h2 + (size_t)l * TC;   // (T, C)
  float *fcpre = t->fcpre + (size_t)l * TF, *gl = t->gelu + (size_t)l * TF; // (T, F)
  float *outp = t->xin + (size_t)(l + 1) * TC; // (T, C)
  AF_TRY(lin_fwd(t, qkv, inp, lp->qkv_w, lp->qkv_b, T, C, 3 * C, err));
  AF_TRY(af_op_attention_forward(d, att, probs, qkv, t->cu, B, C, NH, err));
  if (t->cfg.attn_dropout > 0)
    AF_TRY(af_op_attention_dropout_forward(d, att, probs, qkv, t->cu, B, C, NH,
                                           t->cfg.attn_dropout, t->cfg.seed,
                                           stream_of(t, 1 + 3 * l),
                                           t->have_layout ? t->gprob_dev : NULL, t->cu_host, err));
  // h1 = dropout(att W_o^T + b_o) + inp;  x1 = LN1(h1)
  AF_TRY(lin_fwd(t, h1, att, lp->ao_w, lp->ao_b, T, C, C, err));
  if (p > 0)
    AF_TRY(drop_fwd(t, h1, 2 + 3 * l, err));
  AF_TRY(af_op_add_forward(d, h1, h1, inp, (int64_t)TC, err));
  AF_TRY(af_op_layernorm_forward(d, x1, t->ln1_mean + (size_t)l * T, t->ln1_rstd + (size_t)l * T,
                                 h1, W(t, lp->ln1_w), W(t, lp->ln1_b), T, C, c->layer_norm_eps,
                                 err));
  // gelu = GELU(x1 W_fc^T + b_fc)
  AF_TRY(lin_fwd(t, fcpre, x1, lp->fc_w, lp->fc_b, T, C, F, err));
  AF_TRY(af_op_gelu_forward(d, gl, fcpre, (int64_t)TF, err));
  // h2 = dropout(gelu W_p^T + b_p) + x1;  out = LN2(h2)
  AF_TRY(lin_fwd(t, h2, gl, lp->proj_w, lp->proj_b, T, F, C, err));
  if (p > 0)
    AF_TRY(drop_fwd(t, h2, 3 + 3 * l, err));
  AF_TRY(af_op_add_forward(d, h2, h2, x1, (int64_t)TC, err));
  return af_op_layernorm_forward(d, outp, t->ln2_mean + (size_t)l * T, t->ln2_rstd + (size_t)l * T,
                                 h2, W(t, lp->ln2_w), W(t, lp->ln2_b), T, C, c->layer_norm_eps,
                                 err);
}

/* The training forward into the device's t->out (B, C). */
static af_status forward_device(af_trainer *t, const af_batch *b, uint64_t micro, af_error *err) {
  const af_model_config *c = &t->m->cfg;
  AF_TRY(af_batch_check(c, b, err));
  const int64_t n_probs = af_attention_probs_size(b->cu_seqlens, b->B, c->num_heads);
  AF_TRY(reserve(t, b->T, b->B, n_probs, err));
  const af_model_weights *w = &t->m->w;
  const af_device *d = &t->dev;
  const int T = b->T, B = b->B, C = c->hidden_size;
  t->T = T;
  t->B = B;
  t->micro = micro;
  t->n_probs = n_probs;
  AF_TRY(upload_batch(t, b, err));

  // xin[0] (T, C) = dropout(LayerNorm(wte[ids] + wpe[pos] + wtt[0]))
  AF_TRY(af_op_embedding_forward(d, t->emb, t->ids, t->pos, NULL, W(t, w->wte), W(t, w->wpe),
                                 W(t, w->wtt), T, C, err));
  AF_TRY(af_op_layernorm_forward(d, t->xin, t->emb_mean, t->emb_rstd, t->emb, W(t, w->ln_w),
                                 W(t, w->ln_b), T, C, c->layer_norm_eps, err));
  if (t->cfg.dropout > 0)
    AF_TRY(drop_fwd(t, t->xin, 0, err));
  for (int l = 0; l < c->num_layers; l++)
    AF_TRY(layer_forward(t, l, err));
  const float *last = t->xin + (size_t)c->num_layers * T * C; // (T, C)
  // pooled (B, C); out (B, C)
  if (c->pooling == AF_POOL_CLS)
    AF_TRY(af_op_cls_pool_forward(d, t->pooled, last, t->cu, B, C, err));
  else
    AF_TRY(af_op_mean_pool_forward(d, t->pooled, last, t->cu, B, C, err));
  if (c->normalize)
    AF_TRY(af_op_l2norm_forward(d, t->out, t->norms, t->pooled, B, C, err));
  else
    AF_TRY(af_dev_copy(d, t->out, t->pooled, sizeof(float) * (size_t)B * C, err));
  t->have_fwd = 1;
  return AF_OK;
}

af_status af_trainer_forward(af_trainer *t, const af_batch *b, uint64_t micro, float *out,
                             af_error *err) {
  AF_TRY(forward_device(t, b, micro, err));
  const size_t bytes = sizeof(float) * (size_t)t->B * t->m->cfg.hidden_size;
  return af_dev_download(&t->dev, out, t->out, bytes, err);
}

/* One layer's backward: d xin[l + 1] in t->dx -> d xin[l] in t->dx. */
static af_status layer_backward(af_trainer *t, int l, af_error *err) {
  const af_model_config *c = &t->m->cfg;
  const af_layer_params *lp = &t->m->w.layers[l];
  const af_device *d = &t->dev;
  const int T = t->T, B = t->B, C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C, TF = (size_t)T * F;
  const size_t bC = sizeof(float) * TC, bF = sizeof(float) * TF;
  const float *inp = t->xin + (size_t)l * TC;
  const float *qkv = t->qkv + (size_t)l * 3 * TC;
  const float *probs = t->probs + (size_t)l * (size_t)t->n_probs;
  const float *att = t->att + (size_t)l * TC, *h1 = t->h1 + (size_t)l * TC;
  const float *x1 = t->x1 + (size_t)l * TC, *h2 = t->h2 + (size_t)l * TC;
  const float *fcpre = t->fcpre + (size_t)l * TF, *gl = t->gelu + (size_t)l * TF;
  // out = LN2(h2): dh = d h2
  AF_TRY(af_dev_zero(d, t->dh, bC, err));
  AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, lp->ln2_w), G(t, lp->ln2_b), t->dx, h2,
                                  W(t, lp->ln2_w), t->ln2_mean + (size_t)l * T,
                                  t->ln2_rstd + (size_t)l * T, T, C, err));
  // h2 = dropout(proj) + x1: dx (= d x1) gets dh through the residual
  AF_TRY(af_dev_copy(d, t->dx, t->dh, bC, err));
  AF_TRY(af_dev_zero(d, t->dtmp, bC, err));
  AF_TRY(drop_bwd(t, t->dtmp, t->dh, 3 + 3 * l, err));
  // proj = gelu W_p^T + b_p
  AF_TRY(af_dev_zero(d, t->dF1, bF, err));
  AF_TRY(lin_bwd(t, t->dF1, t->dtmp, gl, lp->proj_w, lp->proj_b, T, F, C, err));
  AF_TRY(af_dev_zero(d, t->dF2, bF, err));
  AF_TRY(af_op_gelu_backward(d, t->dF2, t->dF1, fcpre, (int64_t)TF, err));
  // fcpre = x1 W_fc^T + b_fc
  AF_TRY(lin_bwd(t, t->dx, t->dF2, x1, lp->fc_w, lp->fc_b, T, C, F, err));
  // x1 = LN1(h1)
  AF_TRY(af_dev_zero(d, t->dh, bC, err));
  AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, lp->ln1_w), G(t, lp->ln1_b), t->dx, h1,
                                  W(t, lp->ln1_w), t->ln1_mean + (size_t)l * T,
                                  t->ln1_rstd + (size_t)l * T, T, C, err));
  // h1 = dropout(att W_o^T + b_o) + inp
  AF_TRY(af_dev_copy(d, t->dx, t->dh, bC, err));
  AF_TRY(af_dev_zero(d, t->dtmp, bC, err));
  AF_TRY(drop_bwd(t, t->dtmp, t->dh, 2 + 3 * l, err));
  AF_TRY(af_dev_zero(d, t->datt, bC, err));
  AF_TRY(lin_bwd(t, t->datt, t->dtmp, att, lp->ao_w, lp->ao_b, T, C, C, err));
  AF_TRY(af_dev_zero(d, t->dqkv, 3 * bC, err));
  if (t->cfg.attn_dropout > 0)
    AF_TRY(af_op_attention_dropout_backward(d, t->dqkv, t->datt, qkv, probs, t->cu, B, C, NH,
                                            t->cfg.attn_dropout, t->cfg.seed,
                                            stream_of(t, 1 + 3 * l),
                                            t->have_layout ? t->gprob_dev : NULL, t->cu_host, err));
  else
    AF_TRY(af_op_attention_backward(d, t->dqkv, t->datt, qkv, probs, t->cu, B, C, NH, t->cu_host,
                                    err));
  return lin_bwd(t, t->dx, t->dqkv, inp, lp->qkv_w, lp->qkv_b, T, C, 3 * C, err);
}

/* Queues the all-reduce of grad [lo, hi) after the backward queued so far. */
static af_status reduce_range(af_trainer *t, int64_t lo, int64_t hi, af_error *err) {
  if (hi <= lo)
    return AF_OK;
  void *q = NULL;
  AF_TRY(af_dev_stream(&t->dev, &q, err));
  return af_comm_allreduce_sum_f32_device_async(t->reduce_comm, t->grad + lo, hi - lo, q, err);
}

int af_trainer_can_overlap_reduce(const af_trainer *t, af_comm *comm) {
  return comm && af_comm_size(comm) > 1 && af_comm_backend_of(comm) == AF_COMM_NCCL &&
         t->dev.backend != AF_BACKEND_CPU && t->buckets_ok;
}

af_status af_trainer_reduce_in_backward(af_trainer *t, af_comm *comm, af_error *err) {
  if (comm && !af_trainer_can_overlap_reduce(t, comm))
    return af_error_set(err, AF_ERR_UNSUPPORTED, "the bucketed gradient all-reduce needs a GPU "
                        "trainer and the nccl backend with several ranks");
  t->reduce_comm = comm;
  return AF_OK;
}

/* The backward from d loss / d out already in the device's t->dloss (B, C). */
static af_status backward_device(af_trainer *t, af_error *err) {
  const af_model_config *c = &t->m->cfg;
  const af_model_weights *w = &t->m->w;
  const af_device *d = &t->dev;
  const int T = t->T, B = t->B, C = c->hidden_size;
  const size_t bC = sizeof(float) * (size_t)T * C, bB = sizeof(float) * (size_t)B * C;
  // dpooled (B, C)
  if (c->normalize) {
    AF_TRY(af_dev_zero(d, t->dpooled, bB, err));
    AF_TRY(af_op_l2norm_backward(d, t->dpooled, t->dloss, t->out, t->norms, B, C, err));
  } else {
    AF_TRY(af_dev_copy(d, t->dpooled, t->dloss, bB, err));
  }
  // dx (T, C): gradient at the last hidden state
  AF_TRY(af_dev_zero(d, t->dx, bC, err));
  if (c->pooling == AF_POOL_CLS)
    AF_TRY(af_op_cls_pool_backward(d, t->dx, t->dpooled, t->cu, B, C, err));
  else
    AF_TRY(af_op_mean_pool_backward(d, t->dx, t->dpooled, t->cu, B, C, err));
  for (int l = c->num_layers - 1; l >= 0; l--) {
    AF_TRY(layer_backward(t, l, err));
    if (t->reduce_comm) // layer l's gradient is final: reduce it while the rest runs
      AF_TRY(reduce_range(t, t->layer_lo[l], t->layer_hi[l], err));
  }
  // xin[0] = dropout(LN(emb))
  AF_TRY(af_dev_zero(d, t->dtmp, bC, err));
  AF_TRY(drop_bwd(t, t->dtmp, t->dx, 0, err));
  AF_TRY(af_dev_zero(d, t->dh, bC, err));
  AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, w->ln_w), G(t, w->ln_b), t->dtmp, t->emb,
                                  W(t, w->ln_w), t->emb_mean, t->emb_rstd, T, C, err));
  AF_TRY(af_op_embedding_backward(d, G(t, w->wte), G(t, w->wpe), G(t, w->wtt), t->dh, t->ids,
                                  t->pos, NULL, T, C, t->ids_host, t->pos_host, err));
  t->have_fwd = 0;
  if (t->reduce_comm) { // the rest: embeddings before the layers, pooler after
    AF_TRY(reduce_range(t, 0, t->layer_lo[0], err));
    AF_TRY(reduce_range(t, t->layer_hi[c->num_layers - 1], t->m->n_floats, err));
  }
  return AF_OK;
}

af_status af_trainer_backward(af_trainer *t, const float *dout, af_error *err) {
  if (!t->have_fwd)
    return af_error_set(err, AF_ERR_INTERNAL, "af_trainer_backward without a forward pass");
  const size_t bytes = sizeof(float) * (size_t)t->B * t->m->cfg.hidden_size;
  AF_TRY(af_dev_upload(&t->dev, t->dloss, dout, bytes, err));
  return backward_device(t, err);
}

af_status af_trainer_accumulate(af_trainer *t, const af_batch *pairs, uint64_t micro, float *loss,
                                af_error *err) {
  if (pairs->B < 2 || pairs->B % 2 != 0)
    return af_error_set(err, AF_ERR_ARG, "a pair batch needs an even number of sequences (got %d)",
                        pairs->B);
  const int B = pairs->B / 2, C = t->m->cfg.hidden_size;
  AF_TRY(forward_device(t, pairs, micro, err));
  // out (2B, C): anchors then positives -> dloss (2B, C), on the device
  const size_t BC = (size_t)B * C;
  AF_TRY(af_op_mnr_loss(&t->dev, t->out, t->out + BC, B, C, t->cfg.scale, t->cfg.symmetric, loss,
                        t->dloss, t->dloss + BC, err));
  return backward_device(t, err);
}

/* The squared global norm of the summed gradient: af_grad_sumsq per trained
 * tensor, added in table order (the same bits on every backend), in one
 * device reduction with one host synchronisation (af_op_grad_sumsq_table). */
static af_status grad_sumsq(const af_trainer *t, double *ss, af_error *err) {
  return af_op_grad_sumsq_table(&t->dev, t->grad, t->table, t->n_table, ss, err);
}

af_status af_trainer_step(af_trainer *t, int n_micro, double *lr_out, double *norm_out,
                          af_error *err) {
  if (n_micro < 1)
    return af_error_set(err, AF_ERR_ARG, "optimizer step over %d micro-batches", n_micro);
  double ss = 0;
  AF_TRY(grad_sumsq(t, &ss, err));
  const double accum_scale = 1.0 / n_micro;
  const double norm = accum_scale * sqrt(ss);
  if (!isfinite(norm))
    return af_error_set(err, AF_ERR_INTERNAL,
                        "gradient norm is not finite at step %lld (diverged; lower --lr)",
                        (long long)t->steps + 1);
  const float gs = (float)accum_scale * af_clip_coef(norm, t->cfg.max_grad_norm);
  const double lr = af_lr_linear_warmup(t->cfg.lr, t->steps, t->cfg.warmup, t->cfg.total_steps);
  const af_adamw_op_scalars s = af_adamw_op_scalars_of(&t->cfg.adamw, lr, t->steps + 1, gs);
  AF_TRY(af_op_adamw_step(&t->dev, t->params, t->grad, t->m1, t->m2, t->work, t->table,
                          t->n_table, &s, err));
  t->steps++;
  AF_TRY(af_trainer_zero_grad(t, err));
  AF_TRY(af_dev_sync(&t->dev, err));
  if (lr_out)
    *lr_out = lr;
  if (norm_out)
    *norm_out = norm;
  return AF_OK;
}
