/* CSV/JSON output helpers (see out_format.h). */
#include "affinity.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void af_write_csv_field(FILE *f, const char *s) {
  size_t n = strlen(s);
  int quote = n && (s[0] == ' ' || s[n - 1] == ' ');
  if (!quote && strpbrk(s, ",\"\r\n"))
    quote = 1;
  if (!quote) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const char *p = s; *p; p++) {
    if (*p == '"')
      fputc('"', f);
    fputc(*p, f);
  }
  fputc('"', f);
}

void af_write_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

void af_write_json_number(FILE *f, double x) {
  if (isfinite(x))
    fprintf(f, "%.17g", x);
  else
    fputs("null", f);
}

int af_has_suffix(const char *path, const char *suffix) {
  size_t n = strlen(path), k = strlen(suffix);
  return n >= k && strcmp(path + n - k, suffix) == 0;
}

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int g10_slow(char *dst, double x) {
  char tmp[AF_G10_MAX + 16];
  int n = snprintf(tmp, sizeof tmp, "%.10g", x);
  if (n < 0)
    n = 0;
  if (n > AF_G10_MAX)
    n = AF_G10_MAX; /* cannot happen for %.10g (at most 17 chars) */
  memcpy(dst, tmp, (size_t)n);
  return n;
}

/* %.10g: ten significant digits d (1e9 <= d < 1e10) of |x| = d * 10^(e - 9),
 * rounded to nearest. y = |x| * 10^(9 - e) is computed with one rounding (the
 * power of ten is exact up to 1e22), so y is within half an ulp (< 1e-6 for
 * y < 1e10) of the exact product; when y lies within 4e-6 of a rounding tie
 * the digits could differ from printf's exact conversion, and snprintf
 * decides. */
int af_format_g10(char *dst, double x) {
  if (!isfinite(x) || x == 0)
    return g10_slow(dst, x);
  double a = fabs(x);
  if (a < 1e-300 || a > 1e300)
    return g10_slow(dst, x);
  uint64_t bits;
  memcpy(&bits, &a, sizeof bits);
  /* a in [2^e2, 2^(e2+1)); floor(e2 * log10(2)) by a fixed-point product
   * (78913 / 2^18 ~ log10 2, exact floor for |e2| < 1000 with an arithmetic
   * shift); floor(log10 a) is e or e + 1, corrected below. */
  int e2 = (int)((bits >> 52) & 0x7ff) - 1023;
  int e = (e2 * 78913) >> 18;
  uint64_t d = 0;
  int ok = 0;
  for (int tries = 0; tries < 4; tries++) {
    int k = 9 - e;
    double y;
    if (k >= 0 && k <= 22)
      y = a * POW10[k];
    else if (k < 0 && -k <= 22)
      y = a / POW10[-k];
    else
      return g10_slow(dst, x);
    uint64_t fl = (uint64_t)y; /* y < 2^63: truncation is floor */
    double frac = y - (double)fl;
    if (fabs(frac - 0.5) < 4e-6)
      return g10_slow(dst, x);
    d = fl + (frac > 0.5);
    if (d >= 10000000000ull) {
      e++;
      continue;
    }
    if (d < 1000000000ull) {
      e--;
      continue;
    }
    ok = 1;
    break;
  }
  if (!ok)
    return g10_slow(dst, x);
  char dig[10];
  for (int i = 9; i >= 0; i--) {
    dig[i] = (char)('0' + d % 10);
    d /= 10;
  }
  int nd = 10; /* significant digits after dropping trailing zeros */
  while (nd > 1 && dig[nd - 1] == '0')
    nd--;
  char *p = dst;
  if (x < 0)
    *p++ = '-';
  if (e >= -4 && e < 10) {
    if (e >= 0) {
      for (int i = 0; i <= e; i++)
        *p++ = dig[i];
      if (nd > e + 1) {
        *p++ = '.';
        for (int i = e + 1; i < nd; i++)
          *p++ = dig[i];
      }
    } else {
      *p++ = '0';
      *p++ = '.';
      for (int i = 0; i < -e - 1; i++)
        *p++ = '0';
      for (int i = 0; i < nd; i++)
        *p++ = dig[i];
    }
  } else {
    *p++ = dig[0];
    if (nd > 1) {
      *p++ = '.';
      for (int i = 1; i < nd; i++)
        *p++ = dig[i];
    }
    *p++ = 'e';
    int ee = e;
    *p++ = ee < 0 ? '-' : '+';
    if (ee < 0)
      ee = -ee;
    if (ee >= 100)
      *p++ = (char)('0' + ee / 100);
    *p++ = (char)('0' + ee / 10 % 10);
    *p++ = (char)('0' + ee % 10);
  }
  return (int)(p - dst);
}

int af_format_i64(char *dst, long long v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  int len = 0;
  if (v < 0)
    dst[len++] = '-';
  while (n)
    dst[len++] = tmp[--n];
  return len;
}
