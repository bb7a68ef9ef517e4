/* Byte mutator of the CLI campaign (tests/fuzz/cli_campaign.sh):
 *   mutate SEED IN OUT
 * writes IN with 1 to 4 mutations chosen by SEED (splitmix64, so the same
 * seed gives the same file on every machine): flip one bit, set a byte to a
 * random or boundary value (0x00, 0xff, 0x7f, 0x80, '"', ',', '\n'), insert
 * 1-64 random bytes, delete 1-64 bytes, duplicate a chunk, or truncate. Prints
 * the operations applied on stdout (one line). Standalone C11, no library. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng;

static uint64_t next(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: mutate SEED IN OUT\n");
    return 2;
  }
  rng = strtoull(argv[1], NULL, 10);
  FILE *f = fopen(argv[2], "rb");
  if (!f || fseek(f, 0, SEEK_END) != 0) {
    perror(argv[2]);
    return 2;
  }
  long len = ftell(f);
  rewind(f);
  size_t cap = (size_t)len + 4 * 1024 + 64, n = (size_t)len;
  unsigned char *b = malloc(cap);
  if (!b || fread(b, 1, n, f) != n) {
    perror(argv[2]);
    return 2;
  }
  fclose(f);
  static const unsigned char special[] = {0x00, 0xff, 0x7f, 0x80, '"', ',', '\n', '0', '9'};
  int ops = 1 + (int)below(4);
  for (int k = 0; k < ops; k++) {
    int op = (int)below(100);
    size_t at = below(n ? n : 1);
    if (op < 35 && n) { /* bit flip */
      int bit = (int)below(8);
      b[at] ^= (unsigned char)(1u << bit);
      printf("flip@%zu.%d ", at, bit);
    } else if (op < 55 && n) { /* set byte */
      unsigned char v = below(2) ? (unsigned char)next() : special[below(sizeof special)];
      b[at] = v;
      printf("set@%zu=%02x ", at, v);
    } else if (op < 70 && n + 64 <= cap) { /* insert */
      size_t m = 1 + below(64);
      memmove(b + at + m, b + at, n - at);
      for (size_t i = 0; i < m; i++)
        b[at + i] = (unsigned char)next();
      n += m;
      printf("insert@%zu+%zu ", at, m);
    } else if (op < 85 && n) { /* delete */
      size_t m = 1 + below(64);
      if (m > n - at)
        m = n - at;
      memmove(b + at, b + at + m, n - at - m);
      n -= m;
      printf("delete@%zu-%zu ", at, m);
    } else if (op < 92 && n) { /* duplicate a chunk at another place */
      size_t m = 1 + below(256), to = below(n);
      if (m > n - at)
        m = n - at;
      if (n + m > cap)
        continue;
      unsigned char tmp[256];
      memcpy(tmp, b + at, m);
      memmove(b + to + m, b + to, n - to);
      memcpy(b + to, tmp, m);
      n += m;
      printf("dup@%zu-%zu->%zu ", at, m, to);
    } else { /* truncate */
      n = below(n);
      printf("truncate@%zu ", n);
    }
  }
  printf("\n");
  f = fopen(argv[3], "wb");
  if (!f || (n && fwrite(b, 1, n, f) != n) || fclose(f) != 0) {
    perror(argv[3]);
    return 2;
  }
  free(b);
  return 0;
}
