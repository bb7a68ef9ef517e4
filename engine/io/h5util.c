/* Checked HDF5 helpers (see h5util.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/h5util.h"

#include "io/digest.h"

#include <stdlib.h>
#include <string.h>

void af_h5_quiet(void) {
  /* libhdf5 1.10.8: after an H5Fclose that fails (a full disk during the
   * final flush) the file's id is left half-destroyed, and closing it again -
   * which H5_term_library does at exit - segfaults in H5F__close_cb. Our code
   * closes every object itself, so the exit handler has nothing to do. Must
   * precede every other HDF5 call. */
  H5dont_atexit();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* File access: H5Fclose closes every object still open in the file (an error
 * path that forgot one cannot keep the file open until HDF5's exit handler). */
static hid_t strong_close_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    H5Pclose(fapl);
    return H5I_INVALID_HID;
  }
  return fapl;
}

/* A creation property list of class cls (group, dataset or file) that stores
 * no object times, so the same content gives the same bytes (H5I_INVALID_HID
 * on failure). */
static hid_t timeless_plist(hid_t cls) {
  hid_t p = H5Pcreate(cls);
  if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
    H5Pclose(p);
    return H5I_INVALID_HID;
  }
  return p;
}

hid_t af_h5_dataset_plist(void) { return timeless_plist(H5P_DATASET_CREATE); }

hid_t af_h5_create(const char *path, af_error *err) {
  /* the user block holds the digest (io/digest.h), written at af_h5_commit;
   * the root group stores no times (timeless_plist) */
  hid_t fcpl = timeless_plist(H5P_FILE_CREATE), fapl = strong_close_fapl();
  hid_t f = H5I_INVALID_HID;
  if (fcpl >= 0 && fapl >= 0 && H5Pset_userblock(fcpl, AF_DIGEST_BLOCK) >= 0)
    f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  if (fcpl >= 0)
    H5Pclose(fcpl);
  if (fapl >= 0)
    H5Pclose(fapl);
  if (f < 0)
    af_error_set(err, AF_ERR_IO, "%s: cannot create HDF5 file", path);
  return f;
}

af_status af_h5_commit(const char *tmp, const char *final_path, af_error *err) {
  af_status st = af_digest_seal(tmp, err);
  if (st != AF_OK) {
    af_discard_file(tmp);
    return st;
  }
  return af_commit_file(tmp, final_path, err);
}

af_status af_h5_open(const char *path, int writable, hid_t *out, af_error *err) {
  *out = H5I_INVALID_HID;
  af_digest_state ds;
  AF_TRY(af_digest_check(path, &ds, err)); /* before libhdf5 reads a byte */
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s: not a readable HDF5 file", path);
  hid_t fapl = strong_close_fapl();
  if (fapl < 0)
    return af_error_set(err, AF_ERR_HDF5, "%s: cannot create a file access list", path);
  *out = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (*out < 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s: cannot open HDF5 file (corrupted or truncated?)",
                        path);
  return AF_OK;
}

af_status af_h5_close(hid_t file, const char *path, af_error *err) {
  if (file < 0)
    return AF_OK;
  if (H5Fclose(file) < 0)
    return af_error_set(err, AF_ERR_HDF5, "%s: closing HDF5 file failed", path);
  return AF_OK;
}

int af_h5_exists(hid_t loc, const char *name) {
  /* H5Lexists fails on a missing intermediate group, so walk the path. */
  char buf[1024];
  size_t len = strlen(name);
  if (len >= sizeof buf)
    return 0;
  memcpy(buf, name, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char saved = buf[i];
      buf[i] = '\0';
      if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0)
        return 0;
      buf[i] = saved;
    }
  }
  return 1;
}

/* Creates the missing groups above name ("a/b/c": a and a/b) without times
 * (libhdf5's own intermediate groups would store them). */
static af_status make_parents(hid_t loc, const char *name, af_error *err) {
  char buf[1024];
  size_t len = strlen(name);
  if (len >= sizeof buf)
    return af_error_set(err, AF_ERR_HDF5, "object name too long: %.64s...", name);
  memcpy(buf, name, len + 1);
  for (size_t i = 1; i < len; i++) {
    if (buf[i] != '/')
      continue;
    buf[i] = '\0';
    af_status st = AF_OK;
    if (!af_h5_exists(loc, buf)) {
      hid_t gcpl = timeless_plist(H5P_GROUP_CREATE);
      hid_t g = gcpl >= 0 ? H5Gcreate2(loc, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
      if (g < 0)
        st = af_error_set(err, AF_ERR_HDF5, "cannot create group %s", buf);
      else
        H5Gclose(g);
      if (gcpl >= 0)
        H5Pclose(gcpl);
    }
    buf[i] = '/';
    AF_TRY(st);
  }
  return AF_OK;
}

hid_t af_h5_group(hid_t loc, const char *name, af_error *err) {
  if (af_h5_exists(loc, name)) {
    hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
    if (g < 0)
      af_error_set(err, AF_ERR_HDF5, "cannot open group %s", name);
    return g;
  }
  if (make_parents(loc, name, err) != AF_OK)
    return H5I_INVALID_HID;
  hid_t gcpl = timeless_plist(H5P_GROUP_CREATE);
  hid_t g = gcpl >= 0 ? H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
  if (gcpl >= 0)
    H5Pclose(gcpl);
  if (g < 0)
    af_error_set(err, AF_ERR_HDF5, "cannot create group %s", name);
  return g;
}

static hid_t file_type_for(hid_t mem_type) {
  if (H5Tequal(mem_type, H5T_NATIVE_FLOAT) > 0)
    return H5T_IEEE_F32LE;
  if (H5Tequal(mem_type, H5T_NATIVE_DOUBLE) > 0)
    return H5T_IEEE_F64LE;
  if (H5Tequal(mem_type, H5T_NATIVE_INT64) > 0)
    return H5T_STD_I64LE;
  if (H5Tequal(mem_type, H5T_NATIVE_INT32) > 0)
    return H5T_STD_I32LE;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT64) > 0)
    return H5T_STD_U64LE;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT32) > 0)
    return H5T_STD_U32LE;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT8) > 0)
    return H5T_STD_U8LE;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT16) > 0)
    return H5T_STD_U16LE;
  return mem_type;
}

af_status af_h5_write(hid_t loc, const char *name, hid_t mem_type, const void *data, int rank,
                      const hsize_t *dims, af_error *err) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  if (space < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot create dataspace for %s", name);
  hid_t dcpl = make_parents(loc, name, err) == AF_OK ? af_h5_dataset_plist() : -1;
  hid_t ds = dcpl >= 0 ? H5Dcreate2(loc, name, file_type_for(mem_type), space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT)
                       : -1;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Sclose(space);
  if (ds < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot create dataset %s", name);
  size_t n = 1;
  for (int i = 0; i < rank; i++)
    n *= dims[i];
  herr_t st = n ? H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
  H5Dclose(ds);
  if (st < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot write dataset %s", name);
  return AF_OK;
}

af_status af_h5_write_f32(hid_t loc, const char *name, const float *data, int rank,
                          const hsize_t *dims, af_error *err) {
  return af_h5_write(loc, name, H5T_NATIVE_FLOAT, data, rank, dims, err);
}

af_status af_h5_write_i64(hid_t loc, const char *name, const int64_t *data, int rank,
                          const hsize_t *dims, af_error *err) {
  return af_h5_write(loc, name, H5T_NATIVE_INT64, data, rank, dims, err);
}

static hid_t vlen_utf8_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0)
    return t;
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

af_status af_h5_write_strings(hid_t loc, const char *name, const char *const *strs, size_t n,
                              af_error *err) {
  hid_t t = vlen_utf8_type();
  if (t < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot create string type for %s", name);
  hsize_t dims[1] = {n};
  af_status st = af_h5_write(loc, name, t, strs, 1, dims, err);
  H5Tclose(t);
  return st;
}

af_status af_h5_shape(hid_t loc, const char *name, int *rank, hsize_t dims[8], af_error *err) {
  if (!af_h5_exists(loc, name))
    return af_error_set(err, AF_ERR_FORMAT, "missing dataset %s", name);
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s is not a dataset", name);
  hid_t space = H5Dget_space(ds);
  int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (r < 0 || r > 8) {
    if (space >= 0)
      H5Sclose(space);
    H5Dclose(ds);
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s has an unsupported shape", name);
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  *rank = r;
  H5Sclose(space);
  H5Dclose(ds);
  return AF_OK;
}

af_status af_h5_read(hid_t loc, const char *name, hid_t mem_type, void *buf, size_t expect_elems,
                     af_error *err) {
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(loc, name, &rank, dims, err));
  size_t n = 1;
  for (int i = 0; i < rank; i++)
    n *= dims[i];
  if (n != expect_elems)
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s has %zu elements, expected %zu", name, n,
                        expect_elems);
  if (n == 0)
    return AF_OK;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot open dataset %s", name);
  herr_t st = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Dclose(ds);
  if (st < 0)
    return af_error_set(err, AF_ERR_FORMAT, "cannot read dataset %s (wrong type or corrupted)",
                        name);
  return AF_OK;
}

af_status af_h5_read_rows(hid_t loc, const char *name, hid_t mem_type, void *buf, hsize_t row0,
                          hsize_t nrows, af_error *err) {
  int rank = 0;
  hsize_t dims[8];
  AF_TRY(af_h5_shape(loc, name, &rank, dims, err));
  if (rank != 2)
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s: expected rank 2, found %d", name, rank);
  if (row0 + nrows > dims[0])
    return af_error_set(err, AF_ERR_ARG, "dataset %s: rows %llu..%llu out of range %llu", name,
                        (unsigned long long)row0, (unsigned long long)(row0 + nrows),
                        (unsigned long long)dims[0]);
  if (nrows == 0)
    return AF_OK;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot open dataset %s", name);
  hid_t fspace = H5Dget_space(ds);
  hsize_t start[2] = {row0, 0}, count[2] = {nrows, dims[1]};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  hid_t mspace = H5Screate_simple(2, count, NULL);
  herr_t st = H5Dread(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf);
  H5Sclose(mspace);
  H5Sclose(fspace);
  H5Dclose(ds);
  if (st < 0)
    return af_error_set(err, AF_ERR_FORMAT, "cannot read rows of dataset %s", name);
  return AF_OK;
}

/* Fixed-length strings (numpy 'S' arrays written by h5py): each element is
 * `size` bytes, NUL-terminated or NUL/space-padded. */
static af_status read_fixed_strings(hid_t ds, hid_t ft, const char *name, size_t count,
                                    char ***strs, af_error *err) {
  size_t size = H5Tget_size(ft);
  if (size == 0 || size > 65536 || (count && size > ((size_t)1 << 30) / count))
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s: fixed-length strings of %zu bytes",
                        name, size);
  char *buf = af_malloc(count * size + 1, 1, err);
  char **out = af_calloc(count ? count : 1, sizeof *out, err);
  hid_t mt = H5Tcopy(H5T_C_S1);
  af_status st = buf && out ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK && (mt < 0 || H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0))
    st = af_error_set(err, AF_ERR_HDF5, "cannot create string type for %s", name);
  if (st == AF_OK && count && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    st = af_error_set(err, AF_ERR_FORMAT, "cannot read strings of %s", name);
  for (size_t i = 0; st == AF_OK && i < count; i++) {
    const char *s = buf + i * size;
    size_t len = strnlen(s, size);
    while (len && s[len - 1] == ' ')
      len--;
    if (!(out[i] = strndup(s, len)))
      st = af_error_set(err, AF_ERR_NOMEM, "out of memory reading %s", name);
  }
  if (mt >= 0)
    H5Tclose(mt);
  free(buf);
  if (st != AF_OK) {
    af_h5_free_strings(out, count);
    return st;
  }
  *strs = out;
  return AF_OK;
}

af_status af_h5_read_strings(hid_t loc, const char *name, char ***strs, size_t *n, af_error *err) {
  int rank = 0;
  hsize_t dims[8];
  *strs = NULL;
  *n = 0;
  AF_TRY(af_h5_shape(loc, name, &rank, dims, err));
  if (rank != 1)
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s: expected a list of strings", name);
  size_t count = dims[0];
  char **raw = af_calloc(count ? count : 1, sizeof *raw, err);
  if (!raw)
    return AF_ERR_NOMEM;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  hid_t t = vlen_utf8_type();
  hid_t ft = ds >= 0 ? H5Dget_type(ds) : -1;
  if (ds >= 0 && t >= 0 && ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0) {
    free(raw);
    H5Tclose(t);
    af_status fst = read_fixed_strings(ds, ft, name, count, strs, err);
    H5Tclose(ft);
    H5Dclose(ds);
    if (fst == AF_OK)
      *n = count;
    return fst;
  }
  if (ds < 0 || t < 0 || ft < 0 || H5Tget_class(ft) != H5T_STRING || !H5Tis_variable_str(ft)) {
    if (ft >= 0) H5Tclose(ft);
    if (t >= 0) H5Tclose(t);
    if (ds >= 0) H5Dclose(ds);
    free(raw);
    return af_error_set(err, AF_ERR_FORMAT, "dataset %s is not a list of variable-length strings",
                        name);
  }
  H5Tclose(ft);
  herr_t st = count ? H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : 0;
  if (st < 0) {
    /* a read that fails part way leaves the strings it converted in raw */
    for (size_t i = 0; i < count; i++)
      if (raw[i])
        H5free_memory(raw[i]);
    H5Tclose(t);
    H5Dclose(ds);
    free(raw);
    return af_error_set(err, AF_ERR_FORMAT, "cannot read strings of %s", name);
  }
  /* Copy into plain malloc'd strings so callers need no HDF5 to free them. */
  char **out = af_calloc(count ? count : 1, sizeof *out, err);
  af_status result = out ? AF_OK : AF_ERR_NOMEM;
  for (size_t i = 0; out && i < count; i++) {
    out[i] = strdup(raw[i] ? raw[i] : "");
    if (!out[i]) {
      af_h5_free_strings(out, i);
      out = NULL;
      result = af_error_set(err, AF_ERR_NOMEM, "out of memory reading %s", name);
    }
  }
  if (count) {
    hid_t space = H5Dget_space(ds);
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(t, space, H5P_DEFAULT, raw);
#else
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, raw);
#endif
    H5Sclose(space);
  }
  free(raw);
  H5Tclose(t);
  H5Dclose(ds);
  if (result == AF_OK) {
    *strs = out;
    *n = count;
  }
  return result;
}

void af_h5_free_strings(char **strs, size_t n) {
  if (!strs)
    return;
  for (size_t i = 0; i < n; i++)
    free(strs[i]);
  free(strs);
}

static hid_t open_attr_parent(hid_t loc, const char *obj) {
  return H5Oopen(loc, obj, H5P_DEFAULT);
}

static af_status attr_write(hid_t loc, const char *obj, const char *attr, hid_t type,
                            const void *value, af_error *err) {
  hid_t o = open_attr_parent(loc, obj);
  if (o < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot open %s to set attribute %s", obj, attr);
  if (H5Aexists(o, attr) > 0)
    H5Adelete(o, attr);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(o, attr, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a >= 0 ? H5Awrite(a, type, value) : -1;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(space);
  H5Oclose(o);
  if (st < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot write attribute %s on %s", attr, obj);
  return AF_OK;
}

af_status af_h5_attr_set_str(hid_t loc, const char *obj, const char *attr, const char *value,
                             af_error *err) {
  hid_t t = vlen_utf8_type();
  af_status st = attr_write(loc, obj, attr, t, &value, err);
  H5Tclose(t);
  return st;
}

af_status af_h5_attr_set_i64(hid_t loc, const char *obj, const char *attr, int64_t value,
                             af_error *err) {
  return attr_write(loc, obj, attr, H5T_NATIVE_INT64, &value, err);
}

af_status af_h5_attr_set_f64(hid_t loc, const char *obj, const char *attr, double value,
                             af_error *err) {
  return attr_write(loc, obj, attr, H5T_NATIVE_DOUBLE, &value, err);
}

int af_h5_attr_exists(hid_t loc, const char *obj, const char *attr) {
  if (strcmp(obj, ".") != 0 && !af_h5_exists(loc, obj))
    return 0;
  return H5Aexists_by_name(loc, obj, attr, H5P_DEFAULT) > 0;
}

static af_status attr_open(hid_t loc, const char *obj, const char *attr, hid_t *a,
                           af_error *err) {
  *a = H5I_INVALID_HID;
  if (!af_h5_attr_exists(loc, obj, attr))
    return af_error_set(err, AF_ERR_FORMAT, "missing attribute %s on %s", attr, obj);
  *a = H5Aopen_by_name(loc, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
  if (*a < 0)
    return af_error_set(err, AF_ERR_HDF5, "cannot open attribute %s on %s", attr, obj);
  return AF_OK;
}

af_status af_h5_attr_get_str(hid_t loc, const char *obj, const char *attr, char **value,
                             af_error *err) {
  *value = NULL;
  hid_t a;
  AF_TRY(attr_open(loc, obj, attr, &a, err));
  hid_t ft = H5Aget_type(a);
  af_status result = AF_OK;
  if (H5Tget_class(ft) != H5T_STRING) {
    result = af_error_set(err, AF_ERR_FORMAT, "attribute %s on %s is not a string", attr, obj);
  } else if (H5Tis_variable_str(ft)) {
    hid_t t = vlen_utf8_type();
    char *raw = NULL;
    if (H5Aread(a, t, &raw) < 0 || !raw) {
      result = af_error_set(err, AF_ERR_FORMAT, "cannot read attribute %s on %s", attr, obj);
    } else {
      *value = strdup(raw);
      H5free_memory(raw);
      if (!*value)
        result = af_error_set(err, AF_ERR_NOMEM, "out of memory");
    }
    H5Tclose(t);
  } else {
    size_t sz = H5Tget_size(ft);
    char *buf = af_calloc(sz + 1, 1, err);
    if (!buf)
      result = AF_ERR_NOMEM;
    else if (H5Aread(a, ft, buf) < 0) {
      free(buf);
      result = af_error_set(err, AF_ERR_FORMAT, "cannot read attribute %s on %s", attr, obj);
    } else {
      *value = buf;
    }
  }
  H5Tclose(ft);
  H5Aclose(a);
  return result;
}

static af_status attr_get_num(hid_t loc, const char *obj, const char *attr, hid_t type,
                              void *value, af_error *err) {
  hid_t a;
  AF_TRY(attr_open(loc, obj, attr, &a, err));
  hid_t ft = H5Aget_type(a);
  H5T_class_t cls = H5Tget_class(ft);
  H5Tclose(ft);
  herr_t st = (cls == H5T_INTEGER || cls == H5T_FLOAT) ? H5Aread(a, type, value) : -1;
  H5Aclose(a);
  if (st < 0)
    return af_error_set(err, AF_ERR_FORMAT, "attribute %s on %s is not a number", attr, obj);
  return AF_OK;
}

af_status af_h5_attr_get_i64(hid_t loc, const char *obj, const char *attr, int64_t *value,
                             af_error *err) {
  return attr_get_num(loc, obj, attr, H5T_NATIVE_INT64, value, err);
}

af_status af_h5_attr_get_f64(hid_t loc, const char *obj, const char *attr, double *value,
                             af_error *err) {
  return attr_get_num(loc, obj, attr, H5T_NATIVE_DOUBLE, value, err);
}

void af_library_init(void) { af_h5_quiet(); }
