/* The BERT-family encoder: configuration, parameters (one contiguous buffer
 * described by a table of named tensors, Hugging Face names), the vocabulary
 * and tokenizer options, and the forward pass over packed batches.
 *
 * Post-LayerNorm BERT: word + position + token-type embeddings -> LayerNorm ->
 * L x [QKV -> attention -> output proj -> +res -> LN -> FFN(erf-GELU) -> +res -> LN]
 * -> pooling (mean or CLS) -> optional L2 normalisation. */
#ifndef AF_MODEL_H
#define AF_MODEL_H

#include <hdf5.h>
#include <stdint.h>

#include "affinity.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  char name[96]; /* Hugging Face name, e.g. "encoder.layer.0.attention.self.query.weight" */
  int rank;
  int64_t shape[2];
  int64_t offset; /* in floats, into af_model.params */
  int64_t numel;
} af_param_info;

typedef struct {
  float *qkv_w;  /* (3C, C): query, key, value weights stacked */
  float *qkv_b;  /* (3C) */
  float *ao_w;   /* (C, C) attention output dense */
  float *ao_b;   /* (C) */
  float *ln1_w, *ln1_b; /* (C) attention.output.LayerNorm */
  float *fc_w;   /* (F, C) intermediate dense */
  float *fc_b;   /* (F) */
  float *proj_w; /* (C, F) output dense */
  float *proj_b; /* (C) */
  float *ln2_w, *ln2_b; /* (C) output.LayerNorm */
} af_layer_params;

typedef struct {
  float *wte;  /* (V, C) */
  float *wpe;  /* (P, C) */
  float *wtt;  /* (TT, C) */
  float *ln_w, *ln_b; /* (C) embeddings.LayerNorm */
  af_layer_params *layers; /* (L) */
  float *pool_w, *pool_b;  /* (C, C), (C) pooler.dense, NULL when absent */
} af_model_weights;

typedef struct af_model {
  af_model_config cfg;
  char *name; /* where it came from, e.g. "sentence-transformers/all-MiniLM-L6-v2" */
  int n_params;
  af_param_info *params; /* (n_params) */
  int64_t n_floats;
  float *data; /* (n_floats) all parameters */
  af_model_weights w; /* pointers into data */
  int n_vocab;
  char **vocab; /* (n_vocab) token i has id i */
} af_model;

/* Builds the parameter table for cfg, allocates zeroed parameters. */
af_status af_model_create(const af_model_config *cfg, af_model *m, af_error *err);
/* The parameter values (not floats of storage: no alignment padding) a model
 * of cfg has, after the checks af_model_create makes; allocates nothing big.
 * Importers compare it with what the weights file holds before allocating. */
af_status af_model_config_numel(const af_model_config *cfg, int64_t *numel, af_error *err);

void af_model_free(af_model *m);
const af_param_info *af_model_param(const af_model *m, const char *name);
float *af_model_param_data(const af_model *m, const char *name);

/* Imports a Hugging Face folder: config.json, model.safetensors, vocab.txt,
 * tokenizer_config.json and (if present) modules.json, 1_Pooling/config.json,
 * sentence_bert_config.json. Errors name the file and tensor at fault. */
af_status af_model_import_hf(const char *dir, af_model *m, af_error *err);

/* HDF5 checkpoint (docs/checkpoint-format.md). write_h5/read_h5 work on an
 * open file so training can add its own groups; save/load are whole files
 * (save is atomic: tmp + rename). */
af_status af_model_write_h5(hid_t file, const af_model *m, af_error *err);
af_status af_model_read_h5(hid_t file, const char *path, af_model *m, af_error *err);
af_status af_model_save(const char *path, const af_model *m, af_error *err);
af_status af_model_load(const char *path, af_model *m, af_error *err);

/* A packed batch the model can run: B, T >= 1, cu_seqlens from 0 to T, every
 * sequence 1..max_position tokens, every id in the vocabulary. The encoder and
 * the trainer both check with it. */
af_status af_batch_check(const af_model_config *c, const af_batch *b, af_error *err);

/* The device the encoder runs on (its staging buffers come from af_host_alloc
 * on it). */
const af_device *af_encoder_device(const af_encoder *e);

/* af_encoder_forward without waiting: the batch's uploads (on the upload
 * queue), its kernels (compute) and the download of out (B, C) (download
 * queue) are queued, ordered by events, so that consecutive calls overlap one
 * batch's copies with another's kernels (encoder.c, "async forward"). b->ids
 * (T), b->cu_seqlens (B + 1), pos (T, filled here with the positions) and out
 * should be pinned (af_host_alloc on af_encoder_device) and must stay
 * untouched, and out unread, until the next af_dev_sync of that device, which
 * also reports an error of the queued work. On the CPU the copies are memcpy
 * and the result is af_encoder_forward's, bit for bit. hidden: use
 * af_encoder_forward. */
af_status af_encoder_forward_async(af_encoder *e, const af_batch *b, int32_t *pos, float *out,
                                   af_error *err);

#ifdef __cplusplus
}
#endif
#endif
