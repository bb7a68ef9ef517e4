/* Memory budgets for computations whose output can explode (frequent
 * itemsets, rules, co-occurrence pairs): each estimates what it is about to
 * hold and stops with an error naming the flag that bounds it, before the
 * allocation, instead of running into the kernel's OOM killer. */
#ifndef AF_BUDGET_H
#define AF_BUDGET_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The default limit: half of the physical memory (sysconf), at least 256 MiB;
 * the environment variable AF_MEMORY_LIMIT (same syntax as --memory-limit)
 * overrides it. */
int64_t af_memory_limit_default(void);

/* Resolves a limit: 0 means the default. */
int64_t af_memory_limit_or_default(int64_t limit);

/* Parses "123", "64K", "512M", "8G", "1T" (binary units, case-insensitive,
 * optional trailing "B" or "iB") into bytes >= 1 MiB. */
af_status af_memory_limit_parse(const char *text, int64_t *bytes, af_error *err);

/* Formats bytes as "1.5 GiB" into buf (>= 32 bytes). */
const char *af_format_bytes(int64_t bytes, char *buf);

/* AF_OK when need <= limit; else an AF_ERR_NOMEM error:
 * "<what> would need <need> (limit <limit>); <hint>". */
af_status af_budget_check(int64_t need, int64_t limit, const char *what, const char *hint,
                          af_error *err);

#ifdef __cplusplus
}
#endif
#endif
