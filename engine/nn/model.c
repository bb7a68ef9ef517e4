/* Model parameters: the named tensor table, one contiguous buffer, and the
 * HDF5 checkpoint reader/writer (docs/checkpoint-format.md). */
#define _POSIX_C_SOURCE 200809L
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "io/h5util.h"

#define AF_CHECKPOINT_FORMAT "affinity-checkpoint"
#define AF_CHECKPOINT_VERSION 1
#define ALIGN_FLOATS 16 /* each tensor starts on a 64-byte boundary */
/* Bounds that keep the parameter table and its offsets small and exact
 * (BERT-family models have 2..48 layers and well under 2^40 values). */
#define AF_MODEL_MAX_LAYERS 1024
#define AF_MODEL_MAX_FLOATS ((int64_t)1 << 40)

typedef struct {
  af_param_info *items;
  int n, cap;
  int64_t next;
} table_builder;

static af_status add_param(table_builder *tb, const char *name, int rank, int64_t d0, int64_t d1,
                           af_error *err) {
  if (tb->n == tb->cap) {
    int cap = tb->cap ? tb->cap * 2 : 64;
    af_param_info *p = af_realloc(tb->items, (size_t)cap, sizeof *p, err);
    if (!p)
      return AF_ERR_NOMEM;
    tb->items = p;
    tb->cap = cap;
  }
  af_param_info *p = &tb->items[tb->n++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->rank = rank;
  p->shape[0] = d0;
  p->shape[1] = rank == 2 ? d1 : 1;
  p->numel = d0 * (rank == 2 ? d1 : 1); // <= 2^62: d0, d1 are ints
  if (p->numel > AF_MODEL_MAX_FLOATS - tb->next)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "model config implies more than 2^40 parameter values (at %s)", name);
  p->offset = tb->next;
  tb->next += (p->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
  return AF_OK;
}

/* Query, key and value of a layer are adjacent so that one GEMM computes all
 * three: their weights form one (3C, C) block and their biases one (3C). */
static af_status build_table(const af_model_config *c, table_builder *tb, af_error *err) {
  const int64_t C = c->hidden_size, F = c->intermediate_size;
  AF_TRY(add_param(tb, "embeddings.word_embeddings.weight", 2, c->vocab_size, C, err));
  AF_TRY(add_param(tb, "embeddings.position_embeddings.weight", 2, c->max_position, C, err));
  AF_TRY(add_param(tb, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, C, err));
  AF_TRY(add_param(tb, "embeddings.LayerNorm.weight", 1, C, 0, err));
  AF_TRY(add_param(tb, "embeddings.LayerNorm.bias", 1, C, 0, err));
  for (int l = 0; l < c->num_layers; l++) {
    char n[96];
    static const char *qkv[3] = {"query", "key", "value"};
    /* weights back to back with no alignment gap: C*C is a multiple of 16 when C is */
    for (int i = 0; i < 3; i++) {
      snprintf(n, sizeof n, "encoder.layer.%d.attention.self.%s.weight", l, qkv[i]);
      AF_TRY(add_param(tb, n, 2, C, C, err));
    }
    for (int i = 0; i < 3; i++) {
      snprintf(n, sizeof n, "encoder.layer.%d.attention.self.%s.bias", l, qkv[i]);
      AF_TRY(add_param(tb, n, 1, C, 0, err));
    }
    static const struct { const char *suffix; int rank; int d0, d1; } rest[] = {
        {"attention.output.dense.weight", 2, 'C', 'C'}, {"attention.output.dense.bias", 1, 'C', 0},
        {"attention.output.LayerNorm.weight", 1, 'C', 0}, {"attention.output.LayerNorm.bias", 1, 'C', 0},
        {"intermediate.dense.weight", 2, 'F', 'C'},     {"intermediate.dense.bias", 1, 'F', 0},
        {"output.dense.weight", 2, 'C', 'F'},           {"output.dense.bias", 1, 'C', 0},
        {"output.LayerNorm.weight", 1, 'C', 0},         {"output.LayerNorm.bias", 1, 'C', 0}};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
      snprintf(n, sizeof n, "encoder.layer.%d.%s", l, rest[i].suffix);
      int64_t d0 = rest[i].d0 == 'C' ? C : F, d1 = rest[i].d1 == 'C' ? C : rest[i].d1 == 'F' ? F : 0;
      AF_TRY(add_param(tb, n, rest[i].rank, d0, d1, err));
    }
  }
  if (c->has_pooler) {
    AF_TRY(add_param(tb, "pooler.dense.weight", 2, C, C, err));
    AF_TRY(add_param(tb, "pooler.dense.bias", 1, C, 0, err));
  }
  return AF_OK;
}

static af_status check_config(const af_model_config *c, af_error *err) {
  if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 ||
      c->intermediate_size <= 0 || c->max_position <= 0 || c->type_vocab_size <= 0)
    return af_error_set(err, AF_ERR_FORMAT, "model config has a non-positive size");
  if (c->num_layers > AF_MODEL_MAX_LAYERS)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "num_hidden_layers %d > %d", c->num_layers,
                        AF_MODEL_MAX_LAYERS);
  if (c->hidden_size % c->num_heads != 0)
    return af_error_set(err, AF_ERR_FORMAT, "hidden_size %d is not a multiple of num_attention_heads %d",
                        c->hidden_size, c->num_heads);
  if (c->hidden_size % ALIGN_FLOATS != 0)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "hidden_size %d must be a multiple of %d",
                        c->hidden_size, ALIGN_FLOATS);
  if (c->max_position > AF_ATTN_MAX_LEN)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "max_position_embeddings %d > %d (AF_ATTN_MAX_LEN)",
                        c->max_position, AF_ATTN_MAX_LEN);
  if (!(c->layer_norm_eps > 0) || !isfinite(c->layer_norm_eps))
    return af_error_set(err, AF_ERR_FORMAT, "layer_norm_eps must be positive");
  if (c->max_seq_len <= 2 || c->max_seq_len > c->max_position)
    return af_error_set(err, AF_ERR_FORMAT, "max_seq_length %d must be in [3, %d]", c->max_seq_len,
                        c->max_position);
  return AF_OK;
}

static void bind_weights(af_model *m) {
  af_model_weights *w = &m->w;
  const int L = m->cfg.num_layers;
  int i = 0;
#define NEXT() (m->data + m->params[i++].offset)
  w->wte = NEXT();
  w->wpe = NEXT();
  w->wtt = NEXT();
  w->ln_w = NEXT();
  w->ln_b = NEXT();
  for (int l = 0; l < L; l++) {
    af_layer_params *p = &w->layers[l];
    p->qkv_w = NEXT();
    i += 2; /* key, value weights follow contiguously */
    p->qkv_b = NEXT();
    i += 2;
    p->ao_w = NEXT();
    p->ao_b = NEXT();
    p->ln1_w = NEXT();
    p->ln1_b = NEXT();
    p->fc_w = NEXT();
    p->fc_b = NEXT();
    p->proj_w = NEXT();
    p->proj_b = NEXT();
    p->ln2_w = NEXT();
    p->ln2_b = NEXT();
  }
  w->pool_w = m->cfg.has_pooler ? NEXT() : NULL;
  w->pool_b = m->cfg.has_pooler ? NEXT() : NULL;
#undef NEXT
}

af_status af_model_config_numel(const af_model_config *cfg, int64_t *numel, af_error *err) {
  *numel = 0;
  AF_TRY(check_config(cfg, err));
  table_builder tb = {0};
  af_status st = build_table(cfg, &tb, err);
  for (int i = 0; st == AF_OK && i < tb.n; i++)
    *numel += tb.items[i].numel;
  free(tb.items);
  return st;
}

af_status af_model_create(const af_model_config *cfg, af_model *m, af_error *err) {
  memset(m, 0, sizeof *m);
  AF_TRY(check_config(cfg, err));
  m->cfg = *cfg;
  table_builder tb = {0};
  af_status st = build_table(cfg, &tb, err);
  if (st != AF_OK) {
    free(tb.items);
    return st;
  }
  /* q, k, v weights (and biases) must be contiguous: true when C*C and C are
   * multiples of ALIGN_FLOATS, which check_config guarantees. */
  m->params = tb.items;
  m->n_params = tb.n;
  m->n_floats = tb.next;
  m->data = af_calloc((size_t)m->n_floats, sizeof(float), err);
  m->w.layers = af_calloc((size_t)cfg->num_layers, sizeof *m->w.layers, err);
  if (!m->data || !m->w.layers) {
    af_model_free(m);
    return AF_ERR_NOMEM;
  }
  bind_weights(m);
  return AF_OK;
}

void af_model_free(af_model *m) {
  if (!m)
    return;
  free(m->params);
  free(m->data);
  free(m->w.layers);
  free(m->name);
  if (m->vocab)
    for (int i = 0; i < m->n_vocab; i++)
      free(m->vocab[i]);
  free(m->vocab);
  memset(m, 0, sizeof *m);
}

const af_param_info *af_model_param(const af_model *m, const char *name) {
  for (int i = 0; i < m->n_params; i++)
    if (strcmp(m->params[i].name, name) == 0)
      return &m->params[i];
  return NULL;
}

float *af_model_param_data(const af_model *m, const char *name) {
  const af_param_info *p = af_model_param(m, name);
  return p ? m->data + p->offset : NULL;
}

/* ---- HDF5 checkpoint ----------------------------------------------------------- */

static const char *pooling_name(af_pooling p) { return p == AF_POOL_CLS ? "cls" : "mean"; }

af_status af_model_write_h5(hid_t file, const af_model *m, af_error *err) {
  const af_model_config *c = &m->cfg;
  AF_TRY(af_h5_attr_set_str(file, ".", "format", AF_CHECKPOINT_FORMAT, err));
  AF_TRY(af_h5_attr_set_i64(file, ".", "format_version", AF_CHECKPOINT_VERSION, err));
  AF_TRY(af_h5_attr_set_str(file, ".", "affinity_version", AF_VERSION_STRING, err));
  AF_TRY(af_h5_attr_set_str(file, ".", "model_name", m->name ? m->name : "", err));
  hid_t g = af_h5_group(file, "config", err);
  if (g < 0)
    return AF_ERR_HDF5;
  H5Gclose(g);
  static const char *arch = "bert";
  AF_TRY(af_h5_attr_set_str(file, "config", "model_type", arch, err));
  const struct { const char *k; int64_t v; } ints[] = {
      {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
      {"num_hidden_layers", c->num_layers}, {"num_attention_heads", c->num_heads},
      {"intermediate_size", c->intermediate_size}, {"max_position_embeddings", c->max_position},
      {"type_vocab_size", c->type_vocab_size}, {"normalize", c->normalize},
      {"max_seq_length", c->max_seq_len}, {"has_pooler", c->has_pooler}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    AF_TRY(af_h5_attr_set_i64(file, "config", ints[i].k, ints[i].v, err));
  AF_TRY(af_h5_attr_set_f64(file, "config", "layer_norm_eps", c->layer_norm_eps, err));
  AF_TRY(af_h5_attr_set_str(file, "config", "hidden_act", "gelu", err));
  AF_TRY(af_h5_attr_set_str(file, "config", "pooling", pooling_name(c->pooling), err));

  AF_TRY(af_h5_write_strings(file, "tokenizer/vocab", (const char *const *)m->vocab,
                             (size_t)m->n_vocab, err));
  AF_TRY(af_h5_attr_set_i64(file, "tokenizer", "lowercase", c->lowercase, err));
  AF_TRY(af_h5_attr_set_i64(file, "tokenizer", "strip_accents", c->strip_accents, err));
  AF_TRY(af_h5_attr_set_i64(file, "tokenizer", "tokenize_chinese_chars", c->tokenize_chinese_chars, err));
  AF_TRY(af_h5_attr_set_i64(file, "tokenizer", "max_len", c->max_seq_len, err));

  for (int i = 0; i < m->n_params; i++) {
    const af_param_info *p = &m->params[i];
    char path[160];
    snprintf(path, sizeof path, "params/%s", p->name);
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    AF_TRY(af_h5_write_f32(file, path, m->data + p->offset, p->rank, dims, err));
  }
  return AF_OK;
}

static af_status get_int(hid_t f, const char *path, const char *obj, const char *k, int *v,
                         af_error *err) {
  int64_t x;
  if (af_h5_attr_get_i64(f, obj, k, &x, err) != AF_OK)
    return af_error_prefix(err, "%s: ", path);
  if (x < INT32_MIN || x > INT32_MAX)
    return af_error_set(err, AF_ERR_FORMAT, "%s: /%s attribute %s out of range", path, obj, k);
  *v = (int)x;
  return AF_OK;
}

af_status af_model_read_h5(hid_t f, const char *path, af_model *m, af_error *err) {
  memset(m, 0, sizeof *m);
  char *fmt = NULL;
  if (af_h5_attr_get_str(f, ".", "format", &fmt, err) != AF_OK || strcmp(fmt, AF_CHECKPOINT_FORMAT)) {
    free(fmt);
    return af_error_set(err, AF_ERR_FORMAT, "%s: not an affinity checkpoint (root attribute format)",
                        path);
  }
  free(fmt);
  int version = 0;
  AF_TRY(get_int(f, path, ".", "format_version", &version, err));
  if (version != AF_CHECKPOINT_VERSION)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "%s: checkpoint format_version %d (this build reads %d)",
                        path, version, AF_CHECKPOINT_VERSION);
  af_model_config c;
  memset(&c, 0, sizeof c);
  AF_TRY(get_int(f, path, "config", "vocab_size", &c.vocab_size, err));
  AF_TRY(get_int(f, path, "config", "hidden_size", &c.hidden_size, err));
  AF_TRY(get_int(f, path, "config", "num_hidden_layers", &c.num_layers, err));
  AF_TRY(get_int(f, path, "config", "num_attention_heads", &c.num_heads, err));
  AF_TRY(get_int(f, path, "config", "intermediate_size", &c.intermediate_size, err));
  AF_TRY(get_int(f, path, "config", "max_position_embeddings", &c.max_position, err));
  AF_TRY(get_int(f, path, "config", "type_vocab_size", &c.type_vocab_size, err));
  AF_TRY(get_int(f, path, "config", "normalize", &c.normalize, err));
  AF_TRY(get_int(f, path, "config", "max_seq_length", &c.max_seq_len, err));
  AF_TRY(get_int(f, path, "config", "has_pooler", &c.has_pooler, err));
  double eps;
  if (af_h5_attr_get_f64(f, "config", "layer_norm_eps", &eps, err) != AF_OK)
    return af_error_prefix(err, "%s: ", path);
  c.layer_norm_eps = (float)eps;
  char *pool = NULL;
  if (af_h5_attr_get_str(f, "config", "pooling", &pool, err) != AF_OK)
    return af_error_prefix(err, "%s: ", path);
  int bad_pool = strcmp(pool, "mean") != 0 && strcmp(pool, "cls") != 0;
  c.pooling = strcmp(pool, "cls") == 0 ? AF_POOL_CLS : AF_POOL_MEAN;
  free(pool);
  if (bad_pool)
    return af_error_set(err, AF_ERR_FORMAT, "%s: /config pooling must be mean or cls", path);
  AF_TRY(get_int(f, path, "tokenizer", "lowercase", &c.lowercase, err));
  AF_TRY(get_int(f, path, "tokenizer", "strip_accents", &c.strip_accents, err));
  AF_TRY(get_int(f, path, "tokenizer", "tokenize_chinese_chars", &c.tokenize_chinese_chars, err));
  if (af_model_create(&c, m, err) != AF_OK)
    return af_error_prefix(err, "%s: ", path);
  af_status st = af_h5_attr_get_str(f, ".", "model_name", &m->name, err);
  size_t nv = 0;
  if (st == AF_OK)
    st = af_h5_read_strings(f, "tokenizer/vocab", &m->vocab, &nv, err);
  if (st == AF_OK) {
    m->n_vocab = (int)nv;
    if (m->n_vocab < 3 || m->n_vocab > c.vocab_size)
      st = af_error_set(err, AF_ERR_FORMAT, "vocabulary has %d tokens but vocab_size is %d",
                        m->n_vocab, c.vocab_size);
  }
  for (int i = 0; i < m->n_params && st == AF_OK; i++) {
    const af_param_info *p = &m->params[i];
    char name[160];
    snprintf(name, sizeof name, "params/%s", p->name);
    int rank = 0;
    hsize_t dims[8];
    st = af_h5_shape(f, name, &rank, dims, err);
    if (st == AF_OK && (rank != p->rank || (hsize_t)p->shape[0] != dims[0] ||
                        (rank == 2 && (hsize_t)p->shape[1] != dims[1])))
      st = af_error_set(err, AF_ERR_FORMAT, "tensor %s has the wrong shape for the config", name);
    if (st == AF_OK)
      st = af_h5_read(f, name, H5T_NATIVE_FLOAT, m->data + p->offset, (size_t)p->numel, err);
  }
  if (st != AF_OK) {
    af_error_prefix(err, "%s: ", path);
    af_model_free(m);
  }
  return st;
}

af_status af_model_save(const char *path, const af_model *m, af_error *err) {
  char tmp[AF_PATH_MAX];
  AF_TRY(af_tmp_path(path, tmp, err));
  hid_t f = af_h5_create(tmp, err);
  if (f < 0)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create", path);
  af_status st = af_model_write_h5(f, m, err);
  if (af_h5_close(f, tmp, st == AF_OK ? err : NULL) != AF_OK && st == AF_OK)
    st = AF_ERR_HDF5;
  if (st != AF_OK) {
    af_discard_file(tmp);
    return af_error_prefix(err, "%s: ", path);
  }
  return af_h5_commit(tmp, path, err);
}

af_status af_model_load(const char *path, af_model *m, af_error *err) {
  hid_t f;
  AF_TRY(af_h5_open(path, 0, &f, err));
  af_status st = af_model_read_h5(f, path, m, err);
  af_h5_close(f, path, NULL);
  return st;
}

/* ---- the public handle (affinity.h) ------------------------------------------- */

af_status af_model_alloc(af_model **out, af_error *err) {
  *out = af_calloc(1, sizeof **out, err);
  return *out ? AF_OK : AF_ERR_NOMEM;
}

static af_status open_with(af_status (*fill)(const char *, af_model *, af_error *),
                           const char *path, af_model **out, af_error *err) {
  AF_TRY(af_model_alloc(out, err));
  af_status st = fill(path, *out, err);
  if (st != AF_OK) {
    free(*out); /* fill frees what it allocated on failure */
    *out = NULL;
  }
  return st;
}

af_status af_model_open(const char *path, af_model **out, af_error *err) {
  return open_with(af_model_load, path, out, err);
}

af_status af_model_open_hf(const char *dir, af_model **out, af_error *err) {
  return open_with(af_model_import_hf, dir, out, err);
}

void af_model_close(af_model *m) {
  if (!m)
    return;
  af_model_free(m);
  free(m);
}

const af_model_config *af_model_get_config(const af_model *m) { return &m->cfg; }

const char *af_model_name(const af_model *m) { return m->name ? m->name : ""; }

af_status af_model_set_name(af_model *m, const char *name, af_error *err) {
  size_t n = strlen(name) + 1;
  char *copy = af_malloc(n, 1, err);
  if (!copy)
    return AF_ERR_NOMEM;
  memcpy(copy, name, n);
  free(m->name);
  m->name = copy;
  return AF_OK;
}

int af_model_vocab_size(const af_model *m) { return m->n_vocab; }
int af_model_n_tensors(const af_model *m) { return m->n_params; }
int64_t af_model_n_floats(const af_model *m) { return m->n_floats; }
