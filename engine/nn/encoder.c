/* The encoder forward pass over packed batches, on any backend of the op
 * interface. Parameters live on the device (the model's host buffer itself on
 * the CPU); activations are sized for the largest batch seen so far, so memory
 * is bounded by the batch, never by the catalog.
 *
 * The async forward (af_encoder_forward_async) double-buffers a batch's
 * inputs and pooled output in two slots, and runs its copies on the upload
 * and download queues beside the compute queue (kernels/ops.h "Queues and
 * events"), so that batch b+1's upload and batch b-1's download overlap
 * batch b's kernels. For batch b in slot s = b mod 2:
 *   upload:   wait computed[s] (batch b-2 has read the slot's inputs),
 *             ids, pos, cu -> slot s, record uploaded[s]
 *   compute:  wait uploaded[s], wait downloaded[s] (batch b-2's pooled
 *             output has been read), the forward into pooled[s],
 *             record computed[s]
 *   download: wait computed[s], pooled[s] -> out, record downloaded[s]
 * The activations between (x, qkv, ...) are one set: the compute queue runs
 * one batch after another. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

struct af_encoder {
  const af_model *m;
  af_device dev;
  float *params; /* (n_floats) on the device; == m->data on the CPU */
  af_precision precision;  /* FP32 or BF16 (resolved) */
  uint16_t *params_bf16;   /* (n_floats) bf16 copy at the same offsets, BF16 only */
  /* activations, capacity cap_T tokens / cap_B sequences */
  int cap_T, cap_B;
  struct af_encoder_slot {
    int32_t *ids, *pos, *cu; /* (T), (T), (B + 1): the batch's inputs */
    float *pooled;           /* (B, C): its output */
    af_dev_event *uploaded, *computed, *downloaded; /* the async path's order */
  } slot[2];
  int next_slot;                   /* the async path's next batch goes there */
  float *x, *qkv, *att, *h, *ffn; /* (T,C) (T,3C) (T,C) (T,C) (T,F) */
  uint16_t *xb, *attb, *ffnb; /* (T,C) (T,C) (T,F) bf16 GEMM inputs, BF16 only */
  int32_t *pos_host;       /* (T) */
};

/* The device address of a host parameter pointer. */
static const float *P(const af_encoder *e, const float *host) {
  return e->params + (host - e->m->data);
}

/* The device address of the bf16 copy of a host parameter. */
static const uint16_t *PB(const af_encoder *e, const float *host) {
  return e->params_bf16 + (host - e->m->data);
}

/* Frees the activations and both slots' buffers (not their events). The
 * caller has synced: no queued work uses them. */
static void free_activations(af_encoder *e) {
  const af_device *d = &e->dev;
  for (int s = 0; s < 2; s++) {
    struct af_encoder_slot *io = &e->slot[s];
    af_dev_free(d, io->ids);
    af_dev_free(d, io->pos);
    af_dev_free(d, io->cu);
    af_dev_free(d, io->pooled);
    io->ids = io->pos = io->cu = NULL;
    io->pooled = NULL;
  }
  af_dev_free(d, e->x);
  af_dev_free(d, e->qkv);
  af_dev_free(d, e->att);
  af_dev_free(d, e->h);
  af_dev_free(d, e->ffn);
  af_dev_free(d, e->xb);
  af_dev_free(d, e->attb);
  af_dev_free(d, e->ffnb);
  free(e->pos_host);
  e->pos_host = NULL;
  e->x = e->qkv = e->att = e->h = e->ffn = NULL;
  e->xb = e->attb = e->ffnb = NULL;
  e->cap_T = e->cap_B = 0;
}

static void free_events(af_encoder *e) {
  for (int s = 0; s < 2; s++) {
    struct af_encoder_slot *io = &e->slot[s];
    af_dev_event_free(&e->dev, io->uploaded);
    af_dev_event_free(&e->dev, io->computed);
    af_dev_event_free(&e->dev, io->downloaded);
    io->uploaded = io->computed = io->downloaded = NULL;
  }
}

static af_status create_events(af_encoder *e, af_error *err) {
  for (int s = 0; s < 2; s++) {
    struct af_encoder_slot *io = &e->slot[s];
    AF_TRY(af_dev_event_create(&e->dev, &io->uploaded, err));
    AF_TRY(af_dev_event_create(&e->dev, &io->computed, err));
    AF_TRY(af_dev_event_create(&e->dev, &io->downloaded, err));
  }
  return AF_OK;
}

static af_status reserve(af_encoder *e, int T, int B, af_error *err) {
  if (T <= e->cap_T && B <= e->cap_B)
    return AF_OK;
  if (e->cap_T > 0) // queued batches (the async path) may still use the old buffers
    AF_TRY(af_dev_sync(&e->dev, err));
  int nT = T > e->cap_T ? T + T / 4 : e->cap_T, nB = B > e->cap_B ? B + B / 4 : e->cap_B;
  free_activations(e);
  const af_device *d = &e->dev;
  const size_t C = (size_t)e->m->cfg.hidden_size, F = (size_t)e->m->cfg.intermediate_size;
  struct {
    void **dst;
    size_t bytes;
  } bufs[] = {
      {(void **)&e->slot[0].ids, sizeof(int32_t) * nT},
      {(void **)&e->slot[0].pos, sizeof(int32_t) * nT},
      {(void **)&e->slot[0].cu, sizeof(int32_t) * (nB + 1)},
      {(void **)&e->slot[0].pooled, sizeof(float) * nB * C},
      {(void **)&e->slot[1].ids, sizeof(int32_t) * nT},
      {(void **)&e->slot[1].pos, sizeof(int32_t) * nT},
      {(void **)&e->slot[1].cu, sizeof(int32_t) * (nB + 1)},
      {(void **)&e->slot[1].pooled, sizeof(float) * nB * C},
      {(void **)&e->x, sizeof(float) * nT * C},
      {(void **)&e->qkv, sizeof(float) * nT * 3 * C},
      {(void **)&e->att, sizeof(float) * nT * C},
      {(void **)&e->h, sizeof(float) * nT * C},
      {(void **)&e->ffn, sizeof(float) * nT * F},
  };
  af_status st = AF_OK;
  for (size_t i = 0; st == AF_OK && i < sizeof bufs / sizeof bufs[0]; i++)
    st = af_dev_alloc(d, bufs[i].bytes, bufs[i].dst, err);
  if (st == AF_OK && !(e->pos_host = af_malloc((size_t)nT, sizeof(int32_t), err)))
    st = AF_ERR_NOMEM;
  if (st == AF_OK && e->precision == AF_PRECISION_BF16) { // bf16 GEMM inputs
    st = af_dev_alloc(d, sizeof(uint16_t) * nT * C, (void **)&e->xb, err);
    if (st == AF_OK)
      st = af_dev_alloc(d, sizeof(uint16_t) * nT * C, (void **)&e->attb, err);
    if (st == AF_OK)
      st = af_dev_alloc(d, sizeof(uint16_t) * nT * F, (void **)&e->ffnb, err);
  }
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
  e->precision = AF_PRECISION_FP32;
  af_status st0 = create_events(e, err);
  if (st0 != AF_OK) {
    af_encoder_free(e);
    return st0;
  }
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

const af_device *af_encoder_device(const af_encoder *e) { return &e->dev; }

static af_status upload_bf16(af_encoder *e, af_error *err);

af_status af_encoder_sync_params(af_encoder *e, af_error *err) {
  if (e->params_bf16)
    AF_TRY(upload_bf16(e, err));
  if (e->dev.backend == AF_BACKEND_CPU)
    return AF_OK;
  return af_dev_upload(&e->dev, e->params, e->m->data, sizeof(float) * (size_t)e->m->n_floats,
                       err);
}

/* params_bf16 (n_floats) = bf16(m->data), rounded on the host (RNE). */
static af_status upload_bf16(af_encoder *e, af_error *err) {
  const size_t n = (size_t)e->m->n_floats;
  uint16_t *h = e->dev.backend == AF_BACKEND_CPU ? e->params_bf16
                                                 : af_malloc(n, sizeof(uint16_t), err);
  if (!h)
    return AF_ERR_NOMEM;
  af_cpu_cast_bf16(h, e->m->data, (int64_t)n);
  if (h == e->params_bf16)
    return AF_OK;
  af_status st = af_dev_upload(&e->dev, e->params_bf16, h, n * sizeof(uint16_t), err);
  free(h);
  return st;
}

af_status af_precision_parse(const char *s, const char *field, af_precision *out, af_error *err) {
  if (strcmp(s, "fp32") == 0)
    *out = AF_PRECISION_FP32;
  else if (strcmp(s, "bf16") == 0)
    *out = AF_PRECISION_BF16;
  else
    return af_error_set(err, AF_ERR_ARG, "%s: '%s' is not a precision (fp32 or bf16)", field, s);
  return AF_OK;
}

af_precision af_precision_resolve(af_precision p, const af_device *dev) {
  if (p != AF_PRECISION_DEFAULT)
    return p;
  return dev->backend == AF_BACKEND_CPU ? AF_PRECISION_FP32 : AF_PRECISION_BF16;
}

af_status af_encoder_set_precision(af_encoder *e, af_precision p, af_error *err) {
  p = af_precision_resolve(p, &e->dev);
  if (p == e->precision)
    return AF_OK;
  AF_TRY(af_dev_sync(&e->dev, err)); // no queued batch may still use what is freed
  free_activations(e); // the bf16 buffers come and go with the precision
  e->precision = p;
  if (p == AF_PRECISION_FP32) {
    af_dev_free(&e->dev, e->params_bf16);
    e->params_bf16 = NULL;
    return AF_OK;
  }
  af_status st =
      af_dev_alloc(&e->dev, sizeof(uint16_t) * (size_t)e->m->n_floats, (void **)&e->params_bf16, err);
  if (st == AF_OK)
    st = upload_bf16(e, err);
  if (st != AF_OK) {
    af_dev_free(&e->dev, e->params_bf16);
    e->params_bf16 = NULL;
    e->precision = AF_PRECISION_FP32;
  }
  return st;
}

void af_encoder_free(af_encoder *e) {
  if (!e)
    return;
  // Queued batches must finish before their buffers go (a failure of theirs
  // has been, or can no longer be, reported).
  (void)af_dev_sync(&e->dev, NULL);
  free_activations(e);
  free_events(e);
  if (e->dev.backend != AF_BACKEND_CPU)
    af_dev_free(&e->dev, e->params);
  af_dev_free(&e->dev, e->params_bf16);
  free(e);
}

af_status af_batch_check(const af_model_config *c, const af_batch *b, af_error *err) {
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

/* ids, positions and cu_seqlens of the batch onto the device. */
static af_status upload_batch(af_encoder *e, const struct af_encoder_slot *io, const af_batch *b,
                              af_error *err) {
  const af_device *d = &e->dev;
  for (int i = 0; i < b->B; i++)
    for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
      e->pos_host[t] = t - b->cu_seqlens[i];
  AF_TRY(af_dev_upload(d, io->ids, b->ids, sizeof(int32_t) * b->T, err));
  AF_TRY(af_dev_upload(d, io->pos, e->pos_host, sizeof(int32_t) * b->T, err));
  return af_dev_upload(d, io->cu, b->cu_seqlens, sizeof(int32_t) * (b->B + 1), err);
}

/* One encoder layer in fp32: x (T, C) in and out. */
static af_status layer_fp32(af_encoder *e, const int32_t *cu, const af_layer_params *p, int T,
                            int B, af_error *err) {
  const af_model_config *c = &e->m->cfg;
  const af_device *d = &e->dev;
  const int C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  const size_t TC = (size_t)T * C;
  // qkv (T, 3C) = x W_qkv^T + b_qkv
  AF_TRY(af_op_linear_forward(d, e->qkv, e->x, P(e, p->qkv_w), P(e, p->qkv_b), T, C, 3 * C, err));
  // att (T, C): softmax(q k^T / sqrt(HS)) v within each sequence
  AF_TRY(af_op_attention_forward(d, e->att, NULL, e->qkv, cu, B, C, NH, err));
  // h (T, C) = LN1(att W_o^T + b_o + x)
  AF_TRY(af_op_linear_forward(d, e->h, e->att, P(e, p->ao_w), P(e, p->ao_b), T, C, C, err));
  AF_TRY(af_op_add_forward(d, e->h, e->h, e->x, (int64_t)TC, err));
  AF_TRY(af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, p->ln1_w), P(e, p->ln1_b), T, C,
                                 c->layer_norm_eps, err));
  // ffn (T, F) = gelu(x W_fc^T + b_fc)
  AF_TRY(af_op_linear_forward(d, e->ffn, e->x, P(e, p->fc_w), P(e, p->fc_b), T, C, F, err));
  AF_TRY(af_op_gelu_forward(d, e->ffn, e->ffn, (int64_t)T * F, err));
  // x (T, C) = LN2(ffn W_proj^T + b_proj + x)
  AF_TRY(af_op_linear_forward(d, e->h, e->ffn, P(e, p->proj_w), P(e, p->proj_b), T, F, C, err));
  AF_TRY(af_op_add_forward(d, e->h, e->h, e->x, (int64_t)TC, err));
  return af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, p->ln2_w), P(e, p->ln2_b), T, C,
                                 c->layer_norm_eps, err);
}

/* One encoder layer in bf16: x (T, C) fp32 and xb = bf16(x) in and out. GEMM
 * inputs are bf16 with fp32 outputs; the residual stream stays fp32. */
static af_status layer_bf16(af_encoder *e, const int32_t *cu, const af_layer_params *p, int T,
                            int B, af_error *err) {
  const af_model_config *c = &e->m->cfg;
  const af_device *d = &e->dev;
  const int C = c->hidden_size, F = c->intermediate_size, NH = c->num_heads;
  // qkv (T, 3C) fp32 = xb W_qkv^T + b_qkv
  AF_TRY(af_op_linear_bf16_forward(d, e->qkv, e->xb, PB(e, p->qkv_w), P(e, p->qkv_b), T, C, 3 * C,
                                   err));
  // attb (T, C) bf16: fused tensor-core attention (e->att is the fallback's scratch)
  AF_TRY(af_op_attention_bf16_forward(d, e->attb, e->att, e->qkv, cu, B, T, C, NH, err));
  // x = LN1(attb W_o^T + b_o + x), xb = bf16(x)
  AF_TRY(af_op_linear_bf16_forward(d, e->h, e->attb, PB(e, p->ao_w), P(e, p->ao_b), T, C, C, err));
  AF_TRY(af_op_add_layernorm_forward(d, e->x, e->xb, e->h, e->x, P(e, p->ln1_w), P(e, p->ln1_b), T,
                                     C, c->layer_norm_eps, err));
  // ffnb (T, F) = bf16(gelu(xb W_fc^T + b_fc)): our bias + erf-GELU + cast kernel
  AF_TRY(af_op_linear_bf16_forward(d, e->ffn, e->xb, PB(e, p->fc_w), NULL, T, C, F, err));
  AF_TRY(af_op_bias_gelu_bf16_forward(d, e->ffnb, e->ffn, P(e, p->fc_b), T, F, err));
  // x = LN2(ffnb W_proj^T + b_proj + x), xb = bf16(x)
  AF_TRY(af_op_linear_bf16_forward(d, e->h, e->ffnb, PB(e, p->proj_w), P(e, p->proj_b), T, F, C,
                                   err));
  return af_op_add_layernorm_forward(d, e->x, e->xb, e->h, e->x, P(e, p->ln2_w), P(e, p->ln2_b),
                                     T, C, c->layer_norm_eps, err);
}

/* pooled (B, C) from x (T, C): mean + L2 norm fused when both are wanted. */
static af_status pool(af_encoder *e, const struct af_encoder_slot *io, int B, af_error *err) {
  const af_model_config *c = &e->m->cfg;
  const af_device *d = &e->dev;
  const int C = c->hidden_size;
  if (c->pooling == AF_POOL_MEAN && c->normalize && e->precision == AF_PRECISION_BF16)
    return af_op_mean_pool_l2norm_forward(d, io->pooled, e->x, io->cu, B, C, err);
  if (c->pooling == AF_POOL_CLS)
    AF_TRY(af_op_cls_pool_forward(d, io->pooled, e->x, io->cu, B, C, err));
  else
    AF_TRY(af_op_mean_pool_forward(d, io->pooled, e->x, io->cu, B, C, err));
  if (c->normalize)
    AF_TRY(af_op_l2norm_forward(d, io->pooled, NULL, io->pooled, B, C, err));
  return AF_OK;
}

/* The forward pass from the uploaded batch to pooled (B, C) on the device,
 * queued; hidden (L + 1, T, C), when wanted, downloaded layer by layer. */
static af_status forward_queued(af_encoder *e, const struct af_encoder_slot *io, const af_batch *b,
                                float *hidden, af_error *err) {
  const af_model_config *c = &e->m->cfg;
  const af_model_weights *w = &e->m->w;
  const af_device *d = &e->dev;
  const int T = b->T, B = b->B, C = c->hidden_size;
  const size_t TC = (size_t)T * C;
  const int bf16 = e->precision == AF_PRECISION_BF16;

  // x (T, C) = LayerNorm(wte[ids] + wpe[pos] + wtt[0]); xb = bf16(x) in BF16
  AF_TRY(af_op_embedding_forward(d, e->h, io->ids, io->pos, NULL, P(e, w->wte), P(e, w->wpe),
                                 P(e, w->wtt), T, C, err));
  if (bf16)
    AF_TRY(af_op_add_layernorm_forward(d, e->x, e->xb, e->h, NULL, P(e, w->ln_w), P(e, w->ln_b), T,
                                       C, c->layer_norm_eps, err));
  else
    AF_TRY(af_op_layernorm_forward(d, e->x, NULL, NULL, e->h, P(e, w->ln_w), P(e, w->ln_b), T, C,
                                   c->layer_norm_eps, err));
  if (hidden)
    AF_TRY(af_dev_download(d, hidden, e->x, sizeof(float) * TC, err));
  for (int l = 0; l < c->num_layers; l++) {
    const af_layer_params *p = &w->layers[l];
    AF_TRY(bf16 ? layer_bf16(e, io->cu, p, T, B, err) : layer_fp32(e, io->cu, p, T, B, err));
    if (hidden)
      AF_TRY(af_dev_download(d, hidden + (size_t)(l + 1) * TC, e->x, sizeof(float) * TC, err));
  }
  return pool(e, io, B, err);
}

af_status af_encoder_forward(af_encoder *e, const af_batch *b, float *out, float *hidden,
                             af_error *err) {
  AF_TRY(af_batch_check(&e->m->cfg, b, err));
  AF_TRY(reserve(e, b->T, b->B, err));
  // Batches queued by the async path may still use slot 0 (and the
  // activations): wait for them (nothing to wait for otherwise).
  AF_TRY(af_dev_sync(&e->dev, err));
  const struct af_encoder_slot *io = &e->slot[0];
  AF_TRY(upload_batch(e, io, b, err));
  AF_TRY(forward_queued(e, io, b, hidden, err));
  const size_t BC = (size_t)b->B * e->m->cfg.hidden_size;
  AF_TRY(af_dev_download(&e->dev, out, io->pooled, sizeof(float) * BC, err));
  return af_dev_sync(&e->dev, err);
}

af_status af_encoder_forward_async(af_encoder *e, const af_batch *b, int32_t *pos, float *out,
                                   af_error *err) {
  AF_TRY(af_batch_check(&e->m->cfg, b, err));
  AF_TRY(reserve(e, b->T, b->B, err));
  const af_device *d = &e->dev;
  struct af_encoder_slot *io = &e->slot[e->next_slot];
  e->next_slot ^= 1;
  for (int i = 0; i < b->B; i++) // pos (T): the position of each token in its sequence
    for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
      pos[t] = t - b->cu_seqlens[i];
  // upload: once the batch before last (this slot's) has read its inputs
  AF_TRY(af_dev_queue_wait(d, AF_QUEUE_UPLOAD, io->computed, err));
  AF_TRY(af_dev_upload_async(d, AF_QUEUE_UPLOAD, io->ids, b->ids, sizeof(int32_t) * b->T, err));
  AF_TRY(af_dev_upload_async(d, AF_QUEUE_UPLOAD, io->pos, pos, sizeof(int32_t) * b->T, err));
  AF_TRY(af_dev_upload_async(d, AF_QUEUE_UPLOAD, io->cu, b->cu_seqlens,
                             sizeof(int32_t) * (b->B + 1), err));
  AF_TRY(af_dev_event_record(d, io->uploaded, AF_QUEUE_UPLOAD, err));
  // compute: on the uploaded inputs, once the slot's last output has been read
  AF_TRY(af_dev_queue_wait(d, AF_QUEUE_COMPUTE, io->uploaded, err));
  AF_TRY(af_dev_queue_wait(d, AF_QUEUE_COMPUTE, io->downloaded, err));
  AF_TRY(forward_queued(e, io, b, NULL, err));
  AF_TRY(af_dev_event_record(d, io->computed, AF_QUEUE_COMPUTE, err));
  // download: pooled (B, C) once computed
  const size_t BC = (size_t)b->B * e->m->cfg.hidden_size;
  AF_TRY(af_dev_queue_wait(d, AF_QUEUE_DOWNLOAD, io->computed, err));
  AF_TRY(af_dev_download_async(d, AF_QUEUE_DOWNLOAD, out, io->pooled, sizeof(float) * BC, err));
  return af_dev_event_record(d, io->downloaded, AF_QUEUE_DOWNLOAD, err);
}
