/* affinity rules: frequent itemsets (FP-growth) and association rules. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic_file.h"
#include "base/budget.h"
#include "basket_input.h"
#include "cli.h"
#include "commands.h"
#include "base/out_format.h"
#include "assoc/rules.h"

static const af_flag_spec FLAGS[] = {
    AF_BASKET_INPUT_FLAGS,
    {"min-support", "S", "minimum itemset support, a fraction of baskets in (0, 1] (required)"},
    {"min-confidence", "C", "minimum rule confidence in [0, 1] (required)"},
    {"min-lift", "L", "minimum rule lift (default 0: no filter)"},
    {"max-len", "N", "longest itemset (antecedent + consequent), default 0: no limit"},
    {"max-consequent", "N", "most items in a consequent (default 0: any; 1 = arules/pyfim rules)"},
    {"max-rules", "N", "keep the first N rules in the output order (default 0: all)"},
    {"max-itemsets", "N", "stop with an error past N frequent itemsets (default 0: no cap)"},
    {"memory-limit", "SIZE",
     "memory for itemsets and for rules, e.g. 512M, 8G (default: half the RAM; or $AF_MEMORY_LIMIT)"},
    {"out", "FILE", "output: .csv (for people) or .jsonl (one rule per line) (required)"},
};

static const af_cmd_spec SPEC = {
    "rules",
    "--baskets F --min-support S --min-confidence C --out FILE.{csv,jsonl} [flags]",
    "Finds frequent itemsets with FP-growth and every association rule A -> C that splits one\n"
    "into two non-empty sides with confidence and lift above the thresholds. An itemset is\n"
    "frequent when count / baskets >= min-support. Rules are sorted by lift, then confidence,\n"
    "then count (descending), then items. Conviction of a rule with confidence 1 is written\n"
    "as inf in CSV and null in JSONL.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

/* CSV output: each rule becomes one line in a growing buffer, written with
 * one fwrite. Item names (and whether one forces quoting) are looked up once
 * per item. A side joins its names with " | " and is quoted as one CSV field
 * (af_write_csv_field's rule). Numbers: af_format_g10 (= "%.10g"). */
typedef struct {
  char *buf;
  size_t len, cap;
} line_buf;

static int lb_reserve(line_buf *b, size_t more) {
  if (b->len + more <= b->cap)
    return 1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more)
    cap *= 2;
  char *p = realloc(b->buf, cap);
  if (!p)
    return 0;
  b->buf = p;
  b->cap = cap;
  return 1;
}

typedef struct {
  const char **name; /* (n_items) display names */
  uint32_t *len;     /* (n_items) strlen of each, bit 31 set when it holds , " CR LF */
} name_table;

/* Writes the items of `it` selected by `mask` (one side of a rule). */
static void side_csv(line_buf *b, const name_table *nt, const int32_t *it, uint32_t mask) {
  size_t start = b->len;
  int special = 0;
  for (uint32_t m = mask; m; m &= m - 1) {
    int32_t x = it[__builtin_ctz(m)];
    uint32_t l = nt->len[x];
    special |= (int)(l >> 31);
    l &= 0x7fffffffu;
    if (m != mask) {
      memcpy(b->buf + b->len, " | ", 3);
      b->len += 3;
    }
    memcpy(b->buf + b->len, nt->name[x], l);
    b->len += l;
  }
  size_t n_ch = b->len - start;
  int quote = special || (n_ch && (b->buf[start] == ' ' || b->buf[b->len - 1] == ' '));
  if (!quote)
    return;
  /* Rare: re-emit with quotes (reserve guaranteed twice the side + 2). */
  size_t n_q = 0;
  for (size_t i = start; i < b->len; i++)
    n_q += b->buf[i] == '"';
  size_t new_len = n_ch + n_q + 2;
  char *src = b->buf + start;
  memmove(src + new_len - n_ch - 1, src, n_ch); /* right-align before the closing quote */
  char *rd = src + new_len - n_ch - 1, *wr = src;
  *wr++ = '"';
  for (size_t i = 0; i < n_ch; i++) {
    char ch = rd[i];
    if (ch == '"') {
      *wr++ = '"';
    }
    *wr++ = ch;
  }
  *wr++ = '"';
  b->len = start + new_len;
}

static size_t side_bytes(const name_table *nt, const int32_t *it, uint32_t mask) {
  size_t s = 0;
  for (uint32_t m = mask; m; m &= m - 1)
    s += (nt->len[it[__builtin_ctz(m)]] & 0x7fffffffu) + 3;
  return 2 * s + 2;
}

static af_status write_rules_csv(FILE *f, const char *out, const af_basket_input *in,
                                 const af_itemsets *fi, const af_rules *rs, af_error *err) {
  int32_t n_items = in->baskets.n_items;
  name_table nt = {af_malloc((size_t)(n_items ? n_items : 1), sizeof *nt.name, err),
                   af_malloc((size_t)(n_items ? n_items : 1), sizeof *nt.len, err)};
  line_buf b = {0};
  af_status st = AF_OK;
  if (!nt.name || !nt.len) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  for (int32_t i = 0; i < n_items; i++) {
    const char *s = af_basket_input_name(in, i);
    size_t l = strlen(s);
    if (l > 0x7fffffffu) {
      st = af_error_set(err, AF_ERR_ARG, "%s: item name longer than 2 GiB", out);
      goto done;
    }
    nt.name[i] = s;
    nt.len[i] = (uint32_t)l | (strpbrk(s, ",\"\r\n") ? 0x80000000u : 0u);
  }
  static const char header[] =
      "antecedent,consequent,support,confidence,lift,leverage,conviction,count\n";
  if (fwrite(header, 1, sizeof header - 1, f) != sizeof header - 1)
    goto done; /* ferror is reported by af_atomic_fclose */
  for (int64_t i = 0; i < rs->n_rules; i++) {
    const af_rule *r = &rs->rules[i];
    const int32_t *it = fi->items + fi->offsets[r->itemset];
    int k = (int)(fi->offsets[r->itemset + 1] - fi->offsets[r->itemset]);
    uint32_t ante = r->ante_mask, cons = (uint32_t)((1ull << k) - 1) & ~ante;
    if (!lb_reserve(&b, side_bytes(&nt, it, ante) + side_bytes(&nt, it, cons) + 8 * AF_G10_MAX)) {
      st = af_error_set(err, AF_ERR_NOMEM, "out of memory writing %s", out);
      goto done;
    }
    side_csv(&b, &nt, it, ante);
    b.buf[b.len++] = ',';
    side_csv(&b, &nt, it, cons);
    const double v[4] = {r->support, r->confidence, r->lift, r->leverage};
    for (int k = 0; k < 4; k++) {
      b.buf[b.len++] = ',';
      b.len += (size_t)af_format_g10(b.buf + b.len, v[k]);
    }
    b.buf[b.len++] = ',';
    if (isfinite(r->conviction)) {
      b.len += (size_t)af_format_g10(b.buf + b.len, r->conviction);
    } else {
      memcpy(b.buf + b.len, "inf", 3);
      b.len += 3;
    }
    b.buf[b.len++] = ',';
    b.len += (size_t)af_format_i64(b.buf + b.len, (long long)r->count);
    b.buf[b.len++] = '\n';
    if (b.len >= (1u << 20)) {
      if (fwrite(b.buf, 1, b.len, f) != b.len)
        goto done;
      b.len = 0;
    }
  }
  if (b.len)
    (void)fwrite(b.buf, 1, b.len, f);
done:
  free(b.buf);
  free(nt.name);
  free(nt.len);
  return st;
}

static void write_side_json(FILE *f, const af_basket_input *in, const int32_t *it, int n, int ids) {
  fputc('[', f);
  for (int i = 0; i < n; i++) {
    if (i)
      fputs(", ", f);
    af_write_json_string(f, ids ? in->baskets.item_ids[it[i]] : af_basket_input_name(in, it[i]));
  }
  fputc(']', f);
}

static af_status write_rules(const char *out, int jsonl, const af_basket_input *in,
                             const af_itemsets *fi, const af_rules *rs, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = af_atomic_fopen(out, tmp, err);
  if (!f)
    return err ? err->code : AF_ERR_IO;
  if (!jsonl) {
    af_status st = write_rules_csv(f, out, in, fi, rs, err);
    if (st != AF_OK) {
      fclose(f);
      af_discard_file(tmp);
      return st;
    }
    return af_atomic_fclose(f, tmp, out, err);
  }
  for (int64_t i = 0; i < rs->n_rules; i++) {
    const af_rule *r = &rs->rules[i];
    int32_t a[32], c[32];
    int na = af_rule_side(fi, r, 0, a), nc = af_rule_side(fi, r, 1, c);
    if (jsonl) {
      fputs("{\"antecedent\": ", f);
      write_side_json(f, in, a, na, 0);
      fputs(", \"consequent\": ", f);
      write_side_json(f, in, c, nc, 0);
      if (in->has_catalog) {
        fputs(", \"antecedent_ids\": ", f);
        write_side_json(f, in, a, na, 1);
        fputs(", \"consequent_ids\": ", f);
        write_side_json(f, in, c, nc, 1);
      }
      const char *keys[] = {"support", "confidence", "lift", "leverage", "conviction"};
      double vals[] = {r->support, r->confidence, r->lift, r->leverage, r->conviction};
      for (int k = 0; k < 5; k++) {
        fprintf(f, ", \"%s\": ", keys[k]);
        af_write_json_number(f, vals[k]);
      }
      fprintf(f, ", \"count\": %lld}\n", (long long)r->count);
    }
  }
  return af_atomic_fclose(f, tmp, out, err);
}

int af_cmd_rules(int argc, char **argv) {
  af_error err = {0};
  af_args a;
  if (af_args_parse(&SPEC, argc, argv, &a, &err) != AF_OK)
    return af_cli_fail("rules", &err);
  if (a.help) {
    af_print_help(&SPEC, stdout);
    af_args_free(&a);
    return 0;
  }
  af_basket_input in = {0};
  af_itemsets fi = {0};
  af_rules rs = {0};
  const char *out, *dummy;
  double min_support, min_conf, min_lift;
  int64_t max_len, max_cons, max_rules, max_itemsets, mem_limit = 0;
  af_status st;
  int jsonl = 0;
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_required(&a, "min-support", &dummy, &err)) != AF_OK ||
      (st = af_arg_required(&a, "min-confidence", &dummy, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-support", 0, 0, 1, &min_support, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-confidence", 0, 0, 1, &min_conf, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-lift", 0, 0, 1e300, &min_lift, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-len", 0, 0, 31, &max_len, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-consequent", 0, 0, 30, &max_cons, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-rules", 0, 0, INT64_MAX, &max_rules, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-itemsets", 0, 0, INT64_MAX, &max_itemsets, &err)) != AF_OK ||
      (af_arg_str(&a, "memory-limit") &&
       (st = af_memory_limit_parse(af_arg_str(&a, "memory-limit"), &mem_limit, &err)) != AF_OK))
    goto fail;
  if (min_support <= 0) {
    st = af_error_set(&err, AF_ERR_ARG, "--min-support must be > 0");
    goto fail;
  }
  if (af_has_suffix(out, ".jsonl")) {
    jsonl = 1;
  } else if (!af_has_suffix(out, ".csv")) {
    st = af_error_set(&err, AF_ERR_ARG, "--out %s: use a .csv or .jsonl file name", out);
    goto fail;
  }
  double t0 = af_now_seconds();
  if ((st = af_basket_input_load(&a, &in, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report("rules", &in, stderr);
  double t1 = af_now_seconds();
  af_fpgrowth_options fo = {.min_support = min_support, .max_len = (int)max_len,
                            .max_itemsets = max_itemsets, .memory_limit = mem_limit};
  if ((st = af_fpgrowth_ex(&in.baskets, &fo, &fi, &err)) != AF_OK)
    goto fail;
  double t2 = af_now_seconds();
  af_rules_options ro = {.min_confidence = min_conf, .min_lift = min_lift,
                         .max_consequent = (int)max_cons, .max_rules = max_rules};
  if ((st = af_rules_generate_limited(&fi, &ro, mem_limit, &rs, &err)) != AF_OK)
    goto fail;
  double t3 = af_now_seconds();
  if ((st = write_rules(out, jsonl, &in, &fi, &rs, &err)) != AF_OK)
    goto fail;
  fprintf(stderr,
          "affinity rules: min count %lld; %lld frequent itemsets; %lld rules -> %s "
          "(load %.3fs, itemsets %.3fs, rules %.3fs, write %.3fs)\n",
          (long long)fi.min_count, (long long)fi.n_itemsets, (long long)rs.n_rules, out, t1 - t0,
          t2 - t1, t3 - t2, af_now_seconds() - t3);
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  af_basket_input_free(&in);
  af_args_free(&a);
  return 0;
fail:
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  af_basket_input_free(&in);
  af_args_free(&a);
  return af_cli_fail("rules", &err);
}
