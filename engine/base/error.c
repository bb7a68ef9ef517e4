/* Error recording and checked allocation (see error.h). */
#include "affinity.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

af_status af_error_set(af_error *err, af_status code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

af_status af_error_prefix(af_error *err, const char *fmt, ...) {
  if (!err)
    return AF_ERR_INTERNAL;
  char prefix[AF_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  /* Join by hand: the result is cut at AF_ERROR_MSG_MAX - 1 bytes. */
  char joined[AF_ERROR_MSG_MAX];
  size_t np = strlen(prefix), nm = strlen(err->msg);
  if (np > sizeof joined - 1)
    np = sizeof joined - 1;
  if (nm > sizeof joined - 1 - np)
    nm = sizeof joined - 1 - np;
  memcpy(joined, prefix, np);
  memcpy(joined + np, err->msg, nm);
  joined[np + nm] = '\0';
  memcpy(err->msg, joined, sizeof joined);
  return err->code;
}

void af_error_clear(af_error *err) {
  if (err) {
    err->code = AF_OK;
    err->msg[0] = '\0';
  }
}

const char *af_status_name(af_status code) {
  switch (code) {
  case AF_OK: return "ok";
  case AF_ERR_ARG: return "invalid argument";
  case AF_ERR_IO: return "I/O error";
  case AF_ERR_FORMAT: return "format error";
  case AF_ERR_NOMEM: return "out of memory";
  case AF_ERR_HDF5: return "HDF5 error";
  case AF_ERR_CUDA: return "CUDA error";
  case AF_ERR_UNSUPPORTED: return "unsupported";
  case AF_ERR_INTERNAL: return "internal error";
  case AF_ERR_LIMIT: return "memory limit";
  }
  return "unknown error";
}

static int mul_overflows(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a)
    return 1;
  *out = a * b;
  return 0;
}

void *af_malloc(size_t count, size_t size, af_error *err) {
  size_t bytes;
  if (mul_overflows(count, size, &bytes)) {
    af_error_set(err, AF_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
    return NULL;
  }
  void *p = malloc(bytes ? bytes : 1);
  if (!p)
    af_error_set(err, AF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *af_calloc(size_t count, size_t size, af_error *err) {
  size_t bytes;
  if (mul_overflows(count, size, &bytes)) {
    af_error_set(err, AF_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
    return NULL;
  }
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p)
    af_error_set(err, AF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *af_realloc(void *ptr, size_t count, size_t size, af_error *err) {
  size_t bytes;
  if (mul_overflows(count, size, &bytes)) {
    af_error_set(err, AF_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
    return NULL;
  }
  void *p = realloc(ptr, bytes ? bytes : 1);
  if (!p)
    af_error_set(err, AF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  return p;
}
