/* Catalog + baskets + product vectors for associate and eval (see assoc_input.h). */
#include "assoc_input.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"

af_status af_assoc_input_load(const af_args *a, af_assoc_input *ai, af_error *err) {
  memset(ai, 0, sizeof *ai);
  const char *cat, *path;
  AF_TRY(af_arg_required(a, "catalog", &cat, err));
  AF_TRY(af_arg_required(a, "baskets", &path, err));
  const char **text_cols = NULL, **cat_cols = NULL;
  int n_text = af_arg_all(a, "text-column", &text_cols);
  int n_cat = af_arg_all(a, "category-column", &cat_cols);
  const char *def_text[1] = {"product_name"};
  const char *id_col = af_arg_str(a, "id-column");
  af_status st = AF_OK;
  if (n_cat > AF_ASSOC_MAX_LEVELS) {
    st = af_error_set(err, AF_ERR_ARG, "at most %d --category-column flags", AF_ASSOC_MAX_LEVELS);
    goto done;
  }
  af_catalog_options co = {.id_column = id_col ? id_col : "product_id",
                           .text_columns = n_text ? text_cols : def_text,
                           .n_text_columns = n_text ? n_text : 1,
                           .category_column = n_cat ? cat_cols[0] : NULL};
  if ((st = af_catalog_load(cat, &co, &ai->in.catalog, err)) != AF_OK)
    goto done;
  ai->in.has_catalog = 1;
  if (n_cat)
    ai->levels[ai->n_levels++] = (const char *const *)ai->in.catalog.categories;
  for (int l = 1; l < n_cat; l++) {
    co.category_column = cat_cols[l];
    if ((st = af_catalog_load(cat, &co, &ai->extra[l], err)) != AF_OK)
      goto done;
    ai->levels[ai->n_levels++] = (const char *const *)ai->extra[l].categories;
  }
  af_baskets_options bo = {af_arg_str(a, "baskets-format"), af_arg_str(a, "order-column"),
                           af_arg_str(a, "item-column"), ',', af_arg_flag(a, "drop-unknown")};
  st = af_baskets_load(path, &bo, &ai->in.catalog, &ai->in.baskets, &ai->in.report, err);
done:
  free(text_cols);
  free(cat_cols);
  if (st != AF_OK)
    af_assoc_input_free(ai);
  return st;
}

void af_assoc_input_free(af_assoc_input *ai) {
  af_basket_input_free(&ai->in);
  for (int l = 0; l < AF_ASSOC_MAX_LEVELS; l++)
    if (ai->extra[l].n || ai->extra[l].ids)
      af_catalog_free(&ai->extra[l]);
  memset(ai, 0, sizeof *ai);
}

static af_status vectors_from_file(const char *path, const af_catalog *c, const char *cat_path,
                                   float **out, int *d, af_error *err) {
  af_embeddings e = {0};
  af_status st =
      af_embeddings_read_catalog(path, (const char *const *)c->ids, c->n, cat_path, &e, err);
  if (st == AF_OK) {
    *out = af_malloc((size_t)c->n * e.d + 1, sizeof **out, err);
    if (!*out)
      st = AF_ERR_NOMEM;
    else
      st = af_fuse_align_embeddings(path, (const char *const *)e.ids, e.emb, e.n, e.d,
                                    (const char *const *)c->ids, c->n, *out, err);
    *d = e.d;
  }
  af_embeddings_free(&e);
  if (st != AF_OK) {
    free(*out);
    *out = NULL;
  }
  return st;
}

static af_status vectors_from_model(const af_args *a, const char *path, const af_catalog *c,
                                    float **out, int *d, af_error *err) {
  int64_t threads;
  AF_TRY(af_arg_i64(a, "threads", 0, 0, 4096, &threads, err));
  af_device dev;
  AF_TRY(af_cli_device(a, (int)threads, &dev, err));
  af_model *m = NULL;
  af_tokenizer *tok = NULL;
  af_encoder *enc = NULL;
  af_status st = af_model_open(path, &m, err);
  if (st != AF_OK) {
    af_device_release(&dev);
    return st;
  }
  if ((st = af_model_tokenizer(m, 0, &tok, err)) == AF_OK &&
      (st = af_encoder_create(m, &dev, &enc, err)) == AF_OK &&
      // embed's default: bf16 on a GPU, fp32 on the CPU (the encoder starts in fp32)
      (st = af_encoder_set_precision(enc, AF_PRECISION_DEFAULT, err)) == AF_OK) {
    *d = af_model_get_config(m)->hidden_size;
    *out = af_malloc((size_t)c->n * *d + 1, sizeof **out, err);
    if (!*out)
      st = AF_ERR_NOMEM;
    else {
      af_embed_options eo;
      af_embed_default_options(&eo);
      double t0 = af_now_seconds();
      st = af_embed_texts(enc, tok, (const char *const *)c->texts, c->n, &eo, *out, err);
      if (st == AF_OK) {
        fprintf(stderr, "embedded %lld catalog rows with %s in %.1f s\n", (long long)c->n, path,
                af_now_seconds() - t0);
        for (int64_t i = 0; i < c->n; i++) {
          float *x = *out + i * *d;
          double nn = 0;
          for (int j = 0; j < *d; j++)
            nn += (double)x[j] * x[j];
          double inv = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
          for (int j = 0; j < *d; j++)
            x[j] = (float)(x[j] * inv);
        }
      }
    }
  }
  if (enc)
    af_encoder_free(enc);
  if (tok)
    af_tokenizer_free(tok);
  af_model_close(m);
  af_device_release(&dev);
  if (st != AF_OK) {
    free(*out);
    *out = NULL;
    af_error_prefix(err, "%s: ", path);
  }
  return st;
}

af_status af_assoc_vectors(const af_args *a, const af_catalog *c, const char *emb_path,
                           const char *model_path, float **out, int *d, af_error *err) {
  *out = NULL;
  *d = 0;
  if (emb_path && model_path)
    return af_error_set(err, AF_ERR_ARG, "give embeddings or a model, not both");
  if (emb_path)
    return vectors_from_file(emb_path, c, af_arg_str(a, "catalog"), out, d, err);
  if (model_path)
    return vectors_from_model(a, model_path, c, out, d, err);
  return af_error_set(err, AF_ERR_ARG, "missing --embeddings or --model");
}
