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

#include "base/error.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { AF_POOL_MEAN = 0, AF_POOL_CLS = 1 } af_pooling;

typedef struct {
  int vocab_size;        /* V */
  int hidden_size;       /* C */
  int num_layers;        /* L */
  int num_heads;         /* NH */
  int intermediate_size; /* F */
  int max_position;      /* P */
  int type_vocab_size;   /* TT */
  float layer_norm_eps;
  af_pooling pooling;
  int normalize;   /* L2-normalise the pooled embedding */
  int max_seq_len; /* tokens per sequence incl. [CLS]/[SEP] (sentence-transformers max_seq_length) */
  int has_pooler;  /* the checkpoint carries pooler.dense (kept for export; unused here) */
  /* tokenizer options */
  int lowercase;
  int strip_accents; /* 1, 0, -1 = follow lowercase */
  int tokenize_chinese_chars;
} af_model_config;

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

/* ---- forward ----------------------------------------------------------------- */

/* A packed batch: B sequences, T tokens in all, host arrays. */
typedef struct {
  int B, T;
  const int32_t *ids;        /* (T) */
  const int32_t *cu_seqlens; /* (B + 1), cu_seqlens[0] = 0, cu_seqlens[B] = T */
} af_batch;

/* Runs a model on a device: the parameters (copied to the device for CUDA)
 * and activation buffers sized for the largest batch seen so far. */
typedef struct af_encoder af_encoder;

af_status af_encoder_create(const af_model *m, const af_device *dev, af_encoder **out,
                            af_error *err);
void af_encoder_free(af_encoder *enc);
/* C of the encoder's model. */
int af_encoder_hidden_size(const af_encoder *enc);
/* Re-copies the host parameters to the device (after training changed them). */
af_status af_encoder_sync_params(af_encoder *enc, af_error *err);

/* Arithmetic of the forward pass. FP32: every op in fp32 (the parity mode,
 * matching Hugging Face to 1e-4). BF16: the GEMMs take bf16 weights (a copy at
 * the fp32 table's offsets) and bf16 activations with fp32 accumulation; the
 * residual stream, LayerNorm, softmax, GELU and pooling stay fp32 (ops.h,
 * "bf16 inference ops"). DEFAULT: BF16 on a GPU, FP32 on the CPU (where BF16
 * is an exact but slow emulation, for tests). */
typedef enum { AF_PRECISION_DEFAULT = 0, AF_PRECISION_FP32 = 1, AF_PRECISION_BF16 = 2 } af_precision;

/* Parses "fp32" / "bf16" (field names the flag in the error). */
af_status af_precision_parse(const char *s, const char *field, af_precision *out, af_error *err);
/* FP32 or BF16: what DEFAULT means on dev. */
af_precision af_precision_resolve(af_precision p, const af_device *dev);
/* Switches the encoder's precision (BF16 makes and uploads the bf16 weights). */
af_status af_encoder_set_precision(af_encoder *enc, af_precision p, af_error *err);

/* out (B, C) host: pooled (and, if the model says so, L2-normalised)
 * embeddings. hidden (L + 1, T, C) host, may be NULL: the embedding output and
 * each layer's output (Hugging Face's output_hidden_states). Sequences must
 * have 1..cfg.max_position tokens. */
af_status af_encoder_forward(af_encoder *enc, const af_batch *batch, float *out, float *hidden,
                             af_error *err);

#ifdef __cplusplus
}
#endif
#endif
