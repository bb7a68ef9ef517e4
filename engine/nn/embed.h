/* Text to embeddings: the model's tokenizer, embedding of in-memory texts, and
 * streaming embedding of a whole catalog CSV into an embeddings file
 * (docs/embeddings-format.md). Memory is bounded by one chunk of rows and its
 * batches' activations, plus the output ids; never by the catalog's texts. */
#ifndef AF_EMBED_H
#define AF_EMBED_H

#include <stdint.h>

#include "base/error.h"
#include "nn/model.h"
#include "ops.h"
#include "nn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The tokenizer described by the model's vocabulary and options; max_len 0
 * means the model's max_seq_length (a larger value is clamped to it). */
af_status af_model_tokenizer(const af_model *m, int max_len, af_tokenizer **out, af_error *err);

typedef void (*af_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
  int max_len;        /* tokens per text incl. [CLS]/[SEP]; 0 = the model's */
  int batch_tokens;   /* token budget of one packed forward batch (default 8192) */
  af_precision precision; /* encoder arithmetic (model.h); DEFAULT: bf16 on a GPU, fp32 on the CPU */
  af_progress_fn progress; /* may be NULL */
  void *progress_ctx;
} af_embed_options;

void af_embed_default_options(af_embed_options *opt);

/* Embeds n texts: out (n, C). */
af_status af_embed_texts(af_encoder *enc, const af_tokenizer *tok, const char *const *texts,
                         int64_t n, const af_embed_options *opt, float *out, af_error *err);

typedef struct {
  const char *path;
  const char *id_column;
  const char *const *text_columns; /* joined with one space */
  int n_text_columns;
  char delimiter;
} af_catalog_source;

/* Streams the catalog twice (count, then embed) and writes `out_path`
 * atomically: /ids, /embeddings (N, C), attributes model and pooling.
 * Duplicate or empty ids and rows with the wrong number of fields are errors
 * naming the file and line. *n_rows (may be NULL) receives N. */
af_status af_embed_catalog(const af_model *m, const af_device *dev, const af_catalog_source *src,
                           const af_embed_options *opt, const char *out_path, int64_t *n_rows,
                           af_error *err);

#ifdef __cplusplus
}
#endif
#endif
