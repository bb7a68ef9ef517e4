/* Training checkpoints: the model (af_model_write_h5) plus /optim (AdamW
 * moments and schedule) and /train (RNG key, data cursor, loop settings,
 * checksum) in one HDF5 file written tmp + rename. Layout in
 * docs/checkpoint-format.md, "Training state". */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "nn/model.h"
#include "io/h5util.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= FNV_PRIME;
  }
  return h;
}

/* FNV-1a 64 over the step, every parameter and the moments of every trained
 * parameter, in table order. */
static uint64_t state_checksum(const af_model *m, const float *m1, const float *m2, int64_t step) {
  uint64_t h = fnv1a(FNV_OFFSET, &step, sizeof step);
  for (int i = 0; i < m->n_params; i++) {
    const af_param_info *p = &m->params[i];
    h = fnv1a(h, m->data + p->offset, sizeof(float) * (size_t)p->numel);
    if (af_trainer_param_trained(p->name)) {
      h = fnv1a(h, m1 + p->offset, sizeof(float) * (size_t)p->numel);
      h = fnv1a(h, m2 + p->offset, sizeof(float) * (size_t)p->numel);
    }
  }
  return h;
}

static af_status set_u64_hex(hid_t f, const char *obj, const char *key, uint64_t v, af_error *err) {
  char s[32];
  snprintf(s, sizeof s, "%016" PRIx64, v);
  return af_h5_attr_set_str(f, obj, key, s, err);
}

static af_status get_u64_hex(hid_t f, const char *obj, const char *key, uint64_t *v,
                             af_error *err) {
  char *s = NULL;
  AF_TRY(af_h5_attr_get_str(f, obj, key, &s, err));
  char *end = NULL;
  unsigned long long x = strtoull(s, &end, 16);
  int bad = strlen(s) != 16 || !end || *end;
  free(s);
  if (bad)
    return af_error_set(err, AF_ERR_FORMAT, "/%s attribute %s is not 16 hex digits", obj, key);
  *v = (uint64_t)x;
  return AF_OK;
}

/* Host-readable moments: the trainer's own on the CPU, else downloaded copies. */
static af_status host_moments(af_trainer *t, float **m1, float **m2, af_error *err) {
  if (af_trainer_device(t)->backend == AF_BACKEND_CPU) {
    *m1 = af_trainer_moment1(t);
    *m2 = af_trainer_moment2(t);
    return AF_OK;
  }
  const size_t n = (size_t)af_trainer_model(t)->n_floats;
  *m1 = af_calloc(n, sizeof(float), err);
  *m2 = *m1 ? af_calloc(n, sizeof(float), err) : NULL;
  if (!*m2) {
    free(*m1);
    *m1 = NULL;
    return AF_ERR_NOMEM;
  }
  af_status st = af_trainer_read_state(t, NULL, *m1, *m2, err);
  if (st != AF_OK) {
    free(*m1);
    free(*m2);
  }
  return st;
}

static void drop_host_moments(af_trainer *t, float *m1, float *m2) {
  if (m1 == af_trainer_moment1(t))
    return;
  free(m1);
  free(m2);
}

static af_status write_file(const char *path, af_trainer *t, const float *m1, const float *m2,
                            const af_train_meta *meta, af_error *err);

af_status af_train_checkpoint_save(const char *path, const af_trainer *tc,
                                   const af_train_meta *meta, af_error *err) {
  af_trainer *t = (af_trainer *)tc;
  float *m1 = NULL, *m2 = NULL;
  AF_TRY(af_trainer_sync_host(t, err));
  AF_TRY(host_moments(t, &m1, &m2, err));
  af_status st = write_file(path, t, m1, m2, meta, err);
  drop_host_moments(t, m1, m2);
  return st;
}

static af_status write_file(const char *path, af_trainer *t, const float *m1, const float *m2,
                            const af_train_meta *meta, af_error *err) {
  const af_model *m = af_trainer_model(t);
  const af_train_config *c = af_trainer_config(t);
  const int64_t step = af_trainer_steps_done(t);
  char tmp[AF_PATH_MAX];
  AF_TRY(af_tmp_path(path, tmp, err));
  hid_t f = af_h5_create(tmp, err);
  if (f < 0)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create", path);
  af_status st = af_model_write_h5(f, m, err);
  static const char *groups[] = {"optim", "optim/m", "optim/v", "train"};
  for (size_t i = 0; i < 4 && st == AF_OK; i++) {
    hid_t g = af_h5_group(f, groups[i], err);
    if (g < 0)
      st = AF_ERR_HDF5;
    else
      H5Gclose(g);
  }
  for (int i = 0; i < m->n_params && st == AF_OK; i++) {
    const af_param_info *p = &m->params[i];
    if (!af_trainer_param_trained(p->name))
      continue;
    char name[200];
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    snprintf(name, sizeof name, "optim/m/%s", p->name);
    st = af_h5_write_f32(f, name, m1 + p->offset, p->rank, dims, err);
    if (st == AF_OK) {
      snprintf(name, sizeof name, "optim/v/%s", p->name);
      st = af_h5_write_f32(f, name, m2 + p->offset, p->rank, dims, err);
    }
  }
  const struct {
    const char *obj, *key;
    int64_t v;
  } ints[] = {{"optim", "step", step},
              {"optim", "warmup", c->warmup},
              {"optim", "total_steps", c->total_steps},
              {"train", "grad_accum", c->grad_accum},
              {"train", "batch", c->batch},
              {"train", "symmetric", c->symmetric},
              {"train", "epoch", meta->epoch},
              {"train", "position", meta->position},
              {"train", "n_train", meta->n_train},
              {"train", "n_val", meta->n_val},
              {"train", "tokens_seen", meta->tokens_seen},
              {"train", "max_len", meta->max_len}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == AF_OK; i++)
    st = af_h5_attr_set_i64(f, ints[i].obj, ints[i].key, ints[i].v, err);
  const struct {
    const char *obj, *key;
    double v;
  } dbls[] = {{"optim", "lr", c->lr},
              {"optim", "beta1", c->adamw.beta1},
              {"optim", "beta2", c->adamw.beta2},
              {"optim", "eps", c->adamw.eps},
              {"optim", "weight_decay", c->adamw.weight_decay},
              {"optim", "max_grad_norm", c->max_grad_norm},
              {"train", "dropout", c->dropout},
              {"train", "attention_dropout", c->attn_dropout},
              {"train", "scale", c->scale}};
  for (size_t i = 0; i < sizeof dbls / sizeof dbls[0] && st == AF_OK; i++)
    st = af_h5_attr_set_f64(f, dbls[i].obj, dbls[i].key, dbls[i].v, err);
  if (st == AF_OK)
    st = af_h5_attr_set_str(f, "optim", "algorithm", "adamw", err);
  if (st == AF_OK)
    st = af_h5_attr_set_str(f, "optim", "schedule", "linear_warmup", err);
  if (st == AF_OK)
    st = af_h5_attr_set_str(f, "train", "rng", "philox4x32-10", err);
  if (st == AF_OK)
    st = set_u64_hex(f, "train", "seed", c->seed, err);
  if (st == AF_OK)
    st = set_u64_hex(f, "train", "data_fingerprint", meta->data_fingerprint, err);
  if (st == AF_OK)
    st = set_u64_hex(f, "train", "checksum", state_checksum(m, m1, m2, step), err);
  if (af_h5_close(f, tmp, st == AF_OK ? err : NULL) != AF_OK && st == AF_OK)
    st = AF_ERR_HDF5;
  if (st != AF_OK) {
    af_discard_file(tmp);
    return af_error_prefix(err, "%s: ", path);
  }
  return af_h5_commit(tmp, path, err);
}

int af_train_checkpoint_is(const char *path) {
  af_error e;
  hid_t f;
  if (af_h5_open(path, 0, &f, &e) != AF_OK)
    return 0;
  int is = af_h5_exists(f, "optim") && af_h5_exists(f, "train");
  af_h5_close(f, path, NULL);
  return is;
}

static af_status read_config(hid_t f, af_train_config *c, af_train_meta *meta, int64_t *step,
                             uint64_t *checksum, af_error *err) {
  af_train_default_config(c);
  memset(meta, 0, sizeof *meta);
  int64_t accum = 0, batch = 0, sym = 0;
  double beta1, beta2, eps, wd, dropout, attn_dropout, scale;
  AF_TRY(af_h5_attr_get_i64(f, "optim", "step", step, err));
  AF_TRY(af_h5_attr_get_i64(f, "optim", "warmup", &c->warmup, err));
  AF_TRY(af_h5_attr_get_i64(f, "optim", "total_steps", &c->total_steps, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "grad_accum", &accum, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "batch", &batch, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "symmetric", &sym, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "epoch", &meta->epoch, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "position", &meta->position, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "n_train", &meta->n_train, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "n_val", &meta->n_val, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "tokens_seen", &meta->tokens_seen, err));
  AF_TRY(af_h5_attr_get_i64(f, "train", "max_len", &meta->max_len, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "lr", &c->lr, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "beta1", &beta1, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "beta2", &beta2, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "eps", &eps, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "weight_decay", &wd, err));
  AF_TRY(af_h5_attr_get_f64(f, "optim", "max_grad_norm", &c->max_grad_norm, err));
  AF_TRY(af_h5_attr_get_f64(f, "train", "dropout", &dropout, err));
  AF_TRY(af_h5_attr_get_f64(f, "train", "attention_dropout", &attn_dropout, err));
  AF_TRY(af_h5_attr_get_f64(f, "train", "scale", &scale, err));
  AF_TRY(get_u64_hex(f, "train", "seed", &c->seed, err));
  AF_TRY(get_u64_hex(f, "train", "data_fingerprint", &meta->data_fingerprint, err));
  AF_TRY(get_u64_hex(f, "train", "checksum", checksum, err));
  if (accum < 1 || accum > (1 << 20) || batch < 1 || batch > (1 << 24) || *step < 0 ||
      *step > c->total_steps || meta->epoch < 0 || meta->position < 0 || meta->n_train < 0 ||
      meta->n_val < 0 || meta->max_len < 0 || meta->max_len > 1 << 20)
    return af_error_set(err, AF_ERR_FORMAT, "training state out of range (step %lld of %lld)",
                        (long long)*step, (long long)c->total_steps);
  c->grad_accum = (int)accum;
  c->batch = (int)batch;
  c->symmetric = sym != 0;
  c->adamw.beta1 = (float)beta1;
  c->adamw.beta2 = (float)beta2;
  c->adamw.eps = (float)eps;
  c->adamw.weight_decay = (float)wd;
  c->dropout = (float)dropout;
  c->attn_dropout = (float)attn_dropout;
  c->scale = (float)scale;
  return AF_OK;
}

af_status af_train_checkpoint_load(const char *path, const af_device *dev, af_model *m,
                                   af_trainer **out, af_train_meta *meta, af_error *err) {
  *out = NULL;
  memset(m, 0, sizeof *m);
  hid_t f;
  AF_TRY(af_h5_open(path, 0, &f, err)); /* its message names the file (digest, truncation) */
  af_status st = AF_OK;
  if (!af_h5_exists(f, "optim") || !af_h5_exists(f, "train"))
    st = af_error_set(err, AF_ERR_FORMAT,
                      "%s: not a training checkpoint (no /optim and /train groups); "
                      "start a new run with --model instead of --resume",
                      path);
  int have_model = 0;
  af_train_config cfg;
  int64_t step = 0;
  uint64_t checksum = 0;
  af_trainer *t = NULL;
  if (st == AF_OK) {
    st = read_config(f, &cfg, meta, &step, &checksum, err);
    if (st != AF_OK)
      af_error_prefix(err, "%s: ", path);
  }
  if (st == AF_OK) {
    st = af_model_read_h5(f, path, m, err); /* prefixes path itself */
    have_model = st == AF_OK;
  }
  if (st == AF_OK) {
    st = af_trainer_create(m, dev, &cfg, &t, err);
    if (st != AF_OK)
      af_error_prefix(err, "%s: ", path);
  }
  float *m1 = NULL, *m2 = NULL; /* host moments: the trainer's own on the CPU */
  if (st == AF_OK)
    st = host_moments(t, &m1, &m2, err);
  for (int i = 0; i < (have_model ? m->n_params : 0) && st == AF_OK; i++) {
    const af_param_info *p = &m->params[i];
    if (!af_trainer_param_trained(p->name))
      continue;
    for (int k = 0; k < 2 && st == AF_OK; k++) {
      char name[200];
      snprintf(name, sizeof name, "optim/%s/%s", k ? "v" : "m", p->name);
      int rank = 0;
      hsize_t dims[8];
      st = af_h5_shape(f, name, &rank, dims, err);
      if (st == AF_OK && (rank != p->rank || dims[0] != (hsize_t)p->shape[0] ||
                          (rank == 2 && dims[1] != (hsize_t)p->shape[1])))
        st = af_error_set(err, AF_ERR_FORMAT, "tensor %s has the wrong shape", name);
      if (st == AF_OK)
        st = af_h5_read(f, name, H5T_NATIVE_FLOAT, (k ? m2 : m1) + p->offset, (size_t)p->numel,
                        err);
      if (st != AF_OK)
        af_error_prefix(err, "%s: ", path);
    }
  }
  if (st == AF_OK && state_checksum(m, m1, m2, step) != checksum)
    st = af_error_set(err, AF_ERR_FORMAT,
                      "%s: checksum mismatch: parameters or optimizer state are corrupted", path);
  if (st == AF_OK)
    st = af_trainer_write_moments(t, m1, m2, err);
  if (t && m1)
    drop_host_moments(t, m1, m2);
  if (af_h5_close(f, path, st == AF_OK ? err : NULL) != AF_OK && st == AF_OK)
    st = AF_ERR_HDF5;
  if (st != AF_OK) {
    af_trainer_free(t);
    if (have_model)
      af_model_free(m);
    memset(m, 0, sizeof *m);
    return st;
  }
  af_trainer_set_steps_done(t, step);
  *out = t;
  return AF_OK;
}
