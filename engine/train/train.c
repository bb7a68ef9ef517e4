/* The training forward/backward of the encoder and the optimizer step
 * (include/affinity.h; math in docs/training.md). Every op goes through the op
 * interface and its status is checked; the trainer keeps parameters, gradients
 * and activations in host memory, so it runs on the CPU backend only for now
 * (kernels/ops_backward.h). */
#include "affinity.h"
#include "nn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/loss.h"
#include "ops_backward.h"

struct af_trainer {
  af_model *m;
  af_device dev;
  af_train_config cfg;
  float *grad, *m1, *m2; /* (n_floats) each, parallel to m->data */
  int64_t steps;
  /* activation capacity */
  int cap_T, cap_B;
  int64_t cap_probs;
  /* the last forward */
  int T, B, have_fwd;
  uint64_t micro;
  int64_t n_probs;   /* per layer */
  int32_t *pos;      /* (T) position of each token in its sequence */
  int32_t *ids, *cu; /* (T), (B + 1) copies of the batch */
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
  float *lossout;               /* (B, C) pooled output for the loss */
  /* data parallel (af_trainer_set_layout): where this rank's sequences sit in
   * the global batch, for the dropout masks; NULL when the batch is whole */
  int32_t *gtok;  /* (B) global token index of each sequence's first token */
  int64_t *gprob; /* (B) global index of each sequence's first attention probability */
  int layout_cap;
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

static void free_acts(af_trainer *t) {
  void *bufs[] = {t->pos,      t->ids,      t->cu,     t->emb,     t->emb_mean, t->emb_rstd,
                  t->xin,      t->qkv,      t->probs,  t->att,     t->h1,       t->ln1_mean,
                  t->ln1_rstd, t->x1,       t->fcpre,  t->gelu,    t->h2,       t->ln2_mean,
                  t->ln2_rstd, t->pooled,   t->out,    t->norms,   t->dx,       t->dh,
                  t->dtmp,     t->datt,     t->dF1,    t->dF2,     t->dqkv,     t->dpooled,
                  t->dloss,    t->lossout};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    free(bufs[i]);
  t->pos = t->ids = t->cu = NULL;
  t->emb = t->emb_mean = t->emb_rstd = t->xin = t->qkv = t->probs = t->att = t->h1 = NULL;
  t->ln1_mean = t->ln1_rstd = t->x1 = t->fcpre = t->gelu = t->h2 = t->ln2_mean = NULL;
  t->ln2_rstd = t->pooled = t->out = t->norms = t->dx = t->dh = t->dtmp = t->datt = NULL;
  t->dF1 = t->dF2 = t->dqkv = t->dpooled = t->dloss = t->lossout = NULL;
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
  const size_t C = (size_t)t->m->cfg.hidden_size, F = (size_t)t->m->cfg.intermediate_size;
  const size_t L = (size_t)t->m->cfg.num_layers, TT = (size_t)nT, BB = (size_t)nB;
  int ok = 1;
#define ALLOC(ptr, n, sz)                       \
  do {                                          \
    if (ok) {                                   \
      (ptr) = af_malloc((n), (sz), err);        \
      ok = (ptr) != NULL;                       \
    }                                           \
  } while (0)
  ALLOC(t->pos, TT, sizeof(int32_t));
  ALLOC(t->ids, TT, sizeof(int32_t));
  ALLOC(t->cu, BB + 1, sizeof(int32_t));
  ALLOC(t->emb, TT * C, sizeof(float));
  ALLOC(t->emb_mean, TT, sizeof(float));
  ALLOC(t->emb_rstd, TT, sizeof(float));
  ALLOC(t->xin, (L + 1) * TT * C, sizeof(float));
  ALLOC(t->qkv, L * TT * 3 * C, sizeof(float));
  ALLOC(t->probs, L * (size_t)nP, sizeof(float));
  ALLOC(t->att, L * TT * C, sizeof(float));
  ALLOC(t->h1, L * TT * C, sizeof(float));
  ALLOC(t->ln1_mean, L * TT, sizeof(float));
  ALLOC(t->ln1_rstd, L * TT, sizeof(float));
  ALLOC(t->x1, L * TT * C, sizeof(float));
  ALLOC(t->fcpre, L * TT * F, sizeof(float));
  ALLOC(t->gelu, L * TT * F, sizeof(float));
  ALLOC(t->h2, L * TT * C, sizeof(float));
  ALLOC(t->ln2_mean, L * TT, sizeof(float));
  ALLOC(t->ln2_rstd, L * TT, sizeof(float));
  ALLOC(t->pooled, BB * C, sizeof(float));
  ALLOC(t->out, BB * C, sizeof(float));
  ALLOC(t->norms, BB, sizeof(float));
  ALLOC(t->dx, TT * C, sizeof(float));
  ALLOC(t->dh, TT * C, sizeof(float));
  ALLOC(t->dtmp, TT * C, sizeof(float));
  ALLOC(t->datt, TT * C, sizeof(float));
  ALLOC(t->dF1, TT * F, sizeof(float));
  ALLOC(t->dF2, TT * F, sizeof(float));
  ALLOC(t->dqkv, TT * 3 * C, sizeof(float));
  ALLOC(t->dpooled, BB * C, sizeof(float));
  ALLOC(t->dloss, BB * C, sizeof(float));
  ALLOC(t->lossout, BB * C, sizeof(float));
#undef ALLOC
  if (!ok) { /* af_calloc failed and said so in err */
    free_acts(t);
    return AF_ERR_NOMEM;
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

af_status af_trainer_create(af_model *m, const af_device *dev, const af_train_config *cfg,
                            af_trainer **out, af_error *err) {
  *out = NULL;
  if (!af_backward_supported(dev) || dev->backend != AF_BACKEND_CPU)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "training runs on the CPU backend only");
  AF_TRY(check_config(cfg, err));
  af_trainer *t = af_calloc(1, sizeof *t, err);
  if (!t)
    return AF_ERR_NOMEM;
  t->m = m;
  t->dev = *dev;
  t->cfg = *cfg;
  t->grad = af_calloc((size_t)m->n_floats, sizeof(float), err);
  t->m1 = t->grad ? af_calloc((size_t)m->n_floats, sizeof(float), err) : NULL;
  t->m2 = t->m1 ? af_calloc((size_t)m->n_floats, sizeof(float), err) : NULL;
  if (!t->m2) {
    af_trainer_free(t);
    return AF_ERR_NOMEM;
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
  free(t->grad);
  free(t->m1);
  free(t->m2);
  free(t);
}

const af_train_config *af_trainer_config(const af_trainer *t) { return &t->cfg; }
int64_t af_trainer_steps_done(const af_trainer *t) { return t->steps; }
af_model *af_trainer_model(const af_trainer *t) { return t->m; }
float *af_trainer_grad(af_trainer *t) { return t->grad; }
float *af_trainer_moment1(af_trainer *t) { return t->m1; }
float *af_trainer_moment2(af_trainer *t) { return t->m2; }
void af_trainer_set_steps_done(af_trainer *t, int64_t steps) { t->steps = steps; }
af_status af_trainer_set_total_steps(af_trainer *t, int64_t total, af_error *err) {
  if (total < 1 || total < t->steps)
    return af_error_set(err, AF_ERR_ARG, "total steps %lld below the %lld steps done",
                        (long long)total, (long long)t->steps);
  t->cfg.total_steps = total;
  return AF_OK;
}
void af_trainer_zero_grad(af_trainer *t) {
  memset(t->grad, 0, sizeof(float) * (size_t)t->m->n_floats);
}

/* The gradient of a parameter pointer. */
static float *G(const af_trainer *t, const float *param) { return t->grad + (param - t->m->data); }

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
  if (!t->gtok)
    return af_op_dropout_forward(&t->dev, x, x, (int64_t)t->T * C, t->cfg.dropout, t->cfg.seed,
                                 stream_of(t, site), err);
  af_train_dropout_at(x, NULL, t->cu, t->B, C, t->gtok, t->cfg.dropout, t->cfg.seed,
                      stream_of(t, site));
  return AF_OK;
}

/* dinp (T, C) += mask ⊙ dout / (1 - p), the backward of drop_fwd. */
static af_status drop_bwd(const af_trainer *t, float *dinp, const float *dout, int site,
                          af_error *err) {
  const int C = t->m->cfg.hidden_size;
  if (!t->gtok)
    return af_op_dropout_backward(&t->dev, dinp, dout, (int64_t)t->T * C, t->cfg.dropout,
                                  t->cfg.seed, stream_of(t, site), err);
  af_train_dropout_at(dinp, dout, t->cu, t->B, C, t->gtok, t->cfg.dropout, t->cfg.seed,
                      stream_of(t, site));
  return AF_OK;
}

af_status af_trainer_forward(af_trainer *t, const af_batch *b, uint64_t micro, float *out,
                             af_error *err) {
  const af_model_config *c = &t->m->cfg;
  AF_TRY(af_batch_check(c, b, err));
  const int64_t n_probs = af_attention_probs_size(b->cu_seqlens, b->B, c->num_heads);
  AF_TRY(reserve(t, b->T, b->B, n_probs, err));
  const af_model_weights *w = &t->m->w;
  const af_device *d = &t->dev;
  const int T = b->T, B = b->B, C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C, TF = (size_t)T * F;
  const float p = t->cfg.dropout;
  const uint64_t seed = t->cfg.seed;
  t->T = T;
  t->B = B;
  t->micro = micro;
  t->n_probs = n_probs;
  memcpy(t->ids, b->ids, sizeof(int32_t) * (size_t)T);
  memcpy(t->cu, b->cu_seqlens, sizeof(int32_t) * (size_t)(B + 1));
  for (int i = 0; i < B; i++)
    for (int k = b->cu_seqlens[i]; k < b->cu_seqlens[i + 1]; k++)
      t->pos[k] = k - b->cu_seqlens[i];

  // xin[0] (T, C) = dropout(LayerNorm(wte[ids] + wpe[pos] + wtt[0]))
  AF_TRY(
      af_op_embedding_forward(d, t->emb, t->ids, t->pos, NULL, w->wte, w->wpe, w->wtt, T, C, err));
  AF_TRY(af_op_layernorm_forward(d, t->xin, t->emb_mean, t->emb_rstd, t->emb, w->ln_w, w->ln_b, T,
                                 C, c->layer_norm_eps, err));
  if (p > 0)
    AF_TRY(drop_fwd(t, t->xin, 0, err));

  for (int l = 0; l < c->num_layers; l++) {
    const af_layer_params *lp = &w->layers[l];
    const float *inp = t->xin + (size_t)l * TC; // (T, C)
    float *qkv = t->qkv + (size_t)l * 3 * TC;    // (T, 3C)
    float *probs = t->probs + (size_t)l * (size_t)n_probs;
    float *att = t->att + (size_t)l * TC, *h1 = t->h1 + (size_t)l * TC; // (T, C)
    float *x1 = t->x1 + (size_t)l * TC, *h2 = t->h2 + (size_t)l * TC;   // (T, C)
    float *fcpre = t->fcpre + (size_t)l * TF, *gl = t->gelu + (size_t)l * TF; // (T, F)
    float *outp = t->xin + (size_t)(l + 1) * TC; // (T, C)
    AF_TRY(af_op_linear_forward(d, qkv, inp, lp->qkv_w, lp->qkv_b, T, C, 3 * C, err));
    AF_TRY(af_op_attention_forward(d, att, probs, qkv, t->cu, B, C, NH, err));
    if (t->cfg.attn_dropout > 0)
      AF_TRY(af_op_attention_dropout_forward(d, att, probs, qkv, t->cu, B, C, NH,
                                             t->cfg.attn_dropout, seed, stream_of(t, 1 + 3 * l),
                                             t->gprob, err));
    // h1 = dropout(att W_o^T + b_o) + inp;  x1 = LN1(h1)
    AF_TRY(af_op_linear_forward(d, h1, att, lp->ao_w, lp->ao_b, T, C, C, err));
    if (p > 0)
      AF_TRY(drop_fwd(t, h1, 2 + 3 * l, err));
    AF_TRY(af_op_add_forward(d, h1, h1, inp, (int64_t)TC, err));
    AF_TRY(af_op_layernorm_forward(d, x1, t->ln1_mean + (size_t)l * T, t->ln1_rstd + (size_t)l * T,
                                   h1, lp->ln1_w, lp->ln1_b, T, C, c->layer_norm_eps, err));
    // gelu = GELU(x1 W_fc^T + b_fc)
    AF_TRY(af_op_linear_forward(d, fcpre, x1, lp->fc_w, lp->fc_b, T, C, F, err));
    AF_TRY(af_op_gelu_forward(d, gl, fcpre, (int64_t)TF, err));
    // h2 = dropout(gelu W_p^T + b_p) + x1;  out = LN2(h2)
    AF_TRY(af_op_linear_forward(d, h2, gl, lp->proj_w, lp->proj_b, T, F, C, err));
    if (p > 0)
      AF_TRY(drop_fwd(t, h2, 3 + 3 * l, err));
    AF_TRY(af_op_add_forward(d, h2, h2, x1, (int64_t)TC, err));
    AF_TRY(af_op_layernorm_forward(d, outp, t->ln2_mean + (size_t)l * T,
                                   t->ln2_rstd + (size_t)l * T, h2, lp->ln2_w, lp->ln2_b, T, C,
                                   c->layer_norm_eps, err));
  }
  const float *last = t->xin + (size_t)c->num_layers * TC; // (T, C)
  // pooled (B, C); out (B, C)
  if (c->pooling == AF_POOL_CLS)
    AF_TRY(af_op_cls_pool_forward(d, t->pooled, last, t->cu, B, C, err));
  else
    AF_TRY(af_op_mean_pool_forward(d, t->pooled, last, t->cu, B, C, err));
  if (c->normalize)
    AF_TRY(af_op_l2norm_forward(d, t->out, t->norms, t->pooled, B, C, err));
  else
    memcpy(t->out, t->pooled, sizeof(float) * (size_t)B * C);
  memcpy(out, t->out, sizeof(float) * (size_t)B * C);
  t->have_fwd = 1;
  return AF_OK;
}

af_status af_trainer_backward(af_trainer *t, const float *dout, af_error *err) {
  if (!t->have_fwd)
    return af_error_set(err, AF_ERR_INTERNAL, "af_trainer_backward without a forward pass");
  const af_model_config *c = &t->m->cfg;
  const af_model_weights *w = &t->m->w;
  const af_device *d = &t->dev;
  const int T = t->T, B = t->B, C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C, TF = (size_t)T * F, BC = (size_t)B * C;
  const uint64_t seed = t->cfg.seed;

  // dpooled (B, C)
  if (c->normalize) {
    memset(t->dpooled, 0, sizeof(float) * BC);
    AF_TRY(af_op_l2norm_backward(d, t->dpooled, dout, t->out, t->norms, B, C, err));
  } else {
    memcpy(t->dpooled, dout, sizeof(float) * BC);
  }
  // dx (T, C): gradient at the last hidden state
  memset(t->dx, 0, sizeof(float) * TC);
  if (c->pooling == AF_POOL_CLS)
    AF_TRY(af_op_cls_pool_backward(d, t->dx, t->dpooled, t->cu, B, C, err));
  else
    AF_TRY(af_op_mean_pool_backward(d, t->dx, t->dpooled, t->cu, B, C, err));

  for (int l = c->num_layers - 1; l >= 0; l--) {
    const af_layer_params *lp = &w->layers[l];
    const float *inp = t->xin + (size_t)l * TC;
    const float *qkv = t->qkv + (size_t)l * 3 * TC;
    const float *probs = t->probs + (size_t)l * (size_t)t->n_probs;
    const float *att = t->att + (size_t)l * TC, *h1 = t->h1 + (size_t)l * TC;
    const float *x1 = t->x1 + (size_t)l * TC, *h2 = t->h2 + (size_t)l * TC;
    const float *fcpre = t->fcpre + (size_t)l * TF, *gl = t->gelu + (size_t)l * TF;
    // out = LN2(h2): dh = d h2
    memset(t->dh, 0, sizeof(float) * TC);
    AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, lp->ln2_w), G(t, lp->ln2_b), t->dx, h2,
                                    lp->ln2_w, t->ln2_mean + (size_t)l * T,
                                    t->ln2_rstd + (size_t)l * T, T, C, err));
    // h2 = dropout(proj) + x1: dx (= d x1) gets dh through the residual
    memcpy(t->dx, t->dh, sizeof(float) * TC);
    memset(t->dtmp, 0, sizeof(float) * TC);
    AF_TRY(drop_bwd(t, t->dtmp, t->dh, 3 + 3 * l, err));
    // proj = gelu W_p^T + b_p
    memset(t->dF1, 0, sizeof(float) * TF);
    AF_TRY(af_op_linear_backward(d, t->dF1, G(t, lp->proj_w), G(t, lp->proj_b), t->dtmp, gl,
                                 lp->proj_w, T, F, C, err));
    memset(t->dF2, 0, sizeof(float) * TF);
    AF_TRY(af_op_gelu_backward(d, t->dF2, t->dF1, fcpre, (int64_t)TF, err));
    // fcpre = x1 W_fc^T + b_fc
    AF_TRY(af_op_linear_backward(d, t->dx, G(t, lp->fc_w), G(t, lp->fc_b), t->dF2, x1, lp->fc_w, T,
                                 C, F, err));
    // x1 = LN1(h1)
    memset(t->dh, 0, sizeof(float) * TC);
    AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, lp->ln1_w), G(t, lp->ln1_b), t->dx, h1,
                                    lp->ln1_w, t->ln1_mean + (size_t)l * T,
                                    t->ln1_rstd + (size_t)l * T, T, C, err));
    // h1 = dropout(att W_o^T + b_o) + inp
    memcpy(t->dx, t->dh, sizeof(float) * TC);
    memset(t->dtmp, 0, sizeof(float) * TC);
    AF_TRY(drop_bwd(t, t->dtmp, t->dh, 2 + 3 * l, err));
    memset(t->datt, 0, sizeof(float) * TC);
    AF_TRY(af_op_linear_backward(d, t->datt, G(t, lp->ao_w), G(t, lp->ao_b), t->dtmp, att, lp->ao_w,
                                 T, C, C, err));
    memset(t->dqkv, 0, sizeof(float) * 3 * TC);
    if (t->cfg.attn_dropout > 0)
      AF_TRY(af_op_attention_dropout_backward(d, t->dqkv, t->datt, qkv, probs, t->cu, B, C, NH,
                                              t->cfg.attn_dropout, seed, stream_of(t, 1 + 3 * l),
                                              t->gprob, err));
    else
      AF_TRY(af_op_attention_backward(d, t->dqkv, t->datt, qkv, probs, t->cu, B, C, NH, err));
    AF_TRY(af_op_linear_backward(d, t->dx, G(t, lp->qkv_w), G(t, lp->qkv_b), t->dqkv, inp,
                                 lp->qkv_w, T, C, 3 * C, err));
  }
  // xin[0] = dropout(LN(emb))
  memset(t->dtmp, 0, sizeof(float) * TC);
  AF_TRY(drop_bwd(t, t->dtmp, t->dx, 0, err));
  memset(t->dh, 0, sizeof(float) * TC);
  AF_TRY(af_op_layernorm_backward(d, t->dh, G(t, w->ln_w), G(t, w->ln_b), t->dtmp, t->emb, w->ln_w,
                                  t->emb_mean, t->emb_rstd, T, C, err));
  AF_TRY(af_op_embedding_backward(d, G(t, w->wte), G(t, w->wpe), G(t, w->wtt), t->dh, t->ids,
                                  t->pos, NULL, T, C, err));
  t->have_fwd = 0;
  return AF_OK;
}

af_status af_trainer_accumulate(af_trainer *t, const af_batch *pairs, uint64_t micro, float *loss,
                                af_error *err) {
  if (pairs->B < 2 || pairs->B % 2 != 0)
    return af_error_set(err, AF_ERR_ARG, "a pair batch needs an even number of sequences (got %d)",
                        pairs->B);
  const int B = pairs->B / 2, C = t->m->cfg.hidden_size;
  AF_TRY(reserve(t, pairs->T, pairs->B, 0, err));
  // lossout (2B, C): anchors then positives. (reserve may move buffers: forward first.)
  float *tmp = af_malloc((size_t)pairs->B * C, sizeof(float), err);
  if (!tmp)
    return AF_ERR_NOMEM;
  af_status st = af_trainer_forward(t, pairs, micro, tmp, err);
  if (st == AF_OK)
    st = af_mnr_loss(tmp, tmp + (size_t)B * C, NULL, B, 0, C, t->cfg.scale, t->cfg.symmetric, loss,
                     t->dloss, t->dloss + (size_t)B * C, NULL, err);
  if (st == AF_OK)
    st = af_trainer_backward(t, t->dloss, err);
  free(tmp);
  return st;
}

af_status af_trainer_step(af_trainer *t, int n_micro, double *lr_out, double *norm_out,
                          af_error *err) {
  if (n_micro < 1)
    return af_error_set(err, AF_ERR_ARG, "optimizer step over %d micro-batches", n_micro);
  const af_model *m = t->m;
  double ss = 0;
  for (int i = 0; i < m->n_params; i++)
    if (af_trainer_param_trained(m->params[i].name))
      ss += af_grad_sumsq(t->grad + m->params[i].offset, m->params[i].numel);
  const double accum_scale = 1.0 / n_micro;
  const double norm = accum_scale * sqrt(ss);
  if (!isfinite(norm))
    return af_error_set(err, AF_ERR_INTERNAL,
                        "gradient norm is not finite at step %lld (diverged; lower --lr)",
                        (long long)t->steps + 1);
  const float gs = (float)accum_scale * af_clip_coef(norm, t->cfg.max_grad_norm);
  const double lr = af_lr_linear_warmup(t->cfg.lr, t->steps, t->cfg.warmup, t->cfg.total_steps);
  for (int i = 0; i < m->n_params; i++) {
    const af_param_info *p = &m->params[i];
    if (!af_trainer_param_trained(p->name))
      continue;
    af_adamw_update(m->data + p->offset, t->grad + p->offset, t->m1 + p->offset, t->m2 + p->offset,
                    p->numel, lr, &t->cfg.adamw, af_param_decays(p->name), t->steps + 1, gs);
  }
  t->steps++;
  af_trainer_zero_grad(t);
  if (lr_out)
    *lr_out = lr;
  if (norm_out)
    *norm_out = norm;
  return AF_OK;
}
