/* The embeddings file (see embfile.h and docs/embeddings-format.md). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "io/npy.h"

/* ---- reading ---------------------------------------------------------------- */

/* format and format_version: required together when present; a file from
 * another tool (h5py) may have neither. */
static af_status check_format(hid_t f, int *ours, af_error *err) {
  *ours = 0;
  if (!af_h5_attr_exists(f, ".", "format")) {
    if (af_h5_attr_exists(f, ".", "format_version"))
      return af_error_set(err, AF_ERR_FORMAT, "attribute format_version without format");
    return AF_OK;
  }
  char *format = NULL;
  AF_TRY(af_h5_attr_get_str(f, ".", "format", &format, err));
  int ok = strcmp(format, AF_EMB_FORMAT) == 0;
  free(format);
  *ours = ok;
  if (!ok)
    return af_error_set(err, AF_ERR_FORMAT, "attribute format is not \"%s\"", AF_EMB_FORMAT);
  int64_t version = 0;
  AF_TRY(af_h5_attr_get_i64(f, ".", "format_version", &version, err));
  if (version != AF_EMB_FORMAT_VERSION)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "attribute format_version is %lld; this build reads version %d",
                        (long long)version, AF_EMB_FORMAT_VERSION);
  return AF_OK;
}

static af_status check_attrs(hid_t f, af_embeddings *e, int *ours, af_error *err) {
  AF_TRY(check_format(f, ours, err));
  /* model, pooling and normalized describe the vectors; absent means unknown. */
  if (af_h5_attr_exists(f, ".", "model"))
    AF_TRY(af_h5_attr_get_str(f, ".", "model", &e->model, err));
  if (af_h5_attr_exists(f, ".", "pooling"))
    AF_TRY(af_h5_attr_get_str(f, ".", "pooling", &e->pooling, err));
  if (af_h5_attr_exists(f, ".", "normalized")) {
    int64_t v = 0;
    AF_TRY(af_h5_attr_get_i64(f, ".", "normalized", &v, err));
    if (v != 0 && v != 1)
      return af_error_set(err, AF_ERR_FORMAT, "attribute normalized is %lld, expected 0 or 1",
                          (long long)v);
    e->normalized = (int)v;
  }
  return AF_OK;
}

static af_status check_finite(const af_embeddings *e, const char *what, af_error *err) {
  size_t count = (size_t)e->n * (size_t)e->d;
  for (size_t i = 0; i < count; i++)
    if (!isfinite(e->emb[i]))
      return af_error_set(err, AF_ERR_FORMAT, "%s: row %zu column %zu is %g", what,
                          i / (size_t)e->d, i % (size_t)e->d, (double)e->emb[i]);
  return AF_OK;
}

/* ids "0", "1", ... for a file without ids (see af_embeddings_read_catalog). */
static af_status row_number_ids(af_embeddings *e, const int64_t *values, af_error *err) {
  e->ids = af_calloc((size_t)e->n + 1, sizeof *e->ids, err);
  if (!e->ids)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < e->n; i++) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)(values ? values[i] : i));
    if (!(e->ids[i] = strdup(buf)))
      return af_error_set(err, AF_ERR_NOMEM, "out of memory");
  }
  return AF_OK;
}

static af_status integer_ids(hid_t f, af_embeddings *e, af_error *err) {
  int64_t *v = af_malloc((size_t)e->n + 1, sizeof *v, err); /* (n) */
  if (!v)
    return AF_ERR_NOMEM;
  af_status st = af_h5_read(f, "/ids", H5T_NATIVE_INT64, v, (size_t)e->n, err);
  if (st == AF_OK)
    st = row_number_ids(e, v, err);
  free(v);
  return st;
}

/* /ids: strings or integers, exactly N of them; absent (in a file without our
 * format attribute) means row numbers. */
static af_status read_ids(hid_t f, int ours, af_embeddings *e, int *rows, af_error *err) {
  if (!af_h5_exists(f, "/ids") && !ours) {
    *rows = 1;
    return row_number_ids(e, NULL, err);
  }
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(f, "/ids", &rank, dims, err));
  if (rank != 1 || (int64_t)dims[0] != e->n)
    return af_error_set(err, AF_ERR_FORMAT,
                        "dataset /ids has %llu entries but /embeddings has %lld rows",
                        rank == 1 ? (unsigned long long)dims[0] : 0ull, (long long)e->n);
  hid_t ds = H5Dopen2(f, "/ids", H5P_DEFAULT);
  hid_t t = ds >= 0 ? H5Dget_type(ds) : H5I_INVALID_HID;
  H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  if (t >= 0)
    H5Tclose(t);
  if (ds >= 0)
    H5Dclose(ds);
  if (cls == H5T_INTEGER)
    return integer_ids(f, e, err);
  size_t n_ids = 0;
  AF_TRY(af_h5_read_strings(f, "/ids", &e->ids, &n_ids, err));
  return AF_OK;
}

static af_status read_embeddings(hid_t f, af_embeddings *e, int *rows, af_error *err) {
  int ours = 0;
  AF_TRY(check_attrs(f, e, &ours, err));
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(f, "/embeddings", &rank, dims, err));
  if (rank != 2)
    return af_error_set(err, AF_ERR_FORMAT, "dataset /embeddings has rank %d, expected 2 [N, d]",
                        rank);
  if (dims[1] < 1 || dims[1] > (1 << 20))
    return af_error_set(err, AF_ERR_FORMAT, "dataset /embeddings has dimension %llu",
                        (unsigned long long)dims[1]);
  e->n = (int64_t)dims[0];
  e->d = (int)dims[1];
  if (af_h5_attr_exists(f, ".", "dim")) {
    int64_t dim = 0;
    AF_TRY(af_h5_attr_get_i64(f, ".", "dim", &dim, err));
    if (dim != e->d)
      return af_error_set(err, AF_ERR_FORMAT,
                          "attribute dim is %lld but dataset /embeddings has %d columns",
                          (long long)dim, e->d);
  }
  {
    hid_t ds = H5Dopen2(f, "/embeddings", H5P_DEFAULT);
    hid_t t = ds >= 0 ? H5Dget_type(ds) : H5I_INVALID_HID;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0)
      H5Tclose(t);
    if (ds >= 0)
      H5Dclose(ds);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
      return af_error_set(err, AF_ERR_FORMAT, "dataset /embeddings is not numeric");
  }
  size_t count = (size_t)e->n * (size_t)e->d;
  e->emb = af_malloc(count, sizeof(float), err); // (n, d)
  if (!e->emb)
    return AF_ERR_NOMEM;
  AF_TRY(af_h5_read(f, "/embeddings", H5T_NATIVE_FLOAT, e->emb, count, err));
  AF_TRY(check_finite(e, "dataset /embeddings", err));
  return read_ids(f, ours, e, rows, err);
}

static af_status dup_or_default(char **s, af_error *err) {
  if (*s)
    return AF_OK;
  *s = strdup("unknown");
  return *s ? AF_OK : af_error_set(err, AF_ERR_NOMEM, "out of memory");
}

static af_status read_npy(const char *path, af_embeddings *e, int *rows, af_error *err) {
  AF_TRY(af_npy_read_f32(path, &e->emb, &e->n, &e->d, err));
  AF_TRY(check_finite(e, ".npy data", err));
  *rows = 1;
  return row_number_ids(e, NULL, err);
}

static af_status read_hdf5(const char *path, af_embeddings *e, int *rows, af_error *err) {
  hid_t f;
  AF_TRY(af_h5_open(path, 0, &f, err));
  af_status st = read_embeddings(f, e, rows, err);
  H5Fclose(f);
  return st;
}

/* .npy by its magic, else HDF5. */
static af_status read_any(const char *path, af_embeddings *e, int *rows, af_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char head[8];
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  if (af_npy_is_npy(head, n))
    return read_npy(path, e, rows, err);
  return read_hdf5(path, e, rows, err);
}

/* *rows = 1 when the file has no ids (they read as row numbers). */
static af_status read_file(const char *path, af_embeddings *out, int *rows, af_error *err) {
  memset(out, 0, sizeof *out);
  *rows = 0;
  af_status st = read_any(path, out, rows, err);
  if (st == AF_OK)
    st = dup_or_default(&out->model, err);
  if (st == AF_OK)
    st = dup_or_default(&out->pooling, err);
  if (st != AF_OK) {
    af_embeddings_free(out);
    /* h5util messages name the object; add the file. */
    if (err && strncmp(err->msg, path, strlen(path)) != 0)
      af_error_prefix(err, "%s: ", path);
  }
  return st;
}

af_status af_embeddings_read(const char *path, af_embeddings *out, af_error *err) {
  int rows;
  return read_file(path, out, &rows, err);
}

/* Row i takes catalog id i; the counts must agree. */
static af_status adopt_catalog_ids(af_embeddings *e, const char *emb_path,
                                   const char *const *ids, int64_t n, const char *catalog_path,
                                   af_error *err) {
  if (e->n != n)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s has %lld rows but the catalog %s has %lld; a file without /ids must "
                        "have one row per catalog row, in catalog order",
                        emb_path, (long long)e->n, catalog_path ? catalog_path : "(catalog)",
                        (long long)n);
  for (int64_t i = 0; i < n; i++) {
    char *s = strdup(ids[i]);
    if (!s)
      return af_error_set(err, AF_ERR_NOMEM, "out of memory");
    free(e->ids[i]);
    e->ids[i] = s;
  }
  return AF_OK;
}

af_status af_embeddings_read_catalog(const char *path, const char *const *ids, int64_t n,
                                     const char *catalog_path, af_embeddings *out,
                                     af_error *err) {
  int rows;
  AF_TRY(read_file(path, out, &rows, err));
  af_status st = rows ? adopt_catalog_ids(out, path, ids, n, catalog_path, err) : AF_OK;
  if (st != AF_OK)
    af_embeddings_free(out);
  return st;
}

void af_embeddings_free(af_embeddings *e) {
  if (!e)
    return;
  af_h5_free_strings(e->ids, e->ids ? (size_t)e->n : 0);
  free(e->emb);
  free(e->model);
  free(e->pooling);
  memset(e, 0, sizeof *e);
}

/* ---- streaming writer ------------------------------------------------------- */

struct af_emb_writer {
  char path[AF_PATH_MAX];
  char tmp[AF_PATH_MAX];
  hid_t file, emb, ids, str_type;
  int64_t n;
  int d;
  unsigned char *row_done; /* (n) 1 once the row was written */
  unsigned char *id_done;  /* (n) */
};

static hid_t create_dataset(hid_t file, const char *name, hid_t file_type, int rank,
                            const hsize_t *dims) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  if (space < 0)
    return H5I_INVALID_HID;
  hid_t dcpl = af_h5_dataset_plist(); /* no object times: reproducible bytes */
  hid_t ds = dcpl >= 0 ? H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

/* Writes rows [row0, row0 + nrows) of a rank-1 or rank-2 dataset. */
static herr_t write_rows(hid_t ds, hid_t mem_type, int rank, hsize_t row0, hsize_t nrows,
                         hsize_t cols, const void *buf) {
  hid_t fspace = H5Dget_space(ds);
  if (fspace < 0)
    return -1;
  hsize_t start[2] = {row0, 0}, count[2] = {nrows, cols};
  herr_t st = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  hid_t mspace = st >= 0 ? H5Screate_simple(rank, count, NULL) : H5I_INVALID_HID;
  st = mspace >= 0 ? H5Dwrite(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf) : -1;
  if (mspace >= 0)
    H5Sclose(mspace);
  H5Sclose(fspace);
  return st;
}

static void writer_close(af_emb_writer *w) {
  if (w->emb >= 0)
    H5Dclose(w->emb);
  if (w->ids >= 0)
    H5Dclose(w->ids);
  if (w->str_type >= 0)
    H5Tclose(w->str_type);
  w->emb = w->ids = w->str_type = H5I_INVALID_HID;
}

static void writer_free(af_emb_writer *w) {
  free(w->row_done);
  free(w->id_done);
  free(w);
}

void af_emb_writer_abort(af_emb_writer *w) {
  if (!w)
    return;
  writer_close(w);
  if (w->file >= 0)
    H5Fclose(w->file);
  af_discard_file(w->tmp);
  writer_free(w);
}

static af_status writer_attrs(af_emb_writer *w, const char *model, const char *pooling,
                              int normalized, af_error *err) {
  AF_TRY(af_h5_attr_set_str(w->file, ".", "format", AF_EMB_FORMAT, err));
  AF_TRY(af_h5_attr_set_i64(w->file, ".", "format_version", AF_EMB_FORMAT_VERSION, err));
  AF_TRY(af_h5_attr_set_str(w->file, ".", "model", model ? model : "unknown", err));
  AF_TRY(af_h5_attr_set_str(w->file, ".", "pooling", pooling ? pooling : "unknown", err));
  AF_TRY(af_h5_attr_set_i64(w->file, ".", "normalized", normalized ? 1 : 0, err));
  AF_TRY(af_h5_attr_set_i64(w->file, ".", "dim", w->d, err));
  return AF_OK;
}

af_status af_emb_writer_open(const char *path, int64_t n, int d, const char *model,
                             const char *pooling, int normalized, af_emb_writer **out,
                             af_error *err) {
  *out = NULL;
  if (n < 0 || d < 1)
    return af_error_set(err, AF_ERR_ARG, "%s: invalid embeddings shape [%lld, %d]", path,
                        (long long)n, d);
  af_emb_writer *w = af_calloc(1, sizeof *w, err);
  if (!w)
    return AF_ERR_NOMEM;
  w->file = w->emb = w->ids = w->str_type = H5I_INVALID_HID;
  w->n = n;
  w->d = d;
  snprintf(w->path, sizeof w->path, "%s", path);
  af_status st = af_tmp_path(path, w->tmp, err);
  if (st != AF_OK) {
    writer_free(w);
    return st;
  }
  w->row_done = af_calloc((size_t)n + 1, 1, err);
  w->id_done = af_calloc((size_t)n + 1, 1, err);
  if (!w->row_done || !w->id_done) {
    writer_free(w);
    return AF_ERR_NOMEM;
  }
  w->file = af_h5_create(w->tmp, err);
  if (w->file < 0) {
    af_error_set(err, AF_ERR_IO, "%s: cannot create temporary HDF5 file %s", path, w->tmp);
    writer_free(w);
    return AF_ERR_IO;
  }
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)d};
  w->emb = create_dataset(w->file, "/embeddings", H5T_IEEE_F32LE, 2, dims);
  w->str_type = H5Tcopy(H5T_C_S1);
  if (w->str_type >= 0 && (H5Tset_size(w->str_type, H5T_VARIABLE) < 0 ||
                           H5Tset_cset(w->str_type, H5T_CSET_UTF8) < 0)) {
    H5Tclose(w->str_type);
    w->str_type = H5I_INVALID_HID;
  }
  if (w->str_type >= 0)
    w->ids = create_dataset(w->file, "/ids", w->str_type, 1, dims);
  if (w->emb < 0 || w->ids < 0) {
    af_emb_writer_abort(w);
    return af_error_set(err, AF_ERR_HDF5, "%s: cannot create datasets /embeddings and /ids",
                        path);
  }
  st = writer_attrs(w, model, pooling, normalized, err);
  if (st != AF_OK) {
    af_error_prefix(err, "%s: ", path);
    af_emb_writer_abort(w);
    return st;
  }
  *out = w;
  return AF_OK;
}

static af_status check_range(const af_emb_writer *w, const char *what, int64_t row0, int64_t n,
                             af_error *err) {
  if (row0 < 0 || n < 0 || row0 > w->n || n > w->n - row0)
    return af_error_set(err, AF_ERR_ARG, "%s: %s rows [%lld, %lld) outside [0, %lld)", w->path,
                        what, (long long)row0, (long long)(row0 + n), (long long)w->n);
  return AF_OK;
}

af_status af_emb_writer_rows(af_emb_writer *w, int64_t row0, int64_t nrows, const float *rows,
                             af_error *err) {
  AF_TRY(check_range(w, "/embeddings", row0, nrows, err));
  if (nrows == 0)
    return AF_OK;
  size_t count = (size_t)nrows * (size_t)w->d;
  for (size_t i = 0; i < count; i++)
    if (!isfinite(rows[i]))
      return af_error_set(err, AF_ERR_ARG, "%s: embedding of row %lld has a non-finite value %g",
                          w->path, (long long)(row0 + (int64_t)(i / (size_t)w->d)),
                          (double)rows[i]);
  if (write_rows(w->emb, H5T_NATIVE_FLOAT, 2, (hsize_t)row0, (hsize_t)nrows, (hsize_t)w->d,
                 rows) < 0)
    return af_error_set(err, AF_ERR_HDF5, "%s: cannot write rows of /embeddings", w->path);
  memset(w->row_done + row0, 1, (size_t)nrows);
  return AF_OK;
}

af_status af_emb_writer_id_rows(af_emb_writer *w, int64_t row0, int64_t n,
                                const char *const *ids, af_error *err) {
  AF_TRY(check_range(w, "/ids", row0, n, err));
  if (n == 0)
    return AF_OK;
  for (int64_t i = 0; i < n; i++)
    if (!ids[i])
      return af_error_set(err, AF_ERR_ARG, "%s: id of row %lld is NULL", w->path,
                          (long long)(row0 + i));
  if (write_rows(w->ids, w->str_type, 1, (hsize_t)row0, (hsize_t)n, 1, ids) < 0)
    return af_error_set(err, AF_ERR_HDF5, "%s: cannot write /ids", w->path);
  memset(w->id_done + row0, 1, (size_t)n);
  return AF_OK;
}

af_status af_emb_writer_ids(af_emb_writer *w, const char *const *ids, int64_t n, af_error *err) {
  if (n != w->n)
    return af_error_set(err, AF_ERR_ARG, "%s: %lld ids given for %lld rows", w->path,
                        (long long)n, (long long)w->n);
  return af_emb_writer_id_rows(w, 0, n, ids, err);
}

af_status af_emb_writer_commit(af_emb_writer *w, af_error *err) {
  for (int64_t i = 0; i < w->n; i++) {
    if (!w->row_done[i] || !w->id_done[i]) {
      af_error_set(err, AF_ERR_INTERNAL, "%s: %s of row %lld was never written", w->path,
                   w->row_done[i] ? "the id" : "the embedding", (long long)i);
      af_emb_writer_abort(w);
      return AF_ERR_INTERNAL;
    }
  }
  writer_close(w);
  herr_t st = H5Fclose(w->file);
  w->file = H5I_INVALID_HID;
  if (st < 0) {
    af_error_set(err, AF_ERR_HDF5, "%s: closing the temporary file failed", w->path);
    af_emb_writer_abort(w);
    return AF_ERR_HDF5;
  }
  af_status result = af_h5_commit(w->tmp, w->path, err);
  writer_free(w);
  return result;
}

af_status af_embeddings_write(const char *path, const af_embeddings *e, af_error *err) {
  af_emb_writer *w = NULL;
  AF_TRY(af_emb_writer_open(path, e->n, e->d, e->model, e->pooling, e->normalized, &w, err));
  af_status st = af_emb_writer_rows(w, 0, e->n, e->emb, err);
  if (st == AF_OK)
    st = af_emb_writer_ids(w, (const char *const *)e->ids, e->n, err);
  if (st != AF_OK) {
    af_emb_writer_abort(w);
    return st;
  }
  return af_emb_writer_commit(w, err);
}
