/* Import of a Hugging Face BERT folder (config.json, model.safetensors,
 * vocab.txt, tokenizer_config.json, sentence-transformers files) into an
 * af_model. Only safetensors weights are read: pickle files are never loaded. */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "io/safetensors.h"

/* Reads a whole (small) file; *len may be NULL. Missing file: AF_ERR_IO. */
static af_status read_text(const char *path, char **out, size_t *len, af_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = af_malloc(cap, 1, err);
  while (buf) {
    if (n + 1 >= cap) {
      if (cap > (64u << 20)) {
        free(buf);
        fclose(f);
        return af_error_set(err, AF_ERR_FORMAT, "%s: file too large", path);
      }
      char *nb = af_realloc(buf, cap * 2, 1, err);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf)
    return AF_ERR_NOMEM;
  if (bad) {
    free(buf);
    return af_error_set(err, AF_ERR_IO, "%s: read error", path);
  }
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return AF_OK;
}

static int file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f)
    fclose(f);
  return f != NULL;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object of v (recursively; cJSON
 * bounds the nesting at CJSON_NESTING_LIMIT), or NULL. cJSON would read the
 * first occurrence and Python's json (what wrote, or reads, the file
 * elsewhere) the last, so such a file is ambiguous and refused. *oom on an
 * allocation failure. */
static const char *duplicate_key(const cJSON *v, int *oom) {
  int n = 0;
  for (const cJSON *c = v->child; c; c = c->next)
    n++;
  if (cJSON_IsObject(v) && n > 1) {
    const char **names = malloc(sizeof *names * (size_t)n);
    if (!names) {
      *oom = 1;
      return NULL;
    }
    int k = 0;
    for (const cJSON *c = v->child; c; c = c->next)
      names[k++] = c->string ? c->string : "";
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
      if (strcmp(names[i - 1], names[i]) == 0)
        dup = names[i];
    free(names);
    if (dup)
      return dup;
  }
  for (const cJSON *c = v->child; c && !*oom; c = c->next) {
    const char *d = duplicate_key(c, oom);
    if (d)
      return d;
  }
  return NULL;
}

static af_status read_json(const char *path, cJSON **out, af_error *err) {
  char *text;
  AF_TRY(read_text(path, &text, NULL, err));
  const char *end = NULL;
  *out = cJSON_ParseWithOpts(text, &end, 1);
  if (!*out) {
    /* report the line of the parse error */
    int line = 1;
    for (const char *p = text; end && p < end && *p; p++)
      line += *p == '\n';
    free(text);
    return af_error_set(err, AF_ERR_FORMAT, "%s: line %d: malformed JSON", path, line);
  }
  free(text);
  if (!cJSON_IsObject(*out) && !cJSON_IsArray(*out)) {
    cJSON_Delete(*out);
    *out = NULL;
    return af_error_set(err, AF_ERR_FORMAT, "%s: expected a JSON object", path);
  }
  int oom = 0;
  const char *dup = duplicate_key(*out, &oom);
  af_status st = AF_OK;
  if (oom)
    st = af_error_set(err, AF_ERR_NOMEM, "%s: out of memory checking the JSON keys", path);
  else if (dup)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: field \"%.200s\" appears twice in one object",
                      path, dup);
  if (st != AF_OK) {
    cJSON_Delete(*out);
    *out = NULL;
  }
  return st;
}

static af_status json_int(const cJSON *obj, const char *path, const char *key, int required,
                          int def, int *out, af_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    if (required)
      return af_error_set(err, AF_ERR_FORMAT, "%s: missing field \"%s\"", path, key);
    *out = def;
    return AF_OK;
  }
  /* Range-check before the cast: converting an out-of-range double to int is
   * undefined behaviour. */
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
      v->valuedouble != floor(v->valuedouble))
    return af_error_set(err, AF_ERR_FORMAT, "%s: field \"%s\" must be an integer", path, key);
  *out = (int)v->valuedouble;
  return AF_OK;
}

static int json_bool(const cJSON *obj, const char *key, int def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (cJSON_IsBool(v))
    return cJSON_IsTrue(v);
  return def;
}

static af_status parse_config(const char *dir, af_model_config *c, af_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  cJSON *j;
  AF_TRY(read_json(path, &j, err));
  af_status st = AF_OK;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
  if (cJSON_IsString(mt) && strcmp(mt->valuestring, "bert") != 0)
    st = af_error_set(err, AF_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a BERT model", path,
                      mt->valuestring);
  if (st == AF_OK) st = json_int(j, path, "vocab_size", 1, 0, &c->vocab_size, err);
  if (st == AF_OK) st = json_int(j, path, "hidden_size", 1, 0, &c->hidden_size, err);
  if (st == AF_OK) st = json_int(j, path, "num_hidden_layers", 1, 0, &c->num_layers, err);
  if (st == AF_OK) st = json_int(j, path, "num_attention_heads", 1, 0, &c->num_heads, err);
  if (st == AF_OK) st = json_int(j, path, "intermediate_size", 1, 0, &c->intermediate_size, err);
  if (st == AF_OK) st = json_int(j, path, "max_position_embeddings", 0, 512, &c->max_position, err);
  if (st == AF_OK) st = json_int(j, path, "type_vocab_size", 0, 2, &c->type_vocab_size, err);
  if (st == AF_OK) {
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
    /* range-checked before the (float) cast, which overflows beyond FLT_MAX */
    if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)))
      st = af_error_set(err, AF_ERR_FORMAT,
                        "%s: field \"layer_norm_eps\" must be a number in (0, 1)", path);
    c->layer_norm_eps = eps && st == AF_OK ? (float)eps->valuedouble : 1e-12f;
  }
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
  if (st == AF_OK && act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu") != 0))
    st = af_error_set(err, AF_ERR_UNSUPPORTED,
                      "%s: hidden_act must be \"gelu\" (erf GELU); found %s", path,
                      cJSON_IsString(act) ? act->valuestring : "a non-string");
  const cJSON *pet = cJSON_GetObjectItemCaseSensitive(j, "position_embedding_type");
  if (st == AF_OK && pet && (!cJSON_IsString(pet) || strcmp(pet->valuestring, "absolute") != 0))
    st = af_error_set(err, AF_ERR_UNSUPPORTED, "%s: only absolute position embeddings are supported",
                      path);
  cJSON_Delete(j);
  return st;
}

/* Tokenizer options and sentence-transformers pooling/normalisation. */
static af_status parse_tokenizer_and_st(const char *dir, af_model_config *c, af_error *err) {
  char path[4096];
  c->lowercase = 1;
  c->strip_accents = -1;
  c->tokenize_chinese_chars = 1;
  int model_max = c->max_position;
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  if (file_exists(path)) {
    cJSON *j;
    AF_TRY(read_json(path, &j, err));
    c->lowercase = json_bool(j, "do_lower_case", 1);
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "strip_accents");
    c->strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : -1;
    c->tokenize_chinese_chars = json_bool(j, "tokenize_chinese_chars", 1);
    const cJSON *mml = cJSON_GetObjectItemCaseSensitive(j, "model_max_length");
    if (cJSON_IsNumber(mml) && mml->valuedouble > 0 && mml->valuedouble < model_max)
      model_max = (int)mml->valuedouble;
    cJSON_Delete(j);
  }
  c->max_seq_len = model_max;
  snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
  if (file_exists(path)) {
    cJSON *j;
    AF_TRY(read_json(path, &j, err));
    int msl = 0;
    af_status st = json_int(j, path, "max_seq_length", 0, 0, &msl, err);
    if (st == AF_OK && json_bool(j, "do_lower_case", 0))
      c->lowercase = 1;
    cJSON_Delete(j);
    AF_TRY(st);
    if (msl > 0 && msl < c->max_seq_len)
      c->max_seq_len = msl;
  }
  /* Plain Hugging Face models get sentence-transformers' default: mean pooling,
   * no normalisation. */
  c->pooling = AF_POOL_MEAN;
  c->normalize = 0;
  snprintf(path, sizeof path, "%s/modules.json", dir);
  if (file_exists(path)) {
    cJSON *j;
    AF_TRY(read_json(path, &j, err));
    af_status st = AF_OK;
    if (!cJSON_IsArray(j))
      st = af_error_set(err, AF_ERR_FORMAT, "%s: expected a JSON array of modules", path);
    const cJSON *mod;
    cJSON_ArrayForEach(mod, j) {
      const cJSON *type = cJSON_GetObjectItemCaseSensitive(mod, "type");
      const cJSON *mpath = cJSON_GetObjectItemCaseSensitive(mod, "path");
      if (!cJSON_IsString(type))
        continue;
      if (strstr(type->valuestring, "Normalize"))
        c->normalize = 1;
      if (strstr(type->valuestring, "Pooling") && cJSON_IsString(mpath) && st == AF_OK) {
        char ppath[4096];
        snprintf(ppath, sizeof ppath, "%s/%s/config.json", dir, mpath->valuestring);
        cJSON *p;
        st = read_json(ppath, &p, err);
        if (st == AF_OK) {
          int mean = json_bool(p, "pooling_mode_mean_tokens", 0);
          int cls = json_bool(p, "pooling_mode_cls_token", 0);
          int other = json_bool(p, "pooling_mode_max_tokens", 0) ||
                      json_bool(p, "pooling_mode_mean_sqrt_len_tokens", 0) ||
                      json_bool(p, "pooling_mode_weightedmean_tokens", 0) ||
                      json_bool(p, "pooling_mode_lasttoken", 0);
          if (mean + cls != 1 || other)
            st = af_error_set(err, AF_ERR_UNSUPPORTED,
                              "%s: only a single mean or CLS pooling mode is supported", ppath);
          c->pooling = cls ? AF_POOL_CLS : AF_POOL_MEAN;
          cJSON_Delete(p);
        }
      }
    }
    cJSON_Delete(j);
    AF_TRY(st);
  }
  return AF_OK;
}

static af_status read_vocab(const char *dir, af_model *m, af_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  char *text;
  size_t len;
  AF_TRY(read_text(path, &text, &len, err));
  int n = 0, cap = 1024;
  char **v = af_malloc((size_t)cap, sizeof *v, err);
  af_status st = v ? AF_OK : AF_ERR_NOMEM;
  char *p = text, *end = text + len;
  while (st == AF_OK && p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl : end;
    size_t l = (size_t)(e - p);
    if (l && p[l - 1] == '\r')
      l--;
    if (n == cap) {
      char **nv = af_realloc(v, (size_t)cap * 2, sizeof *v, err);
      if (!nv) {
        st = AF_ERR_NOMEM;
        break;
      }
      v = nv;
      cap *= 2;
    }
    v[n] = af_malloc(l + 1, 1, err);
    if (!v[n]) {
      st = AF_ERR_NOMEM;
      break;
    }
    memcpy(v[n], p, l);
    v[n][l] = '\0';
    n++;
    p = nl ? nl + 1 : end;
  }
  free(text);
  if (st == AF_OK && (n == 0 || n > m->cfg.vocab_size))
    st = af_error_set(err, AF_ERR_FORMAT, "%s: %d tokens, but config.json vocab_size is %d", path,
                      n, m->cfg.vocab_size);
  static const char *need[] = {"[CLS]", "[SEP]", "[UNK]"};
  for (int k = 0; k < 3 && st == AF_OK; k++) {
    int found = 0;
    for (int i = 0; i < n && !found; i++)
      found = strcmp(v[i], need[k]) == 0;
    if (!found)
      st = af_error_set(err, AF_ERR_FORMAT, "%s: special token %s is missing", path, need[k]);
  }
  if (st != AF_OK) {
    for (int i = 0; i < n; i++)
      free(v[i]);
    free(v);
    return st;
  }
  m->vocab = v;
  m->n_vocab = n;
  return AF_OK;
}

/* Maps a checkpoint tensor name to ours: drops a "bert." prefix and renames
 * old-style LayerNorm gamma/beta. Returns 0 for tensors we do not use. */
static int canonical_name(const char *in, char *out, size_t cap) {
  if (strncmp(in, "bert.", 5) == 0)
    in += 5;
  if (strncmp(in, "embeddings.", 11) != 0 && strncmp(in, "encoder.", 8) != 0 &&
      strncmp(in, "pooler.", 7) != 0)
    return 0; /* task heads (cls.*, ...) */
  if (strcmp(in, "embeddings.position_ids") == 0)
    return 0; /* a buffer, not a parameter */
  snprintf(out, cap, "%s", in);
  size_t l = strlen(out);
  if (l > 6 && strcmp(out + l - 6, ".gamma") == 0)
    snprintf(out + l - 6, cap - (l - 6), ".weight");
  else if (l > 5 && strcmp(out + l - 5, ".beta") == 0)
    snprintf(out + l - 5, cap - (l - 5), ".bias");
  return 1;
}

/* path (4096) = dir/model.safetensors; an error when it is missing. */
static af_status weights_path(const char *dir, char *path, af_error *err) {
  snprintf(path, 4096, "%s/model.safetensors", dir);
  if (file_exists(path))
    return AF_OK;
  char bin[4096];
  snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
  if (file_exists(bin))
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "%s: missing; %s is a pickle file and is never loaded (convert it to "
                        "safetensors first)",
                        path, bin);
  return af_error_set(err, AF_ERR_IO, "%s: missing", path);
}

static af_status read_weights(const char *dir, af_model *m, af_error *err) {
  char path[4096];
  AF_TRY(weights_path(dir, path, err));
  af_safetensors st;
  AF_TRY(af_safetensors_open(path, &st, err));
  unsigned char *seen = af_calloc((size_t)m->n_params, 1, err);
  af_status s = seen ? AF_OK : AF_ERR_NOMEM;
  for (int i = 0; i < st.n_tensors && s == AF_OK; i++) {
    const af_st_tensor *t = &st.tensors[i];
    char name[160];
    if (!canonical_name(t->name, name, sizeof name))
      continue;
    const af_param_info *p = af_model_param(m, name);
    if (!p) {
      s = af_error_set(err, AF_ERR_FORMAT,
                       "%s: tensor %s does not belong to a BERT model with this config.json", path,
                       t->name);
      break;
    }
    int64_t want1 = p->rank == 2 ? p->shape[1] : 1;
    if (t->rank != p->rank || t->shape[0] != p->shape[0] || (t->rank == 2 && t->shape[1] != want1)) {
      s = af_error_set(err, AF_ERR_FORMAT,
                       "%s: tensor %s has shape [%lld%s%lld], config.json implies [%lld%s%lld]", path,
                       t->name, (long long)t->shape[0], t->rank == 2 ? ", " : "",
                       t->rank == 2 ? (long long)t->shape[1] : 0LL, (long long)p->shape[0],
                       p->rank == 2 ? ", " : "", p->rank == 2 ? (long long)want1 : 0LL);
      break;
    }
    s = af_safetensors_read_f32(&st, t, m->data + p->offset, err);
    seen[p - m->params] = 1;
  }
  for (int i = 0; i < m->n_params && s == AF_OK; i++)
    if (!seen[i])
      s = af_error_set(err, AF_ERR_FORMAT, "%s: missing tensor %s", path, m->params[i].name);
  free(seen);
  af_safetensors_close(&st);
  return s;
}

/* Whether the checkpoint carries pooler weights (kept for a faithful export),
 * and *values, the number of values its tensors hold in all. */
static af_status probe_weights(const char *dir, int *has, int64_t *values, af_error *err) {
  char path[4096];
  *has = 0;
  *values = 0;
  AF_TRY(weights_path(dir, path, err));
  af_safetensors st;
  AF_TRY(af_safetensors_open(path, &st, err));
  *has = af_safetensors_find(&st, "pooler.dense.weight") != NULL ||
         af_safetensors_find(&st, "bert.pooler.dense.weight") != NULL;
  int64_t n = 0;
  for (int i = 0; i < st.n_tensors; i++) // numel is bounded by the file size (safetensors.c)
    n += st.tensors[i].numel;
  *values = n;
  af_safetensors_close(&st);
  return AF_OK;
}

af_status af_model_import_hf(const char *dir, af_model *m, af_error *err) {
  af_model_config c;
  memset(&c, 0, sizeof c);
  memset(m, 0, sizeof *m);
  AF_TRY(parse_config(dir, &c, err));
  AF_TRY(parse_tokenizer_and_st(dir, &c, err));
  int64_t values, need = 0;
  AF_TRY(probe_weights(dir, &c.has_pooler, &values, err));
  // Every parameter is read from the weights file, so a config.json implying
  // more values than the file holds cannot load: say so before allocating
  // for it (a crafted config could ask for hundreds of GB).
  af_status st = af_model_config_numel(&c, &need, err);
  if (st == AF_OK && need > values)
    st = af_error_set(err, AF_ERR_FORMAT,
                      "the model it describes has %lld parameter values but %s/model.safetensors "
                      "holds %lld: config.json and the weights do not match",
                      (long long)need, dir, (long long)values);
  if (st == AF_OK)
    st = af_model_create(&c, m, err);
  if (st != AF_OK) {
    af_error_prefix(err, "%s/config.json: ", dir);
    return st;
  }
  st = read_vocab(dir, m, err);
  if (st == AF_OK)
    st = read_weights(dir, m, err);
  if (st == AF_OK) {
    m->name = strdup(dir);
    if (!m->name)
      st = af_error_set(err, AF_ERR_NOMEM, "out of memory");
  }
  if (st != AF_OK)
    af_model_free(m);
  return st;
}
