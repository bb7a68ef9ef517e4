/* Small checked wrappers over the HDF5 C API used by every file format of
 * affinity (checkpoints, embeddings, neighbours). Each call checks HDF5's
 * return value and reports the file-relative object name on failure.
 * Paths given as `name` may contain '/' (intermediate groups are created). */
#ifndef AF_H5UTIL_H
#define AF_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Turns off HDF5's automatic error printing to stderr and its exit handler
 * (H5dont_atexit; see h5util.c: a failed close would crash it). Process-wide
 * HDF5 settings: the CLI and tests call it once at start, before any other
 * HDF5 call. */
void af_h5_quiet(void);

/* Create (truncate) a file: H5I_INVALID_HID on failure (err says why).
 * Files are created with the 512-byte user block of the digest gate
 * (io/digest.h); af_h5_open checks the digest first (a file without one, from
 * another tool, opens unchecked). Both use H5F_CLOSE_STRONG: closing the file
 * closes every object left open in it. */
hid_t af_h5_create(const char *path, af_error *err);
/* Opens a file into *out (H5I_INVALID_HID on failure). */
af_status af_h5_open(const char *path, int writable, hid_t *out, af_error *err);
/* After the file at tmp (made by af_h5_create) is closed: writes its digest
 * and renames it to final_path (af_commit_file); removes tmp on failure. */
af_status af_h5_commit(const char *tmp, const char *final_path, af_error *err);
af_status af_h5_close(hid_t file, const char *path, af_error *err);

/* A dataset creation property list without object times (every dataset we
 * write uses one, so identical content gives identical bytes); close it with
 * H5Pclose. H5I_INVALID_HID on failure. */
hid_t af_h5_dataset_plist(void);

int af_h5_exists(hid_t loc, const char *name);
hid_t af_h5_group(hid_t loc, const char *name, af_error *err); /* create or open */

/* Datasets. dims has `rank` entries. */
af_status af_h5_write(hid_t loc, const char *name, hid_t mem_type, const void *data, int rank,
                      const hsize_t *dims, af_error *err);
af_status af_h5_write_f32(hid_t loc, const char *name, const float *data, int rank,
                          const hsize_t *dims, af_error *err);
af_status af_h5_write_i64(hid_t loc, const char *name, const int64_t *data, int rank,
                          const hsize_t *dims, af_error *err);
/* Variable-length UTF-8 strings, shape [n]. */
af_status af_h5_write_strings(hid_t loc, const char *name, const char *const *strs, size_t n,
                              af_error *err);

/* Shape of a dataset: fills rank and dims (up to 8). */
af_status af_h5_shape(hid_t loc, const char *name, int *rank, hsize_t dims[8], af_error *err);
/* Reads a whole dataset converting to mem_type into buf, which must hold
 * `expect_elems` elements (checked against the stored shape). */
af_status af_h5_read(hid_t loc, const char *name, hid_t mem_type, void *buf, size_t expect_elems,
                     af_error *err);
/* Reads rows [row0, row0+nrows) of a rank-2 dataset [R, C] into buf [nrows, C]. */
af_status af_h5_read_rows(hid_t loc, const char *name, hid_t mem_type, void *buf, hsize_t row0,
                          hsize_t nrows, af_error *err);
/* Reads a rank-1 string dataset (variable-length, or fixed-length NUL- or
 * space-padded); *strs is an array of n malloc'd strings
 * (free with af_h5_free_strings). */
af_status af_h5_read_strings(hid_t loc, const char *name, char ***strs, size_t *n, af_error *err);
void af_h5_free_strings(char **strs, size_t n);

/* Scalar attributes on a group or dataset at loc (name "." is loc itself). */
af_status af_h5_attr_set_str(hid_t loc, const char *obj, const char *attr, const char *value,
                             af_error *err);
af_status af_h5_attr_set_i64(hid_t loc, const char *obj, const char *attr, int64_t value,
                             af_error *err);
af_status af_h5_attr_set_f64(hid_t loc, const char *obj, const char *attr, double value,
                             af_error *err);
int af_h5_attr_exists(hid_t loc, const char *obj, const char *attr);
/* *value is malloc'd. */
af_status af_h5_attr_get_str(hid_t loc, const char *obj, const char *attr, char **value,
                             af_error *err);
af_status af_h5_attr_get_i64(hid_t loc, const char *obj, const char *attr, int64_t *value,
                             af_error *err);
af_status af_h5_attr_get_f64(hid_t loc, const char *obj, const char *attr, double *value,
                             af_error *err);

#ifdef __cplusplus
}
#endif
#endif
