/* .npy reader (see npy.h): our own defensive parser of the header dict. */
#define _POSIX_C_SOURCE 200809L
#include "io/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads '<f4' data in place: little-endian hosts only"
#endif

#define NPY_MAX_HEADER 65536 /* numpy writes ~128 bytes; 2.x allows 4 GB */

int af_npy_is_npy(const unsigned char *head, size_t n) {
  return n >= 6 && memcmp(head, AF_NPY_MAGIC, 6) == 0;
}

float af_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13); /* inf or nan */
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign; /* signed zero */
  } else {       /* subnormal: normalise */
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while (!(man & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (N, d), } */

typedef struct {
  const char *begin, *p, *end, *source;
  af_error *err;
} cursor;

static void skip_space(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static af_status fail(cursor *c, const char *what) {
  return af_error_set(c->err, AF_ERR_FORMAT, "%s: .npy header: %s (at byte %ld of the dict)",
                      c->source, what, (long)(c->p - c->begin));
}

static af_status expect(cursor *c, char ch, const char *what) {
  skip_space(c);
  if (c->p >= c->end || *c->p != ch)
    return fail(c, what);
  c->p++;
  return AF_OK;
}

/* A quoted string (no escapes: numpy never writes any in these keys). */
static af_status read_str(cursor *c, char *out, size_t cap) {
  skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return fail(c, "expected a quoted string");
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= cap)
      return fail(c, "unsupported or overlong string");
    out[n++] = *c->p++;
  }
  if (c->p >= c->end)
    return fail(c, "unterminated string");
  c->p++;
  out[n] = '\0';
  return AF_OK;
}

static af_status read_int(cursor *c, int64_t *v) {
  skip_space(c);
  const char *start = c->p;
  int64_t x = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (x > ((int64_t)1 << 50))
      return fail(c, "shape dimension too large");
    x = x * 10 + (*c->p++ - '0');
  }
  if (c->p == start)
    return fail(c, "expected a non-negative integer in 'shape'");
  if (c->p < c->end && *c->p == 'L') /* Python 2 long */
    c->p++;
  *v = x;
  return AF_OK;
}

static af_status read_shape(cursor *c, int64_t dims[2], int *rank) {
  AF_TRY(expect(c, '(', "'shape' must be a tuple"));
  *rank = 0;
  for (;;) {
    skip_space(c);
    if (c->p < c->end && *c->p == ')') {
      c->p++;
      return AF_OK;
    }
    if (*rank >= 2)
      return fail(c, "'shape' has more than 2 dimensions; expected (N, d)");
    AF_TRY(read_int(c, &dims[(*rank)++]));
    skip_space(c);
    if (c->p < c->end && *c->p == ',')
      c->p++;
    else if (c->p >= c->end || *c->p != ')')
      return fail(c, "malformed 'shape' tuple");
  }
}

static af_status read_bool(cursor *c, int *v) {
  skip_space(c);
  size_t left = (size_t)(c->end - c->p);
  if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
    *v = 0;
    c->p += 5;
  } else if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
    *v = 1;
    c->p += 4;
  } else {
    return fail(c, "'fortran_order' must be True or False");
  }
  return AF_OK;
}

typedef struct {
  char descr[16];
  int fortran, rank, seen; /* seen: bit 0 descr, 1 fortran_order, 2 shape */
  int64_t dims[2];
} npy_dict;

static af_status read_entry(cursor *c, npy_dict *d) {
  char key[32];
  AF_TRY(read_str(c, key, sizeof key));
  AF_TRY(expect(c, ':', "expected ':' after a key"));
  int bit;
  if (strcmp(key, "descr") == 0) {
    bit = 1;
    AF_TRY(read_str(c, d->descr, sizeof d->descr));
  } else if (strcmp(key, "fortran_order") == 0) {
    bit = 2;
    AF_TRY(read_bool(c, &d->fortran));
  } else if (strcmp(key, "shape") == 0) {
    bit = 4;
    AF_TRY(read_shape(c, d->dims, &d->rank));
  } else {
    return fail(c, "unknown key (expected descr, fortran_order, shape)");
  }
  if (d->seen & bit)
    return fail(c, "a key appears twice");
  d->seen |= bit;
  return AF_OK;
}

static af_status read_dict(cursor *c, npy_dict *d) {
  AF_TRY(expect(c, '{', "expected '{'"));
  for (;;) {
    skip_space(c);
    if (c->p < c->end && *c->p == '}') {
      c->p++;
      break;
    }
    AF_TRY(read_entry(c, d));
    skip_space(c);
    if (c->p < c->end && *c->p == ',')
      c->p++;
    else if (c->p >= c->end || *c->p != '}')
      return fail(c, "expected ',' or '}'");
  }
  skip_space(c);
  if (c->p != c->end)
    return fail(c, "trailing bytes after the dict");
  if (d->seen != 7)
    return fail(c, "needs 'descr', 'fortran_order' and 'shape'");
  return AF_OK;
}

static af_status check_dict(const npy_dict *d, const char *source, af_npy_header *h,
                            af_error *err) {
  if (strcmp(d->descr, "<f4") == 0 || strcmp(d->descr, "=f4") == 0)
    h->elem_size = 4;
  else if (strcmp(d->descr, "<f2") == 0 || strcmp(d->descr, "=f2") == 0)
    h->elem_size = 2;
  else
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "%s: .npy dtype '%s' is not supported (save float32 '<f4' or float16 "
                        "'<f2')",
                        source, d->descr);
  if (d->fortran)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "%s: .npy is in Fortran order; save a C-order array "
                        "(numpy.ascontiguousarray)",
                        source);
  if (d->rank != 2)
    return af_error_set(err, AF_ERR_FORMAT, "%s: .npy shape has %d dimensions, expected (N, d)",
                        source, d->rank);
  if (d->dims[1] < 1 || d->dims[1] > AF_NPY_MAX_DIM)
    return af_error_set(err, AF_ERR_FORMAT, "%s: .npy shape (%lld, %lld): d must be in [1, %d]",
                        source, (long long)d->dims[0], (long long)d->dims[1], AF_NPY_MAX_DIM);
  h->rows = d->dims[0];
  h->cols = d->dims[1];
  return AF_OK;
}

af_status af_npy_parse_header(const unsigned char *buf, size_t len, const char *source,
                              af_npy_header *h, af_error *err) {
  memset(h, 0, sizeof *h);
  if (len < 10 || !af_npy_is_npy(buf, len))
    return af_error_set(err, AF_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", source);
  int major = buf[6];
  size_t hlen, pre;
  if (major == 1) {
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    pre = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12)
      return af_error_set(err, AF_ERR_FORMAT, "%s: .npy file is truncated", source);
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    pre = 12;
  } else {
    return af_error_set(err, AF_ERR_UNSUPPORTED, "%s: .npy format version %d is not supported",
                        source, major);
  }
  if (hlen > NPY_MAX_HEADER)
    return af_error_set(err, AF_ERR_FORMAT, "%s: .npy header of %zu bytes is too long", source,
                        hlen);
  if (pre + hlen > len)
    return af_error_set(err, AF_ERR_FORMAT, "%s: .npy header runs past the end of the file",
                        source);
  npy_dict d = {.rank = 0};
  const char *dict = (const char *)buf + pre;
  cursor c = {dict, dict, dict + hlen, source, err};
  AF_TRY(read_dict(&c, &d));
  AF_TRY(check_dict(&d, source, h, err));
  h->data_offset = pre + hlen;
  return AF_OK;
}

/* The data section must be exactly rows * cols elements. */
static af_status check_size(const af_npy_header *h, uint64_t file_size, const char *path,
                            af_error *err) {
  uint64_t need = (uint64_t)h->rows * (uint64_t)h->cols * (uint64_t)h->elem_size;
  if (h->rows > ((int64_t)1 << 40) || file_size < h->data_offset ||
      file_size - h->data_offset != need)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: .npy shape (%lld, %lld) needs %llu data bytes, the file has %llu "
                        "(truncated?)",
                        path, (long long)h->rows, (long long)h->cols, (unsigned long long)need,
                        (unsigned long long)(file_size - (file_size < h->data_offset
                                                              ? file_size
                                                              : h->data_offset)));
  return AF_OK;
}

static af_status read_data(FILE *f, const af_npy_header *h, const char *path, float *out,
                           af_error *err) {
  size_t count = (size_t)h->rows * (size_t)h->cols;
  if (fseek(f, (long)h->data_offset, SEEK_SET) != 0)
    return af_error_set(err, AF_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
  if (h->elem_size == 4) {
    if (fread(out, 4, count, f) != count)
      return af_error_set(err, AF_ERR_IO, "%s: short read of the .npy data", path);
    return AF_OK;
  }
  uint16_t buf[4096];
  for (size_t at = 0; at < count;) {
    size_t n = count - at < 4096 ? count - at : 4096;
    if (fread(buf, 2, n, f) != n)
      return af_error_set(err, AF_ERR_IO, "%s: short read of the .npy data", path);
    for (size_t i = 0; i < n; i++)
      out[at + i] = af_half_to_float(buf[i]);
    at += n;
  }
  return AF_OK;
}

af_status af_npy_read_f32(const char *path, float **data, int64_t *rows, int *cols,
                          af_error *err) {
  *data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  unsigned char *head = NULL;
  af_npy_header h;
  af_status st = fstat(fileno(f), &sb) == 0
                     ? AF_OK
                     : af_error_set(err, AF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  size_t want = (size_t)sb.st_size < 12 + NPY_MAX_HEADER ? (size_t)sb.st_size : 12 + NPY_MAX_HEADER;
  if (st == AF_OK && !(head = af_malloc(want + 1, 1, err)))
    st = AF_ERR_NOMEM;
  if (st == AF_OK && fread(head, 1, want, f) != want)
    st = af_error_set(err, AF_ERR_IO, "%s: short read", path);
  if (st == AF_OK)
    st = af_npy_parse_header(head, want, path, &h, err);
  if (st == AF_OK)
    st = check_size(&h, (uint64_t)sb.st_size, path, err);
  if (st == AF_OK && !(*data = af_malloc((size_t)h.rows * (size_t)h.cols + 1, sizeof(float), err)))
    st = AF_ERR_NOMEM;
  if (st == AF_OK)
    st = read_data(f, &h, path, *data, err);
  free(head);
  fclose(f);
  if (st != AF_OK) {
    free(*data);
    *data = NULL;
    return st;
  }
  *rows = h.rows;
  *cols = (int)h.cols;
  return AF_OK;
}
