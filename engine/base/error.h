/* Error reporting for the affinity library.
 *
 * Every fallible library function takes an `af_error *err` as its last
 * argument and returns an af_status. On failure it fills err with a code and a
 * human-readable message naming the file, line, field or tensor at fault. The
 * library never exits and keeps no global state; only the CLI prints and exits.
 * err may be NULL when the caller does not want the message. */
#ifndef AF_ERROR_H
#define AF_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AF_OK = 0,
  AF_ERR_ARG,         /* invalid argument or flag value */
  AF_ERR_IO,          /* cannot open, read, write or rename a file */
  AF_ERR_FORMAT,      /* malformed input: CSV, JSON, safetensors, HDF5 layout */
  AF_ERR_NOMEM,       /* allocation failed */
  AF_ERR_HDF5,        /* an HDF5 call failed */
  AF_ERR_CUDA,        /* a CUDA or cuBLAS call failed */
  AF_ERR_UNSUPPORTED, /* valid input that this build cannot handle */
  AF_ERR_INTERNAL     /* a broken invariant: a bug */
} af_status;

#define AF_ERROR_MSG_MAX 1024

typedef struct af_error {
  af_status code;
  char msg[AF_ERROR_MSG_MAX];
} af_error;

/* Records code and a printf-style message in err (if non-NULL); returns code. */
af_status af_error_set(af_error *err, af_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with more context ("loading X: ").
 * Returns err's code. */
af_status af_error_prefix(af_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void af_error_clear(af_error *err);

/* A short name for a status code ("I/O error", ...). */
const char *af_status_name(af_status code);

/* Allocation helpers that report failure through err. Sizes are checked for
 * multiplication overflow. */
void *af_malloc(size_t count, size_t size, af_error *err);
void *af_calloc(size_t count, size_t size, af_error *err);
void *af_realloc(void *ptr, size_t count, size_t size, af_error *err);

/* Propagate a failing status to the caller. */
#define AF_TRY(expr)                  \
  do {                                \
    af_status af_try_status_ = (expr); \
    if (af_try_status_ != AF_OK)      \
      return af_try_status_;          \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif /* AF_ERROR_H */
