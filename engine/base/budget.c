/* Memory budgets (see budget.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB ((int64_t)1 << 20)

int64_t af_memory_limit_default(void) {
  const char *env = getenv("AF_MEMORY_LIMIT");
  int64_t v;
  if (env && *env && af_memory_limit_parse(env, &v, NULL) == AF_OK)
    return v;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  int64_t half = pages > 0 && page > 0 ? (int64_t)pages / 2 * (int64_t)page : 4096 * MIB;
  return half < 256 * MIB ? 256 * MIB : half;
}

int64_t af_memory_limit_or_default(int64_t limit) {
  return limit > 0 ? limit : af_memory_limit_default();
}

af_status af_memory_limit_parse(const char *text, int64_t *bytes, af_error *err) {
  const char *p = text;
  double x = 0;
  int digits = 0;
  while (isdigit((unsigned char)*p)) {
    x = x * 10 + (*p++ - '0');
    digits++;
  }
  int shift = 0;
  switch (tolower((unsigned char)*p)) {
  case 'k': shift = 10; p++; break;
  case 'm': shift = 20; p++; break;
  case 'g': shift = 30; p++; break;
  case 't': shift = 40; p++; break;
  default: break;
  }
  if (shift && tolower((unsigned char)*p) == 'i')
    p++;
  if (tolower((unsigned char)*p) == 'b')
    p++;
  x *= (double)((int64_t)1 << shift);
  if (!digits || *p || digits > 15 || x < (double)MIB || x > 9.0e18)
    return af_error_set(err, AF_ERR_ARG,
                        "--memory-limit: expected a size such as 512M or 8G (at least 1M), got "
                        "'%s'",
                        text);
  *bytes = (int64_t)x;
  return AF_OK;
}

const char *af_format_bytes(int64_t bytes, char *buf) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double x = (double)bytes;
  int u = 0;
  while (x >= 1024 && u < 6) {
    x /= 1024;
    u++;
  }
  snprintf(buf, 32, u ? "%.1f %s" : "%.0f %s", x, unit[u]);
  return buf;
}

af_status af_budget_check(int64_t need, int64_t limit, const char *what, const char *hint,
                          af_error *err) {
  if (need <= limit)
    return AF_OK;
  char a[32], b[32];
  return af_error_set(err, AF_ERR_LIMIT, "%s would need more than %s of memory (limit %s); %s",
                      what, af_format_bytes(need, a), af_format_bytes(limit, b), hint);
}
