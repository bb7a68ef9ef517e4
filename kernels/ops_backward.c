/* Entry points of the training ops (ops_backward.h): each calls the op through
 * the device's backend table (ops_table.h), or reports that the backend lacks
 * it (AF_ERR_UNSUPPORTED naming op and backend). */
#include "ops_backward.h"

#include "ops_table.h"

int af_backward_supported(const af_device *dev) {
  const af_backend_ops *o = dev->ops;
  return o && o->dropout_forward && o->dropout_backward && o->attention_dropout_forward &&
         o->attention_dropout_backward && o->embedding_backward && o->layernorm_backward &&
         o->linear_backward && o->gelu_backward && o->add_backward && o->attention_backward &&
         o->mean_pool_backward && o->cls_pool_backward && o->l2norm_backward && o->zero && o->copy && o->stream &&
         o->dropout_tokens_forward && o->dropout_tokens_backward && o->grad_sumsq && o->adamw_step && o->mnr_loss;
}

af_status af_op_dropout_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                                float p_drop, uint64_t seed, uint64_t stream, af_error *err) {
  return AF_OP_CALL(dev, dropout_forward, err, out, inp, n, p_drop, seed, stream);
}

af_status af_op_dropout_backward(const af_device *dev, float *dinp, const float *dout, int64_t n,
                                 float p_drop, uint64_t seed, uint64_t stream, af_error *err) {
  return AF_OP_CALL(dev, dropout_backward, err, dinp, dout, n, p_drop, seed, stream);
}

af_status af_op_attention_dropout_forward(const af_device *dev, float *out, const float *probs,
                                          const float *qkv, const int32_t *cu_seqlens, int B,
                                          int C, int NH, float p, uint64_t seed, uint64_t stream,
                                          const int64_t *mask_base, const int32_t *cu_host,
                                          af_error *err) {
  return AF_OP_CALL(dev, attention_dropout_forward, err, out, probs, qkv, cu_seqlens, B, C, NH, p,
                    seed, stream, mask_base, cu_host);
}

af_status af_op_attention_dropout_backward(const af_device *dev, float *dqkv, const float *dout,
                                           const float *qkv, const float *probs,
                                           const int32_t *cu_seqlens, int B, int C, int NH,
                                           float p, uint64_t seed, uint64_t stream,
                                           const int64_t *mask_base, const int32_t *cu_host,
                                           af_error *err) {
  return AF_OP_CALL(dev, attention_dropout_backward, err, dqkv, dout, qkv, probs, cu_seqlens, B, C,
                    NH, p, seed, stream, mask_base, cu_host);
}

af_status af_op_embedding_backward(const af_device *dev, float *dwte, float *dwpe, float *dwtt,
                                   const float *dout, const int32_t *ids, const int32_t *pos,
                                   const int32_t *type_ids, int T, int C, const int32_t *ids_host,
                                   const int32_t *pos_host, af_error *err) {
  return AF_OP_CALL(dev, embedding_backward, err, dwte, dwpe, dwtt, dout, ids, pos, type_ids, T,
                    C, ids_host, pos_host);
}

af_status af_op_layernorm_backward(const af_device *dev, float *dinp, float *dw, float *db,
                                   const float *dout, const float *inp, const float *w,
                                   const float *mean, const float *rstd, int N, int C,
                                   af_error *err) {
  return AF_OP_CALL(dev, layernorm_backward, err, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

af_status af_op_linear_backward(const af_device *dev, float *dinp, float *dw, float *dbias,
                                const float *dout, const float *inp, const float *w, int N, int IC,
                                int OC, af_error *err) {
  return AF_OP_CALL(dev, linear_backward, err, dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

af_status af_op_gelu_backward(const af_device *dev, float *dinp, const float *dout,
                              const float *inp, int64_t n, af_error *err) {
  return AF_OP_CALL(dev, gelu_backward, err, dinp, dout, inp, n);
}

af_status af_op_add_backward(const af_device *dev, float *da, float *db, const float *dout,
                             int64_t n, af_error *err) {
  return AF_OP_CALL(dev, add_backward, err, da, db, dout, n);
}

af_status af_op_attention_backward(const af_device *dev, float *dqkv, const float *dout,
                                   const float *qkv, const float *probs,
                                   const int32_t *cu_seqlens, int B, int C, int NH,
                                   const int32_t *cu_host, af_error *err) {
  return AF_OP_CALL(dev, attention_backward, err, dqkv, dout, qkv, probs, cu_seqlens, B, C, NH,
                    cu_host);
}

af_status af_op_mean_pool_backward(const af_device *dev, float *dinp, const float *dout,
                                   const int32_t *cu_seqlens, int B, int C, af_error *err) {
  return AF_OP_CALL(dev, mean_pool_backward, err, dinp, dout, cu_seqlens, B, C);
}

af_status af_op_cls_pool_backward(const af_device *dev, float *dinp, const float *dout,
                                  const int32_t *cu_seqlens, int B, int C, af_error *err) {
  return AF_OP_CALL(dev, cls_pool_backward, err, dinp, dout, cu_seqlens, B, C);
}

af_status af_op_l2norm_backward(const af_device *dev, float *dinp, const float *dout,
                                const float *out, const float *norms, int N, int C,
                                af_error *err) {
  return AF_OP_CALL(dev, l2norm_backward, err, dinp, dout, out, norms, N, C);
}

/* ---- the trainer on the device ------------------------------------------------ */

af_status af_dev_zero(const af_device *dev, void *dst, size_t bytes, af_error *err) {
  if (bytes == 0)
    return AF_OK;
  return AF_OP_CALL(dev, zero, err, dst, bytes);
}

af_status af_dev_stream(const af_device *dev, void **out, af_error *err) {
  *out = NULL;
  return AF_OP_CALL(dev, stream, err, out);
}

af_status af_dev_copy(const af_device *dev, void *dst, const void *src, size_t bytes,
                      af_error *err) {
  if (bytes == 0)
    return AF_OK;
  return AF_OP_CALL(dev, copy, err, dst, src, bytes);
}

af_status af_op_dropout_tokens_forward(const af_device *dev, float *x, const int32_t *gtok, int T,
                                       int C, float p, uint64_t seed, uint64_t stream,
                                       af_error *err) {
  return AF_OP_CALL(dev, dropout_tokens_forward, err, x, gtok, T, C, p, seed, stream);
}

af_status af_op_dropout_tokens_backward(const af_device *dev, float *dinp, const float *dout,
                                        const int32_t *gtok, int T, int C, float p, uint64_t seed,
                                        uint64_t stream, af_error *err) {
  return AF_OP_CALL(dev, dropout_tokens_backward, err, dinp, dout, gtok, T, C, p, seed, stream);
}

af_status af_op_grad_sumsq(const af_device *dev, const float *grad, int64_t n, double *out,
                           af_error *err) {
  *out = 0.0;
  return AF_OP_CALL(dev, grad_sumsq, err, grad, n, out);
}

af_status af_op_mnr_loss(const af_device *dev, const float *anchors, const float *positives, int B,
                         int C, float scale, int symmetric, float *loss, float *d_anchors,
                         float *d_positives, af_error *err) {
  return AF_OP_CALL(dev, mnr_loss, err, anchors, positives, B, C, scale, symmetric, loss,
                    d_anchors, d_positives);
}

af_status af_op_adamw_step(const af_device *dev, float *param, const float *grad, float *m,
                           float *v, uint16_t *work_bf16, const af_adamw_tensor *table,
                           int n_tensors, const af_adamw_op_scalars *s, af_error *err) {
  return AF_OP_CALL(dev, adamw_step, err, param, grad, m, v, work_bf16, table, n_tensors, s);
}

af_status af_op_grad_sumsq_table(const af_device *dev, const float *grad,
                                 const af_adamw_tensor *table, int n_tensors, double *out,
                                 af_error *err) {
  *out = 0.0;
  if (dev->ops && dev->ops->grad_sumsq_table)
    return dev->ops->grad_sumsq_table(dev->ctx, grad, table, n_tensors, out, err);
  double ss = 0.0;
  for (int i = 0; i < n_tensors; i++) {
    double s = 0.0;
    AF_TRY(af_op_grad_sumsq(dev, grad + table[i].offset, table[i].numel, &s, err));
    ss += s;
  }
  *out = ss;
  return AF_OK;
}

af_status af_op_linear_forward_w16(const af_device *dev, float *out, const float *inp,
                                   const uint16_t *w16, const float *bias, int N, int IC, int OC,
                                   af_error *err) {
  return AF_OP_CALL(dev, linear_forward_w16, err, out, inp, w16, bias, N, IC, OC);
}

af_status af_op_linear_backward_w16(const af_device *dev, float *dinp, float *dw, float *dbias,
                                    const float *dout, const float *inp, const uint16_t *w16,
                                    int N, int IC, int OC, af_error *err) {
  return AF_OP_CALL(dev, linear_backward_w16, err, dinp, dw, dbias, dout, inp, w16, N, IC, OC);
}

int af_op_has_linear_w16(const af_device *dev) {
  return dev->ops && dev->ops->linear_forward_w16 && dev->ops->linear_backward_w16 &&
         dev->ops->adamw_step;
}
