/* Text to embeddings (see embed.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"
#include "nn/model.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "base/strmap.h"

#define CHUNK_ROWS 4096 /* rows tokenized together (in parallel) before encoding, at least */

/* Rows per chunk: 4,096, or enough that a packed batch of batch_tokens is never
 * cut short by the chunk (a row has >= 2 tokens: [CLS] and [SEP]). */
static int chunk_rows_for(int batch_tokens) {
  return batch_tokens / 2 > CHUNK_ROWS ? batch_tokens / 2 : CHUNK_ROWS;
}

af_status af_model_tokenizer(const af_model *m, int max_len, af_tokenizer **out, af_error *err) {
  af_tokenizer_options o;
  af_tokenizer_default_options(&o);
  o.lowercase = m->cfg.lowercase;
  o.strip_accents = m->cfg.strip_accents;
  o.tokenize_chinese_chars = m->cfg.tokenize_chinese_chars;
  o.max_len = (max_len > 0 && max_len < m->cfg.max_seq_len) ? max_len : m->cfg.max_seq_len;
  return af_tokenizer_create((const char *const *)m->vocab, m->n_vocab, &o, out, err);
}

void af_embed_default_options(af_embed_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->batch_tokens = 8192;
}

/* Tokenized rows of one chunk of `rows` rows: ids (rows, max_len) with lengths.
 * With `async` (the pipelined encode) the encoder's staging buffers are pinned
 * (af_host_alloc on dev) and hold every batch of the chunk side by side, so a
 * batch's copies are queued without waiting for the one before. */
typedef struct {
  int max_len, async;
  const af_device *dev; /* the encoder's device (staging buffers, async only) */
  int32_t *ids;  /* (rows, max_len) */
  int32_t *lens; /* (rows) */
  int32_t *packed, *cu; /* (batch_tokens + max_len), (rows + 1); async: (rows * max_len), (2 rows + 1) */
  int32_t *pos;  /* async: (rows * max_len) positions, filled by the encoder */
  float *out;    /* (rows, C) */
} chunk_buffers;

static void free_chunk(chunk_buffers *b) {
  free(b->ids);
  free(b->lens);
  if (b->async) {
    af_host_free(b->dev, b->packed);
    af_host_free(b->dev, b->cu);
    af_host_free(b->dev, b->pos);
    af_host_free(b->dev, b->out);
  } else {
    free(b->packed);
    free(b->cu);
    free(b->out);
  }
  memset(b, 0, sizeof *b);
}

/* The pinned staging buffers of an async chunk of `rows` rows. */
static af_status alloc_staging(chunk_buffers *b, int rows, int C, af_error *err) {
  const size_t tok = (size_t)rows * b->max_len * sizeof(int32_t);
  AF_TRY(af_host_alloc(b->dev, tok, (void **)&b->packed, err));
  AF_TRY(af_host_alloc(b->dev, tok, (void **)&b->pos, err));
  AF_TRY(af_host_alloc(b->dev, (2 * (size_t)rows + 1) * sizeof(int32_t), (void **)&b->cu, err));
  return af_host_alloc(b->dev, (size_t)rows * C * sizeof(float), (void **)&b->out, err);
}

/* Buffers for chunks of at most `rows` rows: a small call
 * (a 32-text batch) must not allocate, and page-fault, a 10 MB chunk.
 * dev != NULL: the async (pinned) staging on that device. */
static af_status alloc_chunk(chunk_buffers *b, int rows, int max_len, int batch_tokens, int C,
                             const af_device *dev, af_error *err) {
  memset(b, 0, sizeof *b);
  b->max_len = max_len;
  b->ids = af_malloc((size_t)rows * max_len, sizeof(int32_t), err);
  b->lens = b->ids ? af_malloc((size_t)rows, sizeof(int32_t), err) : NULL;
  if (b->lens && dev) {
    b->async = 1;
    b->dev = dev;
    af_status st = alloc_staging(b, rows, C, err);
    if (st != AF_OK)
      free_chunk(b);
    return st;
  }
  b->packed = b->lens ? af_malloc((size_t)batch_tokens + max_len, sizeof(int32_t), err) : NULL;
  b->cu = b->packed ? af_malloc((size_t)rows + 1, sizeof(int32_t), err) : NULL;
  b->out = b->cu ? af_malloc((size_t)rows * C, sizeof(float), err) : NULL;
  if (!b->out) {
    free_chunk(b);
    return AF_ERR_NOMEM;
  }
  return AF_OK;
}

/* Tokenizes texts[0..n) in parallel into b. */
static af_status tokenize_chunk(const af_tokenizer *tok, const char *const *texts, int n,
                                chunk_buffers *b, af_error *err) {
  af_status st = AF_OK;
  int bad = -1;
  af_error first = {0};
#pragma omp parallel for schedule(dynamic, 64)
  for (int i = 0; i < n; i++) {
    af_error e = {0};
    int len = 0;
    if (af_tokenizer_encode(tok, texts[i], strlen(texts[i]), b->ids + (size_t)i * b->max_len,
                            b->max_len, &len, &e) != AF_OK) {
#pragma omp critical(af_embed_err)
      if (bad < 0 || i < bad) {
        bad = i;
        first = e;
      }
    }
    b->lens[i] = len;
  }
  if (bad >= 0) {
    if (err)
      *err = first;
    st = first.code ? first.code : AF_ERR_FORMAT;
  }
  return st;
}

/* Packs rows i.. of b into one batch of at most batch_tokens at packed / cu. */
static af_batch pack_batch(const chunk_buffers *b, int i, int n, int batch_tokens,
                           int32_t *packed, int32_t *cu) {
  int B = 0, T = 0;
  cu[0] = 0;
  while (i + B < n && (B == 0 || T + b->lens[i + B] <= batch_tokens)) {
    memcpy(packed + T, b->ids + (size_t)(i + B) * b->max_len,
           sizeof(int32_t) * (size_t)b->lens[i + B]);
    T += b->lens[i + B];
    cu[++B] = T;
  }
  return (af_batch){B, T, packed, cu};
}

/* The async encode of a chunk: every batch packed into its own part of the
 * pinned staging and queued (its upload, kernels and download, each on its
 * own queue: af_encoder_forward_async) without a wait; the host waits once,
 * before the rows are written. */
static af_status encode_chunk_async(af_encoder *enc, chunk_buffers *b, int n, int C,
                                    int batch_tokens, af_error *err) {
  size_t t0 = 0, c0 = 0; // tokens and cu_seqlens entries of the batches queued so far
  af_status st = AF_OK;
  for (int i = 0; i < n && st == AF_OK;) {
    af_batch batch = pack_batch(b, i, n, batch_tokens, b->packed + t0, b->cu + c0);
    st = af_encoder_forward_async(enc, &batch, b->pos + t0, b->out + (size_t)i * C, err);
    i += batch.B;
    t0 += (size_t)batch.T;
    c0 += (size_t)batch.B + 1;
  }
  // Always wait: queued copies must not outlive the staging (nor the slot's reuse).
  af_error sync_err = {0};
  af_status ss = af_dev_sync(b->dev, st == AF_OK ? err : &sync_err);
  return st != AF_OK ? st : ss;
}

/* Encodes the n tokenized rows of b in packed batches of at most batch_tokens. */
static af_status encode_chunk(af_encoder *enc, chunk_buffers *b, int n, int C, int batch_tokens,
                              af_error *err) {
  if (b->async)
    return encode_chunk_async(enc, b, n, C, batch_tokens, err);
  for (int i = 0; i < n;) {
    af_batch batch = pack_batch(b, i, n, batch_tokens, b->packed, b->cu);
    AF_TRY(af_encoder_forward(enc, &batch, b->out + (size_t)i * C, NULL, err));
    i += batch.B;
  }
  return AF_OK;
}

/* Whether the encode runs pipelined (the option; by default on a GPU only). */
static int pipelined(const af_embed_options *opt, const af_device *dev) {
  const int p = opt ? opt->pipeline : 0;
  return p > 0 || (p == 0 && dev->backend != AF_BACKEND_CPU);
}

af_status af_embed_texts(af_encoder *enc, const af_tokenizer *tok, const char *const *texts,
                         int64_t n, const af_embed_options *opt, float *out, af_error *err) {
  const int max_len = af_tokenizer_options_of(tok)->max_len;
  int batch_tokens = opt && opt->batch_tokens > 0 ? opt->batch_tokens : 8192;
  if (batch_tokens < max_len)
    batch_tokens = max_len;
  const int C = af_encoder_hidden_size(enc);
  chunk_buffers b;
  const int chunk = chunk_rows_for(batch_tokens);
  const int rows = n < chunk ? (int)(n > 0 ? n : 1) : chunk;
  /* a packed batch never holds more tokens than the rows can have */
  if ((int64_t)batch_tokens > (int64_t)rows * max_len)
    batch_tokens = rows * max_len;
  const af_device *dev = af_encoder_device(enc);
  AF_TRY(alloc_chunk(&b, rows, max_len, batch_tokens, C, pipelined(opt, dev) ? dev : NULL, err));
  af_status st = AF_OK;
  for (int64_t r0 = 0; r0 < n && st == AF_OK; r0 += chunk) {
    int cn = (int)(n - r0 < chunk ? n - r0 : chunk);
    st = tokenize_chunk(tok, texts + r0, cn, &b, err);
    if (st == AF_OK)
      st = encode_chunk(enc, &b, cn, C, batch_tokens, err);
    if (st == AF_OK)
      memcpy(out + (size_t)r0 * C, b.out, sizeof(float) * (size_t)cn * C);
    if (st == AF_OK && opt && opt->progress)
      opt->progress(opt->progress_ctx, r0 + cn, n);
  }
  free_chunk(&b);
  return st;
}

/* ---- catalog streaming ----------------------------------------------------------- */

typedef struct {
  af_csv *csv;
  int n_header;
  int id_col;
  int text_cols[16];
  int n_text;
} catalog_reader;

static af_status open_catalog(const af_catalog_source *src, catalog_reader *r, af_error *err) {
  memset(r, 0, sizeof *r);
  if (src->n_text_columns < 1 || src->n_text_columns > 16)
    return af_error_set(err, AF_ERR_ARG, "between 1 and 16 text columns are supported");
  AF_TRY(af_csv_open(src->path, src->delimiter ? src->delimiter : ',', &r->csv, err));
  char **f;
  int n, eof;
  af_status st = af_csv_next(r->csv, &f, &n, &eof, err);
  if (st == AF_OK && eof)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file (no header)", src->path);
  if (st == AF_OK)
    st = af_csv_column(f, n, src->id_column, src->path, &r->id_col, err);
  for (int i = 0; i < src->n_text_columns && st == AF_OK; i++)
    st = af_csv_column(f, n, src->text_columns[i], src->path, &r->text_cols[i], err);
  r->n_header = n;
  r->n_text = src->n_text_columns;
  if (st != AF_OK) {
    af_csv_close(r->csv);
    r->csv = NULL;
  }
  return st;
}

/* Next data row (blank lines skipped); *eof at the end. */
static af_status next_row(catalog_reader *r, char ***fields, int *eof, af_error *err) {
  for (;;) {
    int n;
    AF_TRY(af_csv_next(r->csv, fields, &n, eof, err));
    if (*eof)
      return AF_OK;
    if (n == 1 && (*fields)[0][0] == '\0')
      continue;
    if (n != r->n_header)
      return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields, found %d",
                          af_csv_path(r->csv), (long long)af_csv_record_line(r->csv), r->n_header,
                          n);
    return AF_OK;
  }
}

/* Joins the text columns of a row into buf (grown as needed). */
static af_status join_text(const catalog_reader *r, char **fields, char **buf, size_t *cap,
                           af_error *err) {
  size_t need = 1;
  for (int i = 0; i < r->n_text; i++)
    need += strlen(fields[r->text_cols[i]]) + 1;
  if (need > *cap) {
    char *nb = af_realloc(*buf, need, 1, err);
    if (!nb)
      return AF_ERR_NOMEM;
    *buf = nb;
    *cap = need;
  }
  size_t o = 0;
  for (int i = 0; i < r->n_text; i++) {
    const char *s = fields[r->text_cols[i]];
    size_t l = strlen(s);
    if (o && l)
      (*buf)[o++] = ' ';
    memcpy(*buf + o, s, l);
    o += l;
  }
  (*buf)[o] = '\0';
  return AF_OK;
}

typedef struct {
  char *arena; /* texts and ids of the chunk, back to back */
  size_t used, cap;
  size_t *text_off, *id_off;  /* (rows) */
  const char **texts, **ids;  /* (rows) */
} chunk_rows;

static void free_rows(chunk_rows *c) {
  free(c->arena);
  free(c->text_off);
  free(c->id_off);
  free(c->texts);
  free(c->ids);
  memset(c, 0, sizeof *c);
}

static af_status alloc_rows(chunk_rows *c, int rows, af_error *err) {
  memset(c, 0, sizeof *c);
  c->text_off = af_malloc((size_t)rows, sizeof(size_t), err);
  c->id_off = c->text_off ? af_malloc((size_t)rows, sizeof(size_t), err) : NULL;
  c->texts = c->id_off ? af_malloc((size_t)rows, sizeof(char *), err) : NULL;
  c->ids = c->texts ? af_malloc((size_t)rows, sizeof(char *), err) : NULL;
  if (!c->ids) {
    free_rows(c);
    return AF_ERR_NOMEM;
  }
  return AF_OK;
}

static af_status arena_push(chunk_rows *c, const char *s, size_t *off, af_error *err) {
  size_t l = strlen(s) + 1;
  if (c->used + l > c->cap) {
    size_t cap = (c->cap + l) * 2;
    char *na = af_realloc(c->arena, cap, 1, err);
    if (!na)
      return AF_ERR_NOMEM;
    c->arena = na;
    c->cap = cap;
  }
  memcpy(c->arena + c->used, s, l);
  *off = c->used;
  c->used += l;
  return AF_OK;
}

static af_status count_rows(const af_catalog_source *src, int64_t *n, af_error *err) {
  catalog_reader r;
  AF_TRY(open_catalog(src, &r, err));
  af_status st = AF_OK;
  int64_t count = 0;
  for (;;) {
    char **f;
    int eof;
    st = next_row(&r, &f, &eof, err);
    if (st != AF_OK || eof)
      break;
    count++;
  }
  af_csv_close(r.csv);
  *n = count;
  return st;
}

static const char *pooling_name(const af_model *m) {
  return m->cfg.pooling == AF_POOL_CLS ? "cls" : "mean";
}

/* Everything a chunk's reading and tokenizing touches: the reader's side of
 * the pipeline (one thread at a time uses it). */
typedef struct {
  const af_catalog_source *src;
  catalog_reader r;
  af_strmap *seen;
  const af_tokenizer *tok;
  char *text;
  size_t text_cap;
  int64_t N, next; /* rows in the catalog, first row not yet read */
  int chunk;       /* rows per chunk */
} reader_side;

/* One chunk's rows and tokens, and the outcome of preparing them. */
typedef struct {
  chunk_rows rows;
  chunk_buffers b;
  int64_t first;
  int cn;
  af_status st;
  af_error err;
} chunk_slot;

/* Reads the next chunk of rows into c (ids and texts normalised, duplicate and
 * empty ids refused). */
static af_status read_chunk(reader_side *rs, chunk_rows *c, int *cn_out, af_error *err) {
  catalog_reader *r = &rs->r;
  c->used = 0;
  int cn = 0;
  af_status st = AF_OK;
  while (st == AF_OK && cn < rs->chunk && rs->next + cn < rs->N) {
    char **f;
    int eof;
    AF_TRY(next_row(r, &f, &eof, err));
    if (eof)
      return af_error_set(err, AF_ERR_IO, "%s: changed while being read", rs->src->path);
    /* the one id rule (docs/data-formats.md): ids and texts normalised as
     * the catalog loader does, so the file matches af_catalog_load's ids */
    af_normalize_ws(f[r->id_col]);
    for (int t = 0; t < r->n_text; t++)
      af_normalize_ws(f[r->text_cols[t]]);
    const char *id = f[r->id_col];
    int64_t line = af_csv_record_line(r->csv);
    if (id[0] == '\0')
      return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: empty id in column '%s'", rs->src->path,
                          (long long)line, rs->src->id_column);
    int64_t prev;
    st = af_strmap_put(rs->seen, id, strlen(id), line, &prev, NULL, err);
    if (st == AF_OK && prev >= 0)
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: duplicate id '%s' (first on line %lld)",
                        rs->src->path, (long long)line, id, (long long)prev);
    if (st == AF_OK) st = join_text(r, f, &rs->text, &rs->text_cap, err);
    if (st == AF_OK) st = arena_push(c, rs->text, &c->text_off[cn], err);
    if (st == AF_OK) st = arena_push(c, id, &c->id_off[cn], err);
    cn++;
  }
  for (int i = 0; st == AF_OK && i < cn; i++) {
    c->texts[i] = c->arena + c->text_off[i];
    c->ids[i] = c->arena + c->id_off[i];
  }
  *cn_out = cn;
  return st;
}

typedef struct {
  reader_side *rs;
  chunk_slot *slot;
} prep_job;

/* Reads and tokenizes the next chunk into the slot (the pipeline's second
 * thread, or inline). */
static void *prepare_chunk(void *arg) {
  prep_job *j = arg;
  chunk_slot *s = j->slot;
  s->err = (af_error){0};
  s->first = j->rs->next;
  s->st = read_chunk(j->rs, &s->rows, &s->cn, &s->err);
  if (s->st == AF_OK)
    s->st = tokenize_chunk(j->rs->tok, s->rows.texts, s->cn, &s->b, &s->err);
  j->rs->next += s->cn;
  return NULL;
}

/* Encodes and writes a prepared chunk. */
static af_status finish_chunk(af_encoder *enc, af_emb_writer *w, chunk_slot *s, int C,
                              int batch_tokens, af_error *err) {
  AF_TRY(encode_chunk(enc, &s->b, s->cn, C, batch_tokens, err));
  AF_TRY(af_emb_writer_rows(w, s->first, s->cn, s->b.out, err));
  return af_emb_writer_id_rows(w, s->first, s->cn, s->rows.ids, err);
}

/* The chunks through encode and write; with `overlap`, chunk c + 1 is read and
 * tokenized on a second thread while chunk c is encoded and written (reading
 * and HDF5 never run on the same thread at once; the reader side is touched by
 * one thread at a time). Same rows, same order, same bits either way. */
static af_status run_chunks(reader_side *rs, chunk_slot slot[2], af_encoder *enc,
                            af_emb_writer *w, int C, int batch_tokens, int overlap,
                            const af_embed_options *opt, af_error *err) {
  prep_job job = {rs, &slot[0]};
  prepare_chunk(&job);
  af_status st = slot[0].st;
  if (st != AF_OK)
    *err = slot[0].err;
  for (int cur = 0; st == AF_OK && slot[cur].cn > 0;) {
    const int nx = overlap ? cur ^ 1 : cur; // without overlap: one slot, used in turn
    const int more = rs->next < rs->N;
    prep_job next = {rs, &slot[nx]};
    pthread_t th;
    const int threaded = more && overlap && pthread_create(&th, NULL, prepare_chunk, &next) == 0;
    st = finish_chunk(enc, w, &slot[cur], C, batch_tokens, err);
    if (threaded)
      pthread_join(th, NULL);
    if (st == AF_OK && opt->progress)
      opt->progress(opt->progress_ctx, slot[cur].first + slot[cur].cn, rs->N);
    if (st != AF_OK || !more)
      break;
    if (!threaded)
      prepare_chunk(&next);
    if ((st = slot[nx].st) != AF_OK)
      *err = slot[nx].err;
    cur = nx;
  }
  return st;
}

af_status af_embed_catalog(const af_model *m, const af_device *dev, const af_catalog_source *src,
                           const af_embed_options *opt_in, const char *out_path, int64_t *n_rows,
                           af_error *err) {
  af_embed_options opt;
  if (opt_in)
    opt = *opt_in;
  else
    af_embed_default_options(&opt);
  int64_t N = 0;
  AF_TRY(count_rows(src, &N, err));
  if (N == 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s: header only, no rows", src->path);

  const int C = m->cfg.hidden_size;
  af_tokenizer *tok = NULL;
  af_encoder *enc = NULL;
  af_emb_writer *w = NULL;
  reader_side rs = {.src = src, .N = N};
  chunk_slot slot[2];
  memset(slot, 0, sizeof slot);
  af_status st = af_model_tokenizer(m, opt.max_len, &tok, err);
  const int max_len = st == AF_OK ? af_tokenizer_options_of(tok)->max_len : 0;
  int batch_tokens = opt.batch_tokens > max_len ? opt.batch_tokens : max_len;
  const int overlap = pipelined(&opt, dev);
  rs.tok = tok;
  rs.chunk = chunk_rows_for(batch_tokens);
  if (st == AF_OK) st = af_encoder_create(m, dev, &enc, err);
  if (st == AF_OK) st = af_encoder_set_precision(enc, opt.precision, err);
  for (int i = 0; i < 1 + overlap && st == AF_OK; i++) {
    st = alloc_rows(&slot[i].rows, rs.chunk, err);
    if (st == AF_OK)
      st = alloc_chunk(&slot[i].b, rs.chunk, max_len, batch_tokens, C,
                       overlap ? af_encoder_device(enc) : NULL, err);
  }
  if (st == AF_OK) st = af_strmap_create((size_t)N, &rs.seen, err);
  if (st == AF_OK)
    st = af_emb_writer_open(out_path, N, C, m->name ? m->name : "", pooling_name(m),
                            m->cfg.normalize, &w, err);
  if (st == AF_OK) st = open_catalog(src, &rs.r, err);
  if (st == AF_OK) st = run_chunks(&rs, slot, enc, w, C, batch_tokens, overlap, &opt, err);
  if (rs.r.csv)
    af_csv_close(rs.r.csv);
  if (w) {
    if (st == AF_OK)
      st = af_emb_writer_commit(w, err);
    else
      af_emb_writer_abort(w);
  }
  if (st == AF_OK && n_rows)
    *n_rows = N;
  free(rs.text);
  for (int i = 0; i < 1 + overlap; i++) {
    free_rows(&slot[i].rows);
    free_chunk(&slot[i].b);
  }
  af_strmap_free(rs.seen);
  af_encoder_free(enc);
  af_tokenizer_free(tok);
  return st;
}
