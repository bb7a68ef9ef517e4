/* The neighbours file, shard merge and the scoring driver (see nbrfile.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"
#include "search/score_bf16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"

void af_shard_rows(int64_t N, int shard_i, int shard_n, int64_t *row0, int64_t *row1) {
  /* N * i fits in int64 for any realistic N (< 2^40) and n (< 2^20). */
  *row0 = N * shard_i / shard_n;
  *row1 = N * (shard_i + 1) / shard_n;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct {
  char path[AF_PATH_MAX];
  char tmp[AF_PATH_MAX];
  hid_t file, nbr, scr;
  int k;
  int64_t rows;
} nbr_out;

static hid_t create_2d(hid_t file, const char *name, hid_t type, int64_t rows, int k) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)k};
  hid_t space = H5Screate_simple(2, dims, NULL);
  if (space < 0)
    return H5I_INVALID_HID;
  hid_t dcpl = af_h5_dataset_plist(); /* no object times: reproducible bytes */
  hid_t ds = dcpl >= 0 ? H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

static void out_abort(nbr_out *o) {
  if (o->nbr >= 0)
    H5Dclose(o->nbr);
  if (o->scr >= 0)
    H5Dclose(o->scr);
  if (o->file >= 0)
    H5Fclose(o->file);
  o->nbr = o->scr = o->file = H5I_INVALID_HID;
  af_discard_file(o->tmp);
}

static af_status out_header(hid_t f, const af_neighbors *h, af_error *err) {
  char shard[64];
  snprintf(shard, sizeof shard, "%d/%d", h->shard_i, h->shard_n);
  AF_TRY(af_h5_attr_set_str(f, ".", "format", AF_NBR_FORMAT, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "format_version", AF_NBR_FORMAT_VERSION, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "k", h->k, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "k_requested", h->k_requested, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "n_total", h->n_total, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "row0", h->row0, err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "row_count", h->row_count, err));
  AF_TRY(af_h5_attr_set_str(f, ".", "shard", shard, err));
  AF_TRY(af_h5_attr_set_f64(f, ".", "min_score", h->min_score, err));
  AF_TRY(af_h5_attr_set_str(f, ".", "metric", "inner_product", err));
  AF_TRY(af_h5_attr_set_i64(f, ".", "normalized", h->normalized, err));
  AF_TRY(af_h5_attr_set_str(f, ".", "model", h->model ? h->model : "unknown", err));
  return AF_OK;
}

/* Creates the temporary file with ids, header and empty [R, k] datasets. */
static af_status out_open(nbr_out *o, const char *path, const char *const *ids,
                          const af_neighbors *h, af_error *err) {
  memset(o, 0, sizeof *o);
  o->file = o->nbr = o->scr = H5I_INVALID_HID;
  o->k = h->k;
  o->rows = h->row_count;
  snprintf(o->path, sizeof o->path, "%s", path);
  AF_TRY(af_tmp_path(path, o->tmp, err));
  o->file = af_h5_create(o->tmp, err);
  if (o->file < 0)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create temporary HDF5 file %s", path, o->tmp);
  af_status st = af_h5_write_strings(o->file, "/ids", ids, (size_t)h->n_total, err);
  if (st == AF_OK)
    st = out_header(o->file, h, err);
  if (st == AF_OK) {
    o->nbr = create_2d(o->file, "/neighbors", H5T_STD_I64LE, h->row_count, h->k);
    o->scr = create_2d(o->file, "/scores", H5T_IEEE_F32LE, h->row_count, h->k);
    if (o->nbr < 0 || o->scr < 0)
      st = af_error_set(err, AF_ERR_HDF5, "cannot create /neighbors and /scores");
  }
  if (st != AF_OK) {
    af_error_prefix(err, "%s: ", path);
    out_abort(o);
  }
  return st;
}

static herr_t write_block(hid_t ds, hid_t mem_type, int64_t r0, int64_t n, int k,
                          const void *buf) {
  hid_t fspace = H5Dget_space(ds);
  if (fspace < 0)
    return -1;
  hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)n, (hsize_t)k};
  herr_t st = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  hid_t mspace = st >= 0 ? H5Screate_simple(2, count, NULL) : H5I_INVALID_HID;
  st = mspace >= 0 ? H5Dwrite(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf) : -1;
  if (mspace >= 0)
    H5Sclose(mspace);
  H5Sclose(fspace);
  return st;
}

/* Writes output rows [r0, r0 + n) (relative to the file's first row). */
static af_status out_rows(nbr_out *o, int64_t r0, int64_t n, const int64_t *nbr /* (n, k) */,
                          const float *scr /* (n, k) */, af_error *err) {
  if (n == 0 || o->k == 0)
    return AF_OK;
  if (write_block(o->nbr, H5T_NATIVE_INT64, r0, n, o->k, nbr) < 0 ||
      write_block(o->scr, H5T_NATIVE_FLOAT, r0, n, o->k, scr) < 0)
    return af_error_set(err, AF_ERR_HDF5, "%s: cannot write rows %lld..%lld", o->path,
                        (long long)r0, (long long)(r0 + n));
  return AF_OK;
}

static af_status out_commit(nbr_out *o, af_error *err) {
  H5Dclose(o->nbr);
  H5Dclose(o->scr);
  o->nbr = o->scr = H5I_INVALID_HID;
  herr_t st = H5Fclose(o->file);
  o->file = H5I_INVALID_HID;
  if (st < 0) {
    af_discard_file(o->tmp);
    return af_error_set(err, AF_ERR_HDF5, "%s: closing the temporary file failed", o->path);
  }
  return af_h5_commit(o->tmp, o->path, err);
}

/* ---- reading ---------------------------------------------------------------- */

static af_status get_int(hid_t f, const char *name, int64_t lo, int64_t hi, int64_t *v,
                         af_error *err) {
  AF_TRY(af_h5_attr_get_i64(f, ".", name, v, err));
  if (*v < lo || *v > hi)
    return af_error_set(err, AF_ERR_FORMAT, "attribute %s = %lld is out of range", name,
                        (long long)*v);
  return AF_OK;
}

static af_status check_2d(hid_t f, const char *name, int64_t rows, int k, af_error *err) {
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(f, name, &rank, dims, err));
  if (rank != 2 || (int64_t)dims[0] != rows || (int64_t)dims[1] != k)
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s does not have shape [%lld, %d]", name,
                        (long long)rows, k);
  return AF_OK;
}

/* Reads the attributes and checks the datasets' shapes (no arrays). */
static af_status read_header(hid_t f, af_neighbors *h, af_error *err) {
  char *format = NULL;
  AF_TRY(af_h5_attr_get_str(f, ".", "format", &format, err));
  int ok = strcmp(format, AF_NBR_FORMAT) == 0;
  free(format);
  if (!ok)
    return af_error_set(err, AF_ERR_FORMAT, "attribute format is not \"%s\"", AF_NBR_FORMAT);
  int64_t v;
  AF_TRY(get_int(f, "format_version", AF_NBR_FORMAT_VERSION, AF_NBR_FORMAT_VERSION, &v, err));
  AF_TRY(get_int(f, "n_total", 0, INT64_MAX / 2, &h->n_total, err));
  AF_TRY(get_int(f, "k", 0, AF_SCORE_MAX_K, &v, err));
  h->k = (int)v;
  AF_TRY(get_int(f, "k_requested", 0, AF_SCORE_MAX_K, &v, err));
  h->k_requested = (int)v;
  AF_TRY(get_int(f, "row0", 0, h->n_total, &h->row0, err));
  AF_TRY(get_int(f, "row_count", 0, h->n_total - h->row0, &h->row_count, err));
  AF_TRY(get_int(f, "normalized", 0, 1, &v, err));
  h->normalized = (int)v;
  AF_TRY(af_h5_attr_get_f64(f, ".", "min_score", &h->min_score, err));
  char *shard = NULL;
  AF_TRY(af_h5_attr_get_str(f, ".", "shard", &shard, err));
  ok = sscanf(shard, "%d/%d", &h->shard_i, &h->shard_n) == 2 && h->shard_n >= 1 &&
       h->shard_i >= 0 && h->shard_i < h->shard_n;
  free(shard);
  if (!ok)
    return af_error_set(err, AF_ERR_FORMAT, "attribute shard is not \"i/n\"");
  AF_TRY(af_h5_attr_get_str(f, ".", "model", &h->model, err));
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(f, "/ids", &rank, dims, err));
  if (rank != 1 || (int64_t)dims[0] != h->n_total)
    return af_error_set(err, AF_ERR_FORMAT, "dataset /ids does not have %lld entries",
                        (long long)h->n_total);
  AF_TRY(check_2d(f, "/neighbors", h->row_count, h->k, err));
  AF_TRY(check_2d(f, "/scores", h->row_count, h->k, err));
  return AF_OK;
}

static af_status read_all(hid_t f, af_neighbors *nb, af_error *err) {
  AF_TRY(read_header(f, nb, err));
  size_t n_ids = 0;
  AF_TRY(af_h5_read_strings(f, "/ids", &nb->ids, &n_ids, err));
  size_t count = (size_t)nb->row_count * (size_t)nb->k;
  nb->nbr = af_malloc(count, sizeof *nb->nbr, err); // (row_count, k)
  nb->scr = af_malloc(count, sizeof *nb->scr, err); // (row_count, k)
  if (!nb->nbr || !nb->scr)
    return AF_ERR_NOMEM;
  AF_TRY(af_h5_read(f, "/neighbors", H5T_NATIVE_INT64, nb->nbr, count, err));
  AF_TRY(af_h5_read(f, "/scores", H5T_NATIVE_FLOAT, nb->scr, count, err));
  for (size_t i = 0; i < count; i++)
    if (nb->nbr[i] < -1 || nb->nbr[i] >= nb->n_total)
      return af_error_set(err, AF_ERR_FORMAT, "dataset /neighbors: row %zu has index %lld",
                          i / (size_t)nb->k, (long long)nb->nbr[i]);
  return AF_OK;
}

af_status af_neighbors_read(const char *path, af_neighbors *out, af_error *err) {
  memset(out, 0, sizeof *out);
  hid_t f;
  AF_TRY(af_h5_open(path, 0, &f, err));
  af_status st = read_all(f, out, err);
  H5Fclose(f);
  if (st != AF_OK) {
    /* ids are owned only once read_strings succeeded with n_total entries */
    af_neighbors_free(out);
    if (err && strncmp(err->msg, path, strlen(path)) != 0)
      af_error_prefix(err, "%s: ", path);
  }
  return st;
}

void af_neighbors_free(af_neighbors *nb) {
  if (!nb)
    return;
  af_h5_free_strings(nb->ids, nb->ids ? (size_t)nb->n_total : 0);
  free(nb->nbr);
  free(nb->scr);
  free(nb->model);
  memset(nb, 0, sizeof *nb);
}

/* ---- scoring driver ----------------------------------------------------------- */

/* Results of all rows at once (the symmetric path's heaps) up to this size. */
#define AF_SYMMETRIC_MAX_BYTES ((int64_t)1 << 30)

/* All rows, each pair computed once (score.h): N x k results held, then streamed out. */
static af_status score_symmetric(const af_embeddings *e, const af_score_index *ix, nbr_out *o,
                                 const af_score_file_options *opt, af_error *err) {
  const int64_t N = e->n;
  const int k = o->k;
  int64_t *nbr = af_malloc((size_t)N * (size_t)k, sizeof *nbr, err); // (N, k)
  float *scr = af_malloc((size_t)N * (size_t)k, sizeof *scr, err);   // (N, k)
  af_status st = nbr && scr ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK && opt->bf16)
    st = af_score_all_pairs_bf16(ix, e->emb, k, opt->bf16_margin < 0 ? k : opt->bf16_margin,
                                 opt->min_score, nbr, scr, &opt->score, opt->bf16_unsure, err);
  else if (st == AF_OK)
    st = af_score_all_pairs_symmetric(ix, e->emb, k, opt->min_score, nbr, scr, &opt->score, err);
  const int64_t chunk = 16384;
  for (int64_t r = 0; st == AF_OK && r < N; r += chunk) {
    int64_t n = N - r < chunk ? N - r : chunk;
    st = out_rows(o, r, n, nbr + (size_t)r * k, scr + (size_t)r * k, err);
    if (st == AF_OK && opt->progress)
      opt->progress(opt->progress_ctx, r + n, N);
  }
  free(nbr);
  free(scr);
  return st;
}

static af_status score_rows(const af_embeddings *e, const af_score_index *ix, nbr_out *o,
                            int64_t row0, int64_t row1, const af_score_file_options *opt,
                            af_error *err) {
  int k = o->k;
  if (opt->bf16 && (row0 != 0 || row1 != e->n))
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "precision bf16 scores all rows at once (the symmetric path); it does "
                        "not take a shard: use fp32 with --shard");
  if (row0 == 0 && row1 == e->n && k > 0 &&
      (opt->bf16 || (!opt->score.asymmetric && e->n * (int64_t)k * 12 <= AF_SYMMETRIC_MAX_BYTES)))
    return score_symmetric(e, ix, o, opt, err);
  /* Rows per chunk: at most about 64 MiB of results, 1024 to 16384 rows. */
  int64_t chunk = k ? ((int64_t)64 << 20) / ((int64_t)k * 12) : row1 - row0;
  if (chunk < 1024)
    chunk = 1024;
  if (chunk > 16384) /* progress granularity; 64 tasks of 256 rows keep threads busy */
    chunk = 16384;
  if (chunk > row1 - row0)
    chunk = row1 - row0 > 0 ? row1 - row0 : 1;
  int64_t *nbr = af_malloc((size_t)chunk * (size_t)(k ? k : 1), sizeof *nbr, err); // (chunk, k)
  float *scr = af_malloc((size_t)chunk * (size_t)(k ? k : 1), sizeof *scr, err);   // (chunk, k)
  int64_t *exclude = af_malloc((size_t)chunk, sizeof *exclude, err);                // (chunk)
  af_status st = nbr && scr && exclude ? AF_OK : AF_ERR_NOMEM;
  for (int64_t r = row0; st == AF_OK && r < row1; r += chunk) {
    int64_t n = row1 - r < chunk ? row1 - r : chunk;
    for (int64_t i = 0; i < n; i++)
      exclude[i] = r + i;
    st = af_score_index_search(ix, e->emb + (size_t)r * (size_t)e->d, n, exclude, NULL, k,
                               opt->min_score, nbr, scr, &opt->score, err);
    if (st == AF_OK)
      st = out_rows(o, r - row0, n, nbr, scr, err);
    if (st == AF_OK && opt->progress)
      opt->progress(opt->progress_ctx, r + n - row0, row1 - row0);
  }
  free(nbr);
  free(scr);
  free(exclude);
  return st;
}

/* The GPU scorer over rows [row0, row1), in one call (the base is uploaded
 * once), then written in one piece. */
static af_status score_rows_device(const af_embeddings *e, nbr_out *o, int64_t row0,
                                   int64_t row1, const af_score_file_options *opt,
                                   af_error *err) {
  const int k = o->k;
  const size_t n = (size_t)(row1 - row0) * (size_t)(k ? k : 1);
  int64_t *nbr = af_malloc(n, sizeof *nbr, err); // (R, k)
  float *scr = nbr ? af_malloc(n, sizeof *scr, err) : NULL;
  af_status st = scr ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK)
    st = af_bf16_topk_device(opt->device, e->emb, e->n, e->d, k, opt->margin ? opt->margin : 16,
                             opt->min_score, row0, row1, nbr, scr, opt->uncertified, err);
  if (st == AF_OK)
    st = out_rows(o, 0, row1 - row0, nbr, scr, err);
  if (st == AF_OK && opt->progress)
    opt->progress(opt->progress_ctx, row1 - row0, row1 - row0);
  free(nbr);
  free(scr);
  return st;
}

af_status af_score_file(const char *emb_path, const char *out_path,
                        const af_score_file_options *opt, af_error *err) {
  if (opt->k < 1 || opt->k > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "k = %d is outside [1, %d]", opt->k, AF_SCORE_MAX_K);
  if (opt->shard_n < 1 || opt->shard_i < 0 || opt->shard_i >= opt->shard_n)
    return af_error_set(err, AF_ERR_ARG, "shard %d/%d: need 0 <= i < n", opt->shard_i,
                        opt->shard_n);
  if (isnan(opt->min_score))
    return af_error_set(err, AF_ERR_ARG, "min_score is NaN");
  af_embeddings e;
  AF_TRY(af_embeddings_read(emb_path, &e, err));
  int64_t row0, row1;
  af_shard_rows(e.n, opt->shard_i, opt->shard_n, &row0, &row1);
  af_neighbors h = {0};
  h.n_total = e.n;
  h.k_requested = opt->k;
  h.k = e.n > 1 ? (int)(opt->k < e.n - 1 ? opt->k : e.n - 1) : 0;
  h.row0 = row0;
  h.row_count = row1 - row0;
  h.shard_i = opt->shard_i;
  h.shard_n = opt->shard_n;
  h.min_score = opt->min_score;
  h.normalized = e.normalized;
  h.model = e.model;
  af_score_index *ix = NULL;
  af_status st = af_score_index_build(e.emb, e.n, e.d, &ix, err);
  nbr_out o;
  int opened = 0;
  if (st == AF_OK) {
    st = out_open(&o, out_path, (const char *const *)e.ids, &h, err);
    opened = st == AF_OK;
  }
  if (st == AF_OK && opt->device && opt->device->backend != AF_BACKEND_CPU)
    st = score_rows_device(&e, &o, row0, row1, opt, err);
  else if (st == AF_OK)
    st = score_rows(&e, ix, &o, row0, row1, opt, err);
  if (st == AF_OK)
    st = out_commit(&o, err);
  else if (opened)
    out_abort(&o);
  af_score_index_free(ix);
  af_embeddings_free(&e);
  return st;
}

/* ---- merge -------------------------------------------------------------------- */

typedef struct {
  const char *path;
  hid_t file;
  af_neighbors h;
} shard_in;

static int by_row0(const void *a, const void *b) {
  const shard_in *x = a, *y = b;
  return x->h.row0 < y->h.row0 ? -1 : x->h.row0 > y->h.row0;
}

static af_status same_header(const shard_in *a, const shard_in *b, af_error *err) {
  const char *what = NULL;
  if (a->h.n_total != b->h.n_total)
    what = "n_total";
  else if (a->h.k != b->h.k)
    what = "k";
  else if (a->h.k_requested != b->h.k_requested)
    what = "k_requested";
  else if (memcmp(&a->h.min_score, &b->h.min_score, sizeof(double)) != 0)
    what = "min_score";
  else if (a->h.normalized != b->h.normalized)
    what = "normalized";
  else if (strcmp(a->h.model, b->h.model) != 0)
    what = "model";
  if (what)
    return af_error_set(err, AF_ERR_FORMAT, "%s: attribute %s differs from %s", b->path, what,
                        a->path);
  return AF_OK;
}

static af_status copy_rows(const shard_in *s, nbr_out *o, af_error *err) {
  int k = s->h.k;
  if (k == 0 || s->h.row_count == 0)
    return AF_OK;
  int64_t chunk = ((int64_t)64 << 20) / ((int64_t)k * 12);
  if (chunk < 1)
    chunk = 1;
  if (chunk > s->h.row_count)
    chunk = s->h.row_count;
  int64_t *nbr = af_malloc((size_t)chunk * (size_t)k, sizeof *nbr, err); // (chunk, k)
  float *scr = af_malloc((size_t)chunk * (size_t)k, sizeof *scr, err);   // (chunk, k)
  af_status st = nbr && scr ? AF_OK : AF_ERR_NOMEM;
  for (int64_t r = 0; st == AF_OK && r < s->h.row_count; r += chunk) {
    int64_t n = s->h.row_count - r < chunk ? s->h.row_count - r : chunk;
    st = af_h5_read_rows(s->file, "/neighbors", H5T_NATIVE_INT64, nbr, (hsize_t)r, (hsize_t)n,
                         err);
    if (st == AF_OK)
      st = af_h5_read_rows(s->file, "/scores", H5T_NATIVE_FLOAT, scr, (hsize_t)r, (hsize_t)n,
                           err);
    if (st != AF_OK)
      af_error_prefix(err, "%s: ", s->path);
    if (st == AF_OK)
      st = out_rows(o, s->h.row0 + r, n, nbr, scr, err);
  }
  free(nbr);
  free(scr);
  return st;
}

static af_status merge_open(shard_in *in, int n, char ***ids, af_error *err) {
  for (int i = 0; i < n; i++) {
    AF_TRY(af_h5_open(in[i].path, 0, &in[i].file, err));
    af_status st = read_header(in[i].file, &in[i].h, err);
    if (st != AF_OK)
      return af_error_prefix(err, "%s: ", in[i].path);
    if (i > 0)
      AF_TRY(same_header(&in[0], &in[i], err));
  }
  qsort(in, (size_t)n, sizeof *in, by_row0);
  int64_t next = 0;
  for (int i = 0; i < n; i++) {
    if (in[i].h.row0 != next)
      return af_error_set(err, AF_ERR_FORMAT, "%s: rows start at %lld, expected %lld (%s)",
                          in[i].path, (long long)in[i].h.row0, (long long)next,
                          in[i].h.row0 < next ? "overlapping shards" : "a shard is missing");
    next += in[i].h.row_count;
  }
  if (next != in[0].h.n_total)
    return af_error_set(err, AF_ERR_FORMAT, "shards cover rows [0, %lld) of %lld: a shard is missing",
                        (long long)next, (long long)in[0].h.n_total);
  size_t n_ids = 0;
  af_status st = af_h5_read_strings(in[0].file, "/ids", ids, &n_ids, err);
  if (st != AF_OK)
    return af_error_prefix(err, "%s: ", in[0].path);
  for (int i = 1; i < n; i++) {
    char **other = NULL;
    size_t n_other = 0;
    st = af_h5_read_strings(in[i].file, "/ids", &other, &n_other, err);
    if (st != AF_OK)
      return af_error_prefix(err, "%s: ", in[i].path);
    for (size_t j = 0; st == AF_OK && j < n_ids; j++)
      if (strcmp((*ids)[j], other[j]) != 0)
        st = af_error_set(err, AF_ERR_FORMAT, "%s: /ids differs from %s at row %zu", in[i].path,
                          in[0].path, j);
    af_h5_free_strings(other, n_other);
    AF_TRY(st);
  }
  return AF_OK;
}

af_status af_neighbors_merge(const char *const *inputs, int n_inputs, const char *out_path,
                             af_error *err) {
  if (n_inputs < 1)
    return af_error_set(err, AF_ERR_ARG, "merge: no input files");
  shard_in *in = af_calloc((size_t)n_inputs, sizeof *in, err);
  if (!in)
    return AF_ERR_NOMEM;
  for (int i = 0; i < n_inputs; i++) {
    in[i].path = inputs[i];
    in[i].file = H5I_INVALID_HID;
  }
  char **ids = NULL;
  af_status st = merge_open(in, n_inputs, &ids, err);
  nbr_out o;
  int opened = 0;
  if (st == AF_OK) {
    af_neighbors h = in[0].h;
    h.row0 = 0;
    h.row_count = h.n_total;
    h.shard_i = 0;
    h.shard_n = 1;
    st = out_open(&o, out_path, (const char *const *)ids, &h, err);
    opened = st == AF_OK;
  }
  for (int i = 0; st == AF_OK && i < n_inputs; i++)
    st = copy_rows(&in[i], &o, err);
  if (st == AF_OK)
    st = out_commit(&o, err);
  else if (opened)
    out_abort(&o);
  if (ids)
    af_h5_free_strings(ids, (size_t)in[0].h.n_total);
  for (int i = 0; i < n_inputs; i++) {
    if (in[i].file >= 0)
      H5Fclose(in[i].file);
    free(in[i].h.model);
  }
  free(in);
  return st;
}
