/* The digest gate (see digest.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/digest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xxh64.h"

static const unsigned char MAGIC[8] = {0x89, 'A', 'F', 'D', 'G', 'S', 'T', '\n'};
static const unsigned char HDF5_SIG[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The whole user block for a digest and a length. */
static void make_block(unsigned char block[AF_DIGEST_BLOCK], uint64_t digest, uint64_t bytes) {
  memset(block, 0, AF_DIGEST_BLOCK);
  memcpy(block, MAGIC, sizeof MAGIC);
  snprintf((char *)block + sizeof MAGIC, AF_DIGEST_BLOCK - sizeof MAGIC,
           "affinity-digest 1 xxh64 %016" PRIx64 " bytes %" PRIu64 "\n", digest, bytes);
}

/* Parses our block; 0 when it is not exactly what make_block writes. */
static int parse_block(const unsigned char *block, uint64_t *digest, uint64_t *bytes) {
  static const char pre[] = "affinity-digest 1 xxh64 ", mid[] = " bytes ";
  const char *p = (const char *)block + sizeof MAGIC;
  if (memcmp(p, pre, sizeof pre - 1) != 0)
    return 0;
  p += sizeof pre - 1;
  uint64_t d = 0, b = 0;
  for (int i = 0; i < 16; i++, p++) {
    int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
    if (v < 0)
      return 0;
    d = d << 4 | (uint64_t)v;
  }
  if (memcmp(p, mid, sizeof mid - 1) != 0)
    return 0;
  p += sizeof mid - 1;
  for (int i = 0; i < 19 && *p >= '0' && *p <= '9'; i++, p++) /* 19 digits cannot overflow */
    b = b * 10 + (uint64_t)(*p - '0');
  unsigned char want[AF_DIGEST_BLOCK];
  make_block(want, d, b);
  if (memcmp(want, block, AF_DIGEST_BLOCK) != 0)
    return 0;
  *digest = d;
  *bytes = b;
  return 1;
}

/* An HDF5 superblock at 512, 1024, 2048, ... (where HDF5 looks for one after
 * a user block), in the first n bytes. */
static int hdf5_after_user_block(const unsigned char *buf, size_t n) {
  for (size_t at = 512; at + 8 <= n; at *= 2)
    if (memcmp(buf + at, HDF5_SIG, 8) == 0)
      return 1;
  return 0;
}

/* The state implied by the first bytes: 1 = ours (check it), 0 = none, -1 = a
 * user block that is not ours in front of an HDF5 file. */
static int classify(const unsigned char *head, size_t n, int superblock_later) {
  if (n >= 8 && memcmp(head, MAGIC, 8) == 0)
    return 1;
  if (n >= 8 && memcmp(head, HDF5_SIG, 8) == 0)
    return 0;
  return superblock_later ? -1 : 0;
}

static af_status not_ours(const char *source, af_error *err) {
  return af_error_set(err, AF_ERR_FORMAT,
                      "%s: the HDF5 user block holds no affinity digest (damaged digest header, "
                      "or a user block written by another tool)",
                      source);
}

static af_status damaged(const char *source, af_error *err) {
  return af_error_set(err, AF_ERR_FORMAT,
                      "%s: the digest header is damaged (file corrupted after it was written)",
                      source);
}

static af_status compare(const char *source, uint64_t want, uint64_t want_bytes, uint64_t got,
                         uint64_t got_bytes, af_error *err) {
  if (got_bytes != want_bytes)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: %" PRIu64 " bytes after the digest header, the digest says %" PRIu64
                        " (truncated or appended to)",
                        source, got_bytes, want_bytes);
  if (got != want)
    return af_error_set(err, AF_ERR_FORMAT,
                        "%s: content digest mismatch (xxh64 %016" PRIx64 ", expected %016" PRIx64
                        "): the file was corrupted or modified after it was written",
                        source, got, want);
  return AF_OK;
}

af_status af_digest_check_buffer(const unsigned char *buf, size_t n, const char *source,
                                 af_digest_state *state, af_error *err) {
  *state = AF_DIGEST_NONE;
  int kind = classify(buf, n, hdf5_after_user_block(buf, n));
  if (kind < 0)
    return not_ours(source, err);
  if (kind == 0)
    return AF_OK;
  uint64_t want, bytes;
  if (n < AF_DIGEST_BLOCK || !parse_block(buf, &want, &bytes))
    return damaged(source, err);
  size_t len = n - AF_DIGEST_BLOCK;
  AF_TRY(compare(source, want, bytes, af_xxh64(buf + AF_DIGEST_BLOCK, len, 0), len, err));
  *state = AF_DIGEST_OK;
  return AF_OK;
}

/* XXH64 of f from its current position to the end; *n gets the byte count. */
static af_status hash_rest(FILE *f, const char *path, uint64_t *h, uint64_t *n, af_error *err) {
  af_xxh64_state s;
  af_xxh64_init(&s, 0);
  enum { CHUNK = 1 << 16 }; /* the read size; a small buffer is as fast and cheap to allocate */
  unsigned char *buf = af_malloc(CHUNK, 1, err);
  if (!buf)
    return AF_ERR_NOMEM;
  size_t got;
  *n = 0;
  while ((got = fread(buf, 1, CHUNK, f)) > 0) {
    af_xxh64_update(&s, buf, got);
    *n += got;
  }
  int bad = ferror(f);
  free(buf);
  if (bad)
    return af_error_set(err, AF_ERR_IO, "%s: read error: %s", path, strerror(errno));
  *h = af_xxh64_final(&s);
  return AF_OK;
}

af_status af_digest_check(const char *path, af_digest_state *state, af_error *err) {
  *state = AF_DIGEST_NONE;
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  /* enough to see a superblock at 512 ... 2048 behind a foreign user block */
  unsigned char head[2048 + 8];
  size_t n = fread(head, 1, sizeof head, f);
  int kind = classify(head, n, hdf5_after_user_block(head, n));
  af_status st = AF_OK;
  uint64_t want, bytes, got, got_bytes;
  if (kind < 0)
    st = not_ours(path, err);
  else if (kind > 0 && (n < AF_DIGEST_BLOCK || !parse_block(head, &want, &bytes)))
    st = damaged(path, err);
  else if (kind > 0 && fseek(f, AF_DIGEST_BLOCK, SEEK_SET) != 0)
    st = af_error_set(err, AF_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
  else if (kind > 0 && (st = hash_rest(f, path, &got, &got_bytes, err)) == AF_OK)
    st = compare(path, want, bytes, got, got_bytes, err);
  fclose(f);
  if (st == AF_OK && kind > 0)
    *state = AF_DIGEST_OK;
  return st;
}

af_status af_digest_seal(const char *path, af_error *err) {
  FILE *f = fopen(path, "r+b");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot reopen to seal: %s", path, strerror(errno));
  unsigned char head[AF_DIGEST_BLOCK + 8];
  uint64_t h = 0, n = 0;
  af_status st = AF_OK;
  if (fread(head, 1, sizeof head, f) != sizeof head || memcmp(head + AF_DIGEST_BLOCK, HDF5_SIG, 8))
    st = af_error_set(err, AF_ERR_INTERNAL, "%s: no HDF5 superblock after a %d-byte user block",
                      path, AF_DIGEST_BLOCK);
  else if (fseek(f, AF_DIGEST_BLOCK, SEEK_SET) != 0)
    st = af_error_set(err, AF_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
  else
    st = hash_rest(f, path, &h, &n, err);
  unsigned char block[AF_DIGEST_BLOCK];
  make_block(block, h, n);
  if (st == AF_OK && (fseek(f, 0, SEEK_SET) != 0 || fwrite(block, 1, sizeof block, f) != sizeof block))
    st = af_error_set(err, AF_ERR_IO, "%s: cannot write the digest: %s", path, strerror(errno));
  if (fclose(f) != 0 && st == AF_OK)
    st = af_error_set(err, AF_ERR_IO, "%s: cannot write the digest: %s", path, strerror(errno));
  return st;
}
