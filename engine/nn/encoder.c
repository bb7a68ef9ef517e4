/* The encoder forward pass over packed batches, on any backend of the op
 * interface. Parameters live on the device (the model's host buffer itself on
 * the CPU); activations are sized for the largest batch seen so far, so memory
 * is bounded by the batch, never by the catalog. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

struct af_encoder {
  const af_model *m;
  af_device dev;
  float *params; /* (n_floats) on the device; == m->data on the CPU */
  /* activations, capacity cap_T tokens / cap_B sequences */
  int cap_T, cap_B;
  int32_t *ids, *pos, *cu; /* (T), (T), (B + 1) */
  float *x, *qkv, *att, *h, *ffn, *pooled; /* (T,C) (T,3C) (T,C) (T,C) (T,F) (B,C) */
  int32_t *pos_host;       /* (T) */
};

/* The device address of a host parameter pointer. */
static const float *P(const af_encoder *e, const float *host) {
  return e->params + (host - e->m->data);
}

static void free_activations(af_encoder *e) {
  const af_device *d = &e->dev;
  af_dev_free(d, e->ids);
  af_dev_free(d, e->pos);
  af_dev_free(d, e->cu);
  af_dev_free(d, e->x);
  af_dev_free(d, e->qkv);
  af_dev_free(d, e->att);
  af_dev_free(d, e->h);
  af_dev_free(d, e->ffn);
  af_dev_free(d, e->pooled);
  free(e->pos_host);
  e->ids = e->pos = e->cu = e->pos_host = NULL;
  e->x = e->qkv = e->att = e->h = e->ffn = e->pooled = NULL;
  e->cap_T = e->cap_B = 0;
}

static af_status reserve(af_encoder *e, int T, int B, af_error *err) {
  if (T <= e->cap_T && B <= e->cap_B)
    return AF_OK;
  int nT = T > e->cap_T ? T + T / 4 : e->cap_T, nB = B > e->cap_B ? B + B / 4 : e->cap_B;
  free_activations(e);
  const af_device *d = &e->dev;
  const size_t C = (size_t)e->m->cfg.hidden_size, F = (size_t)e->m->cfg.intermediate_size;
  struct {
    void **dst;
    size_t bytes;
  } bufs[] = {
      {(void **)&e->ids, sizeof(int32_t) * nT},     {(void **)&e->pos, sizeof(int32_t) * nT},
      {(void **)&e->cu, sizeof(int32_t) * (nB + 1)}, {(void **)&e->x, sizeof(float) * nT * C},
      {(void **)&e->qkv, sizeof(float) * nT * 3 * C}, {(void **)&e->att, sizeof(float) * nT * C},
      {(void **)&e->h, sizeof(float) * nT * C},      {(void **)&e->ffn, sizeof(float) * nT * F},
      {(void **)&e->pooled, sizeof(float) * nB * C},
  };
  af_status st = AF_OK;
  for (size_t i = 0; st == AF_OK && i < sizeof bufs / sizeof bufs[0]; i++)
    st = af_dev_alloc(d, bufs[i].bytes, bufs[i].dst, err);
  if (st == AF_OK && !(e->pos_host = af_malloc((size_t)nT, sizeof(int32_t), err)))
    st = AF_ERR_NOMEM;
  if (st != AF_OK) {
    free_activations(e);
    return st;
  }
  e->cap_T = nT;
  e->cap_B = nB;
  return AF_OK;
}

af_status af_encoder_create(const af_model *m, const af_device *dev, af_encoder **out,
                            af_error *err) {
  af_encoder *e = af_calloc(1, sizeof *e, err);
  if (!e)
    return AF_ERR_NOMEM;
  e->m = m;
  e->dev = *dev;
  if (dev->backend == AF_BACKEND_CPU) {
    e->params = m->data;
  } else {
    af_status st = af_dev_alloc(dev, sizeof(float) * (size_t)m->n_floats, (void **)&e->params, err);
    if (st == AF_OK)
      st = af_encoder_sync_params(e, err);
    if (st != AF_OK) {
      af_encoder_free(e);
      return st;
    }
  }
  *out = e;
  return AF_OK;
}

int af_encoder_hidden_size(const af_encoder *e) { return e->m->cfg.hidden_size; }

af_status af_encoder_sync_params(af_encoder *e, af_error *err) {
  if (e->dev.backend == AF_BACKEND_CPU)
    return AF_OK;
  return af_dev_upload(&e->dev, e->params, e->m->data, sizeof(float) * (size_t)e->m->n_floats,
                       err);
}

void af_encoder_free(af_encoder *e) {
  if (!e)
    return;
  free_activations(e);
  if (e->dev.backend != AF_BACKEND_CPU)
    af_dev_free(&e->dev, e->params);
  free(e);
}

static af_status check_batch(const af_encoder *e, const af_batch *b, af_error *err) {
  const af_model_config *c = &e->m->cfg;
  if (b->B < 1 || b->T < 1 || b->cu_seqlens[0] != 0 || b->cu_seqlens[b->B] != b->T)
    return af_error_set(err, AF_ERR_ARG, "malformed batch: B=%d T=%d", b->B, b->T);
  for (int i = 0; i < b->B; i++) {
    int L = b->cu_seqlens[i + 1] - b->cu_seqlens[i];
    if (L < 1 || L > c->max_position)
      return af_error_set(err, AF_ERR_ARG, "sequence %d has %d tokens (must be 1..%d)", i, L,
                          c->max_position);
  }
  for (int t = 0; t < b->T; t++)
    if (b->ids[t] < 0 || b->ids[t] >= c->vocab_size)
      return af_error_set(err, AF_ERR_ARG, "token id %d out of range [0, %d)", b->ids[t],
                          c->vocab_size);
  return AF_OK;
}

af_status af_encoder_forward(af_encoder *e, const af_batch *b, float *out, float *hidden,
                             af_error *err) {
  AF_TRY(check_batch(e, b, err));
  AF_TRY(reserve(e, b->T, b->B, err));
  const af_model_config *c = &e->m->cfg;
  const af_model_weights *w = &e->m->w;
  const af_device *d = &e->dev;
  const int T = b->T, B = b->B, C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C;

  for (int i = 0; i < B; i++)
    for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
      e->pos_host[t] = t - b->cu_seqlens[i];
  AF_TRY(af_dev_upload(d, e->ids, b->ids, sizeof(int32_t) * T, err));
  AF_TRY(af_dev_upload(d, e->pos, e->pos_host, sizeof(int32_t) * T, err));
  AF_TRY(af_dev_upload(d, e->cu, b->cu_seqlens, sizeof(int32_t) * (B + 1), err));

  // x (T, C) = LayerNorm(wte[ids] + wpe[pos] + wtt[0])
  af_op_embedding_forward(d, e->h, e->ids, e->pos, NULL, P(e, w->wte), P(e, w->wpe), P(e, w->wtt),
                          T, C);
  af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, w->ln_w), P(e, w->ln_b), T, C,
                          c->layer_norm_eps);
  if (hidden)
    AF_TRY(af_dev_download(d, hidden, e->x, sizeof(float) * TC, err));

  for (int l = 0; l < c->num_layers; l++) {
    const af_layer_params *p = &w->layers[l];
    // qkv (T, 3C) = x W_qkv^T + b_qkv
    af_op_linear_forward(d, e->qkv, e->x, P(e, p->qkv_w), P(e, p->qkv_b), T, C, 3 * C);
    // att (T, C): softmax(q k^T / sqrt(HS)) v within each sequence
    af_op_attention_forward(d, e->att, NULL, e->qkv, e->cu, B, C, NH);
    // h (T, C) = LN1(att W_o^T + b_o + x)
    af_op_linear_forward(d, e->h, e->att, P(e, p->ao_w), P(e, p->ao_b), T, C, C);
    af_op_add_forward(d, e->h, e->h, e->x, (int64_t)TC);
    af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, p->ln1_w), P(e, p->ln1_b), T, C,
                            c->layer_norm_eps);
    // ffn (T, F) = gelu(x W_fc^T + b_fc)
    af_op_linear_forward(d, e->ffn, e->x, P(e, p->fc_w), P(e, p->fc_b), T, C, F);
    af_op_gelu_forward(d, e->ffn, e->ffn, (int64_t)T * F);
    // x (T, C) = LN2(ffn W_proj^T + b_proj + x)
    af_op_linear_forward(d, e->h, e->ffn, P(e, p->proj_w), P(e, p->proj_b), T, F, C);
    af_op_add_forward(d, e->h, e->h, e->x, (int64_t)TC);
    af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, p->ln2_w), P(e, p->ln2_b), T, C,
                            c->layer_norm_eps);
    if (hidden)
      AF_TRY(af_dev_download(d, hidden + (size_t)(l + 1) * TC, e->x, sizeof(float) * TC, err));
  }

  // pooled (B, C)
  if (c->pooling == AF_POOL_CLS)
    af_op_cls_pool_forward(d, e->pooled, e->x, e->cu, B, C);
  else
    af_op_mean_pool_forward(d, e->pooled, e->x, e->cu, B, C);
  if (c->normalize)
    af_op_l2norm_forward(d, e->pooled, NULL, e->pooled, B, C);
  AF_TRY(af_dev_download(d, out, e->pooled, sizeof(float) * (size_t)B * C, err));
  return af_dev_sync(d, err);
}
