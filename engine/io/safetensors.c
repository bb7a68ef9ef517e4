/* safetensors reader and float32 writer (see safetensors.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "affinity.h"

#define AF_ST_MAX_HEADER (100u * 1024u * 1024u) /* the format's own limit */

static int dtype_size(af_st_dtype d) {
  switch (d) {
  case AF_ST_F32: case AF_ST_I32: return 4;
  case AF_ST_F16: case AF_ST_BF16: return 2;
  case AF_ST_F64: case AF_ST_I64: return 8;
  default: return 0;
  }
}

static af_st_dtype parse_dtype(const char *s, int *size) {
  static const struct { const char *name; af_st_dtype d; int size; } table[] = {
      {"F32", AF_ST_F32, 4},   {"F16", AF_ST_F16, 2}, {"BF16", AF_ST_BF16, 2}, {"F64", AF_ST_F64, 8},
      {"I64", AF_ST_I64, 8},   {"I32", AF_ST_I32, 4}, {"I16", AF_ST_OTHER, 2}, {"I8", AF_ST_OTHER, 1},
      {"U8", AF_ST_OTHER, 1},  {"BOOL", AF_ST_OTHER, 1}, {"U16", AF_ST_OTHER, 2},
      {"U32", AF_ST_OTHER, 4}, {"U64", AF_ST_OTHER, 8}, {"F8_E4M3", AF_ST_OTHER, 1},
      {"F8_E5M2", AF_ST_OTHER, 1}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(s, table[i].name) == 0) {
      *size = table[i].size;
      return table[i].d;
    }
  *size = 0;
  return AF_ST_OTHER;
}

void af_safetensors_close(af_safetensors *st) {
  if (!st)
    return;
  for (int i = 0; i < st->n_tensors; i++)
    free(st->tensors[i].name);
  free(st->tensors);
  free(st->path);
  memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b) {
  const af_st_tensor *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static af_status parse_tensor(const char *path, const cJSON *item, uint64_t data_size,
                              af_st_tensor *t, af_error *err) {
  const char *name = item->string;
  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsObject(item) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) ||
      !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: tensor %s: header entry needs dtype, shape and data_offsets[2]", path,
                        name);
  int esize;
  t->dtype = parse_dtype(dtype->valuestring, &esize);
  snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dtype->valuestring);
  if (esize == 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: unknown dtype '%s'", path, name,
                        dtype->valuestring);
  t->rank = cJSON_GetArraySize(shape);
  if (t->rank > 8)
    return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: rank %d is too large", path, name,
                        t->rank);
  t->numel = 1;
  for (int d = 0; d < t->rank; d++) {
    const cJSON *dim = cJSON_GetArrayItem(shape, d);
    if (!cJSON_IsNumber(dim) || dim->valuedouble < 0 || dim->valuedouble > 1e15 ||
        dim->valuedouble != floor(dim->valuedouble))
      return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: invalid shape", path, name);
    t->shape[d] = (int64_t)dim->valuedouble;
    if (t->shape[d] && t->numel > INT64_MAX / 16 / t->shape[d])
      return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: shape overflows", path, name);
    t->numel *= t->shape[d];
  }
  const cJSON *b = cJSON_GetArrayItem(offs, 0), *e = cJSON_GetArrayItem(offs, 1);
  if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 ||
      e->valuedouble < b->valuedouble || b->valuedouble != floor(b->valuedouble) ||
      e->valuedouble != floor(e->valuedouble))
    return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: invalid data_offsets", path, name);
  t->begin = (uint64_t)b->valuedouble;
  t->end = (uint64_t)e->valuedouble;
  if (t->end > data_size)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: tensor %s: data_offsets [%llu, %llu) run past the end of the file "
                        "(data section is %llu bytes; truncated?)",
                        path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)data_size);
  if (t->end - t->begin != (uint64_t)t->numel * (uint64_t)esize)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: tensor %s: %llu bytes for shape of %lld %s elements (expected %llu)",
                        path, name, (unsigned long long)(t->end - t->begin),
                        (long long)t->numel, t->dtype_name,
                        (unsigned long long)t->numel * (unsigned long long)esize);
  t->name = strdup(name);
  if (!t->name)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory");
  return AF_OK;
}

af_status af_safetensors_open(const char *path, af_safetensors *out, af_error *err) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    fclose(f);
    return af_error_set(err, AF_ERR_IO, "%s: cannot stat", path);
  }
  uint64_t file_size = (uint64_t)sb.st_size;
  unsigned char lenbuf[8];
  if (file_size < 8 || fread(lenbuf, 1, 8, f) != 8) {
    fclose(f);
    return af_error_set(err, AF_ERR_FORMAT, "%s: too short to be a safetensors file", path);
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | lenbuf[i];
  if (hlen == 0 || hlen > AF_ST_MAX_HEADER || hlen > file_size - 8) {
    fclose(f);
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: header length %llu is invalid for a file of %llu bytes (corrupted or "
                        "truncated safetensors)",
                        path, (unsigned long long)hlen, (unsigned long long)file_size);
  }
  char *json = af_malloc(hlen + 1, 1, err);
  if (!json) {
    fclose(f);
    return AF_ERR_NOMEM;
  }
  if (fread(json, 1, hlen, f) != hlen) {
    free(json);
    fclose(f);
    return af_error_set(err, AF_ERR_FORMAT, "%s: truncated header", path);
  }
  fclose(f);
  json[hlen] = '\0';
  cJSON *root = cJSON_ParseWithLength(json, hlen);
  free(json);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return af_error_set(err, AF_ERR_FORMAT, "%s: header is not a JSON object", path);
  }
  out->data_start = 8 + hlen;
  out->file_size = file_size;
  uint64_t data_size = file_size - out->data_start;
  int n = 0;
  for (const cJSON *it = root->child; it; it = it->next)
    if (strcmp(it->string, "__metadata__") != 0)
      n++;
  out->tensors = af_calloc(n ? n : 1, sizeof *out->tensors, err);
  out->path = strdup(path);
  af_status st = (out->tensors && out->path) ? AF_OK : AF_ERR_NOMEM;
  if (st != AF_OK)
    af_error_set(err, st, "out of memory");
  for (const cJSON *it = root->child; it && st == AF_OK; it = it->next) {
    if (strcmp(it->string, "__metadata__") == 0)
      continue;
    st = parse_tensor(path, it, data_size, &out->tensors[out->n_tensors], err);
    if (st == AF_OK)
      out->n_tensors++;
  }
  cJSON_Delete(root);
  if (st == AF_OK && out->n_tensors > 1) {
    /* Tensors must not overlap (the format requires a dense, ordered layout). */
    af_st_tensor *sorted = af_malloc(out->n_tensors, sizeof *sorted, err);
    if (!sorted) {
      st = AF_ERR_NOMEM;
    } else {
      memcpy(sorted, out->tensors, sizeof *sorted * out->n_tensors);
      qsort(sorted, out->n_tensors, sizeof *sorted, cmp_begin);
      for (int i = 1; i < out->n_tensors && st == AF_OK; i++)
        if (sorted[i].begin < sorted[i - 1].end)
          st = af_error_set(err, AF_ERR_FORMAT, "%s: tensors %s and %s overlap", path,
                            sorted[i - 1].name, sorted[i].name);
      free(sorted);
    }
  }
  if (st != AF_OK)
    af_safetensors_close(out);
  return st;
}

const af_st_tensor *af_safetensors_find(const af_safetensors *st, const char *name) {
  for (int i = 0; i < st->n_tensors; i++)
    if (strcmp(st->tensors[i].name, name) == 0)
      return &st->tensors[i];
  return NULL;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

af_status af_safetensors_read_f32(const af_safetensors *st, const af_st_tensor *t, float *dst,
                                  af_error *err) {
  int esize = dtype_size(t->dtype);
  if (t->dtype != AF_ST_F32 && t->dtype != AF_ST_F16 && t->dtype != AF_ST_BF16 &&
      t->dtype != AF_ST_F64)
    return af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: dtype %s is not a float type",
                        st->path, t->name, t->dtype_name);
  FILE *f = fopen(st->path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", st->path, strerror(errno));
  af_status result = AF_OK;
  if (fseeko(f, (off_t)(st->data_start + t->begin), SEEK_SET) != 0) {
    fclose(f);
    return af_error_set(err, AF_ERR_IO, "%s: seek failed", st->path);
  }
  if (t->dtype == AF_ST_F32) {
    if (fread(dst, 4, (size_t)t->numel, f) != (size_t)t->numel)
      result = af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: short read (truncated?)",
                            st->path, t->name);
  } else {
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = af_malloc(CHUNK, (size_t)esize, err);
    if (!buf) {
      fclose(f);
      return AF_ERR_NOMEM;
    }
    for (int64_t i = 0; i < t->numel && result == AF_OK; i += CHUNK) {
      size_t n = (size_t)(t->numel - i < CHUNK ? t->numel - i : CHUNK);
      if (fread(buf, (size_t)esize, n, f) != n) {
        result = af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: short read (truncated?)",
                              st->path, t->name);
        break;
      }
      for (size_t j = 0; j < n; j++) {
        const unsigned char *p = buf + j * (size_t)esize;
        if (t->dtype == AF_ST_F16) {
          dst[i + (int64_t)j] = half_to_float((uint16_t)(p[0] | (p[1] << 8)));
        } else if (t->dtype == AF_ST_BF16) {
          uint32_t bits = (uint32_t)(p[0] | (p[1] << 8)) << 16;
          memcpy(&dst[i + (int64_t)j], &bits, 4);
        } else {
          double d;
          memcpy(&d, p, 8);
          dst[i + (int64_t)j] = (float)d;
        }
      }
    }
    free(buf);
  }
  fclose(f);
  /* Non-finite weights make every downstream number meaningless: refuse them. */
  for (int64_t i = 0; i < t->numel && result == AF_OK; i++)
    if (!isfinite(dst[i]))
      result = af_error_set(err, AF_ERR_FORMAT, "%s: tensor %s: non-finite value at element %lld",
                            st->path, t->name, (long long)i);
  return result;
}

af_status af_safetensors_write_f32(const char *path, int n, const char *const *names,
                                   const int *ranks, const int64_t (*shapes)[8],
                                   const float *const *data, af_error *err) {
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
  cJSON_AddStringToObject(meta, "format", "pt");
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    cJSON *t = cJSON_AddObjectToObject(root, names[i]);
    cJSON_AddStringToObject(t, "dtype", "F32");
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    int64_t numel = 1;
    for (int d = 0; d < ranks[i]; d++) {
      cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)shapes[i][d]));
      numel *= shapes[i][d];
    }
    cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    off += (uint64_t)numel * 4;
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
  }
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory building safetensors header");
  size_t hlen = strlen(json), padded = (hlen + 7) & ~(size_t)7; /* 8-byte aligned data */
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  af_status ost = af_atomic_open(path, tmp, &f, err);
  if (ost != AF_OK) {
    free(json);
    return ost;
  }
  unsigned char lenbuf[8];
  for (int i = 0; i < 8; i++)
    lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  fwrite(lenbuf, 1, 8, f);
  fwrite(json, 1, hlen, f);
  for (size_t i = hlen; i < padded; i++)
    fputc(' ', f);
  free(json);
  for (int i = 0; i < n; i++) {
    int64_t numel = 1;
    for (int d = 0; d < ranks[i]; d++)
      numel *= shapes[i][d];
    fwrite(data[i], 4, (size_t)numel, f);
  }
  return af_atomic_fclose(f, tmp, path, err);
}
