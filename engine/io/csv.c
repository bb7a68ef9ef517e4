/* Streaming RFC 4180 CSV reader (see csv.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_READ_CHUNK (1 << 16)

struct af_csv {
  FILE *f;
  char *path;
  char delim;
  unsigned char *buf; /* (CSV_READ_CHUNK) read buffer, not zeroed: a small file touches one page */
  size_t pos, len;
  int at_eof;
  int64_t line;     /* 1-based line of the next byte to read */
  int64_t rec_line; /* line where the current record started */
  char *rec;        /* (rec_cap) the current record's fields, each NUL-terminated */
  size_t rec_len, rec_cap;
  size_t *starts;   /* (field_cap) offset of each field in rec */
  char **fields;    /* (field_cap) pointers handed to the caller */
  int n_fields, field_cap;
};

static int refill(af_csv *r) {
  if (r->at_eof)
    return 0;
  r->len = fread(r->buf, 1, CSV_READ_CHUNK, r->f);
  r->pos = 0;
  if (r->len == 0) {
    r->at_eof = 1;
    return 0;
  }
  return 1;
}

/* Next byte, or -1 at end of input. */
static inline int next_byte(af_csv *r) {
  if (r->pos == r->len && !refill(r))
    return -1;
  return r->buf[r->pos++];
}

static inline int peek_byte(af_csv *r) {
  if (r->pos == r->len && !refill(r))
    return -1;
  return r->buf[r->pos];
}

af_status af_csv_open(const char *path, char delimiter, af_csv **out, af_error *err) {
  *out = NULL;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r' || delimiter == '\0')
    return af_error_set(err, AF_ERR_ARG, "%s: invalid CSV delimiter", path);
  af_csv *r = af_calloc(1, sizeof *r, err);
  if (!r)
    return AF_ERR_NOMEM;
  r->path = strdup(path);
  r->buf = af_malloc(CSV_READ_CHUNK, 1, err);
  r->rec_cap = 256;
  r->rec = af_malloc(r->rec_cap, 1, err);
  r->field_cap = 16;
  r->starts = af_malloc((size_t)r->field_cap, sizeof *r->starts, err);
  r->fields = af_malloc((size_t)r->field_cap, sizeof *r->fields, err);
  if (!r->path || !r->buf || !r->rec || !r->starts || !r->fields) {
    af_csv_close(r);
    return af_error_set(err, AF_ERR_NOMEM, "%s: out of memory opening CSV", path);
  }
  r->f = fopen(path, "rb");
  if (!r->f) {
    int e = errno;
    af_csv_close(r);
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(e));
  }
  r->delim = delimiter;
  r->line = 1;
  refill(r);
  if (ferror(r->f)) {
    af_csv_close(r);
    return af_error_set(err, AF_ERR_IO, "%s: read error", path);
  }
  if (r->len >= 3 && r->buf[0] == 0xEF && r->buf[1] == 0xBB && r->buf[2] == 0xBF)
    r->pos = 3;
  *out = r;
  return AF_OK;
}

void af_csv_close(af_csv *r) {
  if (!r)
    return;
  if (r->f)
    fclose(r->f);
  free(r->path);
  free(r->buf);
  free(r->rec);
  free(r->starts);
  free(r->fields);
  free(r);
}

int64_t af_csv_record_line(const af_csv *r) { return r->rec_line; }
const char *af_csv_path(const af_csv *r) { return r->path; }

static af_status grow_rec(af_csv *r, af_error *err) {
  size_t cap = r->rec_cap * 2;
  char *p = af_realloc(r->rec, cap, 1, err);
  if (!p)
    return af_error_set(err, AF_ERR_NOMEM, "%s:%lld: record too large for memory", r->path,
                        (long long)r->rec_line);
  r->rec = p;
  r->rec_cap = cap;
  return AF_OK;
}

static inline af_status put(af_csv *r, char c, af_error *err) {
  if (r->rec_len == r->rec_cap)
    AF_TRY(grow_rec(r, err));
  r->rec[r->rec_len++] = c;
  return AF_OK;
}

int af_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    /* Fast path: eight ASCII bytes at a time. */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull)
        break;
      i += 8;
    }
    if (i >= n)
      break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + len > n)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* Line of byte offset `at` within the record buffer (records can span lines). */
static int64_t line_at(const af_csv *r, size_t at) {
  int64_t line = r->rec_line;
  for (size_t i = 0; i < at; i++)
    line += r->rec[i] == '\n';
  return line;
}

static af_status end_field(af_csv *r, af_error *err) {
  size_t start = r->starts[r->n_fields - 1];
  size_t n = r->rec_len - start;
  if (!af_utf8_valid(r->rec + start, n)) {
    /* Find the first bad byte to name its line. */
    size_t lo = 0;
    while (lo < n && af_utf8_valid(r->rec + start, lo + 1))
      lo++;
    size_t bad = lo;
    for (size_t k = 1; k <= 4 && lo + k <= n; k++)
      if (af_utf8_valid(r->rec + start, lo + k)) {
        bad = lo + k;
        break;
      }
    return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: invalid UTF-8 in field %d", r->path,
                        (long long)line_at(r, start + bad), r->n_fields);
  }
  if (memchr(r->rec + start, '\0', n))
    return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: NUL byte in field %d", r->path,
                        (long long)line_at(r, start), r->n_fields);
  return put(r, '\0', err);
}

static af_status begin_field(af_csv *r, af_error *err) {
  if (r->n_fields == r->field_cap) {
    int cap = r->field_cap * 2;
    size_t *s = af_realloc(r->starts, (size_t)cap, sizeof *s, err);
    if (!s)
      return AF_ERR_NOMEM;
    r->starts = s;
    char **f = af_realloc(r->fields, (size_t)cap, sizeof *f, err);
    if (!f)
      return AF_ERR_NOMEM;
    r->fields = f;
    r->field_cap = cap;
  }
  r->starts[r->n_fields++] = r->rec_len;
  return AF_OK;
}

af_status af_csv_next(af_csv *r, char ***fields, int *n_fields, int *eof, af_error *err) {
  *fields = NULL;
  *n_fields = 0;
  *eof = 0;
  r->n_fields = 0;
  r->rec_len = 0;
  r->rec_line = r->line;
  int c = next_byte(r);
  if (c < 0) {
    if (ferror(r->f))
      return af_error_set(err, AF_ERR_IO, "%s:%lld: read error", r->path, (long long)r->line);
    *eof = 1;
    return AF_OK;
  }
  const char d = r->delim;
  for (;;) { /* one field per iteration; c is its first byte */
    AF_TRY(begin_field(r, err));
    int end_record = 0;
    if (c == '"') {
      for (;;) {
        c = next_byte(r);
        if (c < 0)
          return af_error_set(err, AF_ERR_FORMAT,
                              "%s:%lld: unterminated quoted field (the record starts on this line)",
                              r->path, (long long)r->rec_line);
        if (c == '"') {
          if (peek_byte(r) == '"') {
            r->pos++;
            AF_TRY(put(r, '"', err));
            continue;
          }
          break;
        }
        if (c == '\n')
          r->line++;
        AF_TRY(put(r, (char)c, err));
      }
      c = next_byte(r); /* the byte after the closing quote */
      if (c == '\r' && peek_byte(r) == '\n')
        c = next_byte(r);
      if (c == '\n') {
        r->line++;
        end_record = 1;
      } else if (c < 0) {
        end_record = 1;
      } else if (c != d) {
        return af_error_set(err, AF_ERR_FORMAT,
                            "%s:%lld: unexpected text after a closing quote in field %d", r->path,
                            (long long)r->line, r->n_fields);
      }
    } else {
      for (;;) {
        if (c == d)
          break;
        if (c == '\n') {
          r->line++;
          end_record = 1;
          break;
        }
        if (c == '\r' && peek_byte(r) == '\n') {
          r->pos++;
          r->line++;
          end_record = 1;
          break;
        }
        if (c < 0) {
          end_record = 1;
          break;
        }
        AF_TRY(put(r, (char)c, err));
        c = next_byte(r);
      }
    }
    AF_TRY(end_field(r, err));
    if (end_record)
      break;
    c = next_byte(r); /* first byte of the next field (may be -1: an empty last field) */
  }
  if (ferror(r->f))
    return af_error_set(err, AF_ERR_IO, "%s:%lld: read error", r->path, (long long)r->line);
  for (int i = 0; i < r->n_fields; i++)
    r->fields[i] = r->rec + r->starts[i];
  *fields = r->fields;
  *n_fields = r->n_fields;
  return AF_OK;
}

af_status af_csv_column(char *const *header, int n, const char *name, const char *path, int *idx,
                        af_error *err) {
  for (int i = 0; i < n; i++)
    if (strcmp(header[i], name) == 0) {
      *idx = i;
      return AF_OK;
    }
  char cols[512];
  size_t used = 0;
  cols[0] = '\0';
  for (int i = 0; i < n && used < sizeof cols - 8; i++) {
    int w = snprintf(cols + used, sizeof cols - used, "%s%s", i ? ", " : "", header[i]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
  if (used >= sizeof cols - 8)
    snprintf(cols + sizeof cols - 8, 8, ", ...");
  *idx = -1;
  return af_error_set(err, AF_ERR_FORMAT, "%s: no column '%s' (columns: %s)", path, name, cols);
}

size_t af_normalize_ws(char *s) {
  size_t w = 0;
  int pending_space = 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    int ws = c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
    if (ws) {
      pending_space = w > 0;
      continue;
    }
    if (pending_space) {
      s[w++] = ' ';
      pending_space = 0;
    }
    s[w++] = c;
  }
  s[w] = '\0';
  return w;
}
