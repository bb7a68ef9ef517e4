/* Hugging Face / sentence-transformers export (include/affinity.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"
#include "nn/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"

static af_status write_text(const char *dir, const char *name, const char *text, af_error *err) {
  char path[2 * AF_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  int bad = fputs(text, f) < 0;
  bad |= fclose(f) != 0;
  return bad ? af_error_set(err, AF_ERR_IO, "%s: write failed", path) : AF_OK;
}

/* Prints j (formatted, trailing newline) into dir/name and deletes j. */
static af_status write_json(const char *dir, const char *name, cJSON *j, af_error *err) {
  if (!j)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory building %s", name);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  if (!s)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory printing %s", name);
  size_t n = strlen(s);
  char *t = malloc(n + 2);
  if (!t) {
    free(s);
    return af_error_set(err, AF_ERR_NOMEM, "out of memory");
  }
  memcpy(t, s, n);
  t[n] = '\n';
  t[n + 1] = '\0';
  free(s);
  af_status st = write_text(dir, name, t, err);
  free(t);
  return st;
}

static cJSON *config_json(const af_model *m) {
  const af_model_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject();
  cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
  cJSON_AddItemToArray(arch, cJSON_CreateString("BertModel"));
  cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", 0.1);
  cJSON_AddNumberToObject(j, "hidden_dropout_prob", 0.1);
  cJSON_AddStringToObject(j, "hidden_act", "gelu");
  cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
  cJSON_AddNumberToObject(j, "initializer_range", 0.02);
  cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
  /* the shortest decimal that reads back as the same float (1e-12, not 9.9999999e-13) */
  char eps[32];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(eps, sizeof eps, "%.*g", prec, (double)c->layer_norm_eps);
    if (strtof(eps, NULL) == c->layer_norm_eps)
      break;
  }
  cJSON_AddRawToObject(j, "layer_norm_eps", eps);
  cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position);
  cJSON_AddStringToObject(j, "model_type", "bert");
  cJSON_AddNumberToObject(j, "num_attention_heads", c->num_heads);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_layers);
  cJSON_AddNumberToObject(j, "pad_token_id", 0);
  cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  cJSON_AddNumberToObject(j, "type_vocab_size", c->type_vocab_size);
  cJSON_AddBoolToObject(j, "use_cache", 1);
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
  return j;
}

static void add_special_tokens(cJSON *j) {
  cJSON_AddStringToObject(j, "cls_token", "[CLS]");
  cJSON_AddStringToObject(j, "mask_token", "[MASK]");
  cJSON_AddStringToObject(j, "pad_token", "[PAD]");
  cJSON_AddStringToObject(j, "sep_token", "[SEP]");
  cJSON_AddStringToObject(j, "unk_token", "[UNK]");
}

static cJSON *tokenizer_config_json(const af_model *m) {
  const af_model_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "clean_up_tokenization_spaces", 1);
  cJSON_AddBoolToObject(j, "do_basic_tokenize", 1);
  cJSON_AddBoolToObject(j, "do_lower_case", c->lowercase);
  cJSON_AddNumberToObject(j, "model_max_length", c->max_position);
  cJSON_AddNullToObject(j, "never_split");
  if (c->strip_accents < 0)
    cJSON_AddNullToObject(j, "strip_accents");
  else
    cJSON_AddBoolToObject(j, "strip_accents", c->strip_accents);
  cJSON_AddBoolToObject(j, "tokenize_chinese_chars", c->tokenize_chinese_chars);
  cJSON_AddStringToObject(j, "tokenizer_class", "BertTokenizer");
  add_special_tokens(j);
  return j;
}

static cJSON *modules_json(const af_model *m) {
  static const char *types[3] = {"sentence_transformers.models.Transformer",
                                 "sentence_transformers.models.Pooling",
                                 "sentence_transformers.models.Normalize"};
  static const char *paths[3] = {"", "1_Pooling", "2_Normalize"};
  cJSON *j = cJSON_CreateArray();
  for (int i = 0; i < (m->cfg.normalize ? 3 : 2); i++) {
    cJSON *o = cJSON_CreateObject();
    char name[4];
    snprintf(name, sizeof name, "%d", i);
    cJSON_AddNumberToObject(o, "idx", i);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "path", paths[i]);
    cJSON_AddStringToObject(o, "type", types[i]);
    cJSON_AddItemToArray(j, o);
  }
  return j;
}

static cJSON *pooling_json(const af_model *m) {
  cJSON *j = cJSON_CreateObject();
  int cls = m->cfg.pooling == AF_POOL_CLS;
  cJSON_AddNumberToObject(j, "word_embedding_dimension", m->cfg.hidden_size);
  cJSON_AddBoolToObject(j, "pooling_mode_cls_token", cls);
  cJSON_AddBoolToObject(j, "pooling_mode_mean_tokens", !cls);
  cJSON_AddBoolToObject(j, "pooling_mode_max_tokens", 0);
  cJSON_AddBoolToObject(j, "pooling_mode_mean_sqrt_len_tokens", 0);
  cJSON_AddBoolToObject(j, "pooling_mode_weightedmean_tokens", 0);
  cJSON_AddBoolToObject(j, "pooling_mode_lasttoken", 0);
  cJSON_AddBoolToObject(j, "include_prompt", 1);
  return j;
}

static cJSON *st_config_json(void) {
  cJSON *j = cJSON_CreateObject();
  cJSON *v = cJSON_AddObjectToObject(j, "__version__");
  cJSON_AddStringToObject(v, "sentence_transformers", "3.0.0");
  cJSON_AddStringToObject(v, "affinity", AF_VERSION_STRING);
  cJSON_AddObjectToObject(j, "prompts");
  cJSON_AddNullToObject(j, "default_prompt_name");
  cJSON_AddStringToObject(j, "similarity_fn_name", "cosine");
  return j;
}

static af_status write_vocab(const af_model *m, const char *dir, af_error *err) {
  char path[2 * AF_PATH_MAX];
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  FILE *f = fopen(path, "wb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  int bad = 0;
  for (int i = 0; i < m->n_vocab && !bad; i++)
    bad = fprintf(f, "%s\n", m->vocab[i]) < 0;
  bad |= fclose(f) != 0;
  return bad ? af_error_set(err, AF_ERR_IO, "%s: write failed", path) : AF_OK;
}

static af_status write_weights(const af_model *m, const char *dir, af_error *err) {
  char path[2 * AF_PATH_MAX];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  const int n = m->n_params;
  const char **names = af_malloc((size_t)n, sizeof *names, err);
  int *ranks = names ? af_malloc((size_t)n, sizeof *ranks, err) : NULL;
  int64_t(*shapes)[8] = ranks ? af_calloc((size_t)n, sizeof *shapes, err) : NULL;
  const float **data = shapes ? af_malloc((size_t)n, sizeof *data, err) : NULL;
  af_status st = data ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK) {
    for (int i = 0; i < n; i++) {
      const af_param_info *p = &m->params[i];
      names[i] = p->name;
      ranks[i] = p->rank;
      shapes[i][0] = p->shape[0];
      shapes[i][1] = p->rank == 2 ? p->shape[1] : 0;
      data[i] = m->data + p->offset;
    }
    st = af_safetensors_write_f32(path, n, names, ranks, (const int64_t(*)[8])shapes, data, err);
  }
  free(names);
  free(ranks);
  free(shapes);
  free(data);
  return st;
}

static const char *FILES[] = {"model.safetensors",
                              "config.json",
                              "vocab.txt",
                              "tokenizer_config.json",
                              "special_tokens_map.json",
                              "modules.json",
                              "sentence_bert_config.json",
                              "config_sentence_transformers.json",
                              "1_Pooling/config.json"};
#define N_FILES (sizeof FILES / sizeof FILES[0])

static void remove_staging(const char *tmp) {
  char p[2 * AF_PATH_MAX];
  for (size_t i = 0; i < N_FILES; i++) {
    snprintf(p, sizeof p, "%s/%s", tmp, FILES[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/1_Pooling", tmp);
  rmdir(p);
  snprintf(p, sizeof p, "%s/2_Normalize", tmp);
  rmdir(p);
  rmdir(tmp);
}

static af_status mkdir_p1(const char *path, af_error *err) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
  return AF_OK;
}

af_status af_export_hf(const af_model *m, const char *dir, af_error *err) {
  char tmp[AF_PATH_MAX], sub[2 * AF_PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid()) >= (int)sizeof tmp - 16)
    return af_error_set(err, AF_ERR_ARG, "%s: path too long", dir);
  remove_staging(tmp);
  if (mkdir(tmp, 0755) != 0)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
  snprintf(sub, sizeof sub, "%s/1_Pooling", tmp);
  af_status st = mkdir_p1(sub, err);
  if (st == AF_OK && m->cfg.normalize) {
    snprintf(sub, sizeof sub, "%s/2_Normalize", tmp);
    st = mkdir_p1(sub, err);
  }
  if (st == AF_OK)
    st = write_weights(m, tmp, err);
  if (st == AF_OK)
    st = write_json(tmp, "config.json", config_json(m), err);
  if (st == AF_OK)
    st = write_vocab(m, tmp, err);
  if (st == AF_OK)
    st = write_json(tmp, "tokenizer_config.json", tokenizer_config_json(m), err);
  if (st == AF_OK) {
    cJSON *j = cJSON_CreateObject();
    if (j)
      add_special_tokens(j);
    st = write_json(tmp, "special_tokens_map.json", j, err);
  }
  if (st == AF_OK)
    st = write_json(tmp, "modules.json", modules_json(m), err);
  if (st == AF_OK)
    st = write_json(tmp, "1_Pooling/config.json", pooling_json(m), err);
  if (st == AF_OK) {
    cJSON *j = cJSON_CreateObject();
    if (j) {
      cJSON_AddNumberToObject(j, "max_seq_length", m->cfg.max_seq_len);
      cJSON_AddBoolToObject(j, "do_lower_case", 0);
    }
    st = write_json(tmp, "sentence_bert_config.json", j, err);
  }
  if (st == AF_OK)
    st = write_json(tmp, "config_sentence_transformers.json", st_config_json(), err);
  if (st != AF_OK) {
    remove_staging(tmp);
    return st;
  }
  /* publish */
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    if (rename(tmp, dir) != 0) {
      st = af_error_set(err, AF_ERR_IO, "%s: cannot rename %s to it: %s", dir, tmp,
                        strerror(errno));
      remove_staging(tmp);
    }
    return st;
  }
  if (!S_ISDIR(sb.st_mode)) {
    remove_staging(tmp);
    return af_error_set(err, AF_ERR_IO, "%s exists and is not a folder", dir);
  }
  snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
  st = mkdir_p1(sub, err);
  if (st == AF_OK && m->cfg.normalize) {
    snprintf(sub, sizeof sub, "%s/2_Normalize", dir);
    st = mkdir_p1(sub, err);
  }
  for (size_t i = 0; i < N_FILES && st == AF_OK; i++) {
    char from[2 * AF_PATH_MAX], to[2 * AF_PATH_MAX];
    snprintf(from, sizeof from, "%s/%s", tmp, FILES[i]);
    snprintf(to, sizeof to, "%s/%s", dir, FILES[i]);
    if (rename(from, to) != 0)
      st = af_error_set(err, AF_ERR_IO, "%s: cannot move into place: %s", to, strerror(errno));
  }
  remove_staging(tmp);
  return st;
}
