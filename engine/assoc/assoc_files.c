/* The association output files (assoc_files.h). The rules CSV is the one
 * large output (millions of rules on Instacart): each rule becomes one line in
 * a growing buffer written with one fwrite per MiB, and each item's label
 * length (and whether it forces CSV quoting) is looked up once. */
#include "affinity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
  const char *const *str; /* (n_items) labels */
  uint32_t *len;          /* (n_items) strlen of each; bit 31 set when it holds , " CR LF */
} label_table;

static af_status table_init(label_table *t, const char *const *str, int32_t n, const char *path,
                            af_error *err) {
  t->str = str;
  t->len = af_malloc((size_t)(n ? n : 1), sizeof *t->len, err);
  if (!t->len)
    return AF_ERR_NOMEM;
  for (int32_t i = 0; i < n; i++) {
    size_t l = strlen(str[i]);
    if (l > 0x7fffffffu)
      return af_error_set(err, AF_ERR_ARG, "%s: item label longer than 2 GiB", path);
    t->len[i] = (uint32_t)l | (strpbrk(str[i], ",\"\r\n") ? 0x80000000u : 0u);
  }
  return AF_OK;
}

/* Bytes a side can take once quoted: every character doubled, plus quotes. */
static size_t side_bytes(const label_table *t, const int32_t *it, uint32_t mask) {
  size_t s = 0;
  for (uint32_t m = mask; m; m &= m - 1)
    s += (t->len[it[__builtin_ctz(m)]] & 0x7fffffffu) + 3;
  return 2 * s + 2;
}

/* The labels of the items of `it` selected by `mask`, joined by sep, as one
 * CSV field (af_write_csv_field's quoting rule). */
static void side_csv(line_buf *b, const label_table *t, const int32_t *it, uint32_t mask,
                     const char *sep) {
  size_t start = b->len, sep_len = strlen(sep);
  int special = 0;
  for (uint32_t m = mask; m; m &= m - 1) {
    int32_t x = it[__builtin_ctz(m)];
    uint32_t l = t->len[x];
    special |= (int)(l >> 31);
    l &= 0x7fffffffu;
    if (m != mask) {
      memcpy(b->buf + b->len, sep, sep_len);
      b->len += sep_len;
    }
    memcpy(b->buf + b->len, t->str[x], l);
    b->len += l;
  }
  size_t n_ch = b->len - start;
  int quote = special || (n_ch && (b->buf[start] == ' ' || b->buf[b->len - 1] == ' '));
  if (!quote)
    return;
  /* Rare: re-emit with quotes (side_bytes reserved twice the side + 2). */
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
    if (ch == '"')
      *wr++ = '"';
    *wr++ = ch;
  }
  *wr++ = '"';
  b->len = start + new_len;
}

static af_status rules_csv(FILE *f, const char *path, const af_itemsets *fi, const af_rules *rs,
                           const af_item_labels *lab, int32_t n_items, af_error *err) {
  label_table names = {0}, ids = {0};
  line_buf b = {0};
  const int named = lab->names != NULL;
  af_status st = table_init(&names, named ? lab->names : lab->ids, n_items, path, err);
  if (st == AF_OK && named)
    st = table_init(&ids, lab->ids, n_items, path, err);
  if (st != AF_OK)
    goto done;
  static const char header[] = "antecedent,consequent,support,confidence,lift,leverage,conviction,count";
  fputs(header, f);
  fputs(named ? ",antecedent_ids,consequent_ids\n" : "\n", f);
  for (int64_t i = 0; i < rs->n_rules; i++) {
    const af_rule *r = &rs->rules[i];
    const int32_t *it = fi->items + fi->offsets[r->itemset];
    int k = (int)(fi->offsets[r->itemset + 1] - fi->offsets[r->itemset]);
    uint32_t ante = r->ante_mask, cons = (uint32_t)((1ull << k) - 1) & ~ante;
    size_t need = side_bytes(&names, it, ante) + side_bytes(&names, it, cons) + 8 * AF_G10_MAX;
    if (named)
      need += side_bytes(&ids, it, ante) + side_bytes(&ids, it, cons) + 2;
    if (!lb_reserve(&b, need)) {
      st = af_error_set(err, AF_ERR_NOMEM, "out of memory writing %s", path);
      goto done;
    }
    side_csv(&b, &names, it, ante, " | ");
    b.buf[b.len++] = ',';
    side_csv(&b, &names, it, cons, " | ");
    const double v[4] = {r->support, r->confidence, r->lift, r->leverage};
    for (int m = 0; m < 4; m++) {
      b.buf[b.len++] = ',';
      b.len += (size_t)af_format_g10(b.buf + b.len, v[m]);
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
    if (named) {
      b.buf[b.len++] = ',';
      side_csv(&b, &ids, it, ante, " ");
      b.buf[b.len++] = ',';
      side_csv(&b, &ids, it, cons, " ");
    }
    b.buf[b.len++] = '\n';
    if (b.len >= (1u << 20)) {
      if (fwrite(b.buf, 1, b.len, f) != b.len)
        goto done; /* ferror is reported by af_atomic_fclose */
      b.len = 0;
    }
  }
  if (b.len)
    (void)fwrite(b.buf, 1, b.len, f);
done:
  free(b.buf);
  free(names.len);
  free(ids.len);
  return st;
}

static void side_json(FILE *f, const char *const *str, const int32_t *it, int n) {
  fputc('[', f);
  for (int i = 0; i < n; i++) {
    if (i)
      fputs(", ", f);
    af_write_json_string(f, str[it[i]]);
  }
  fputc(']', f);
}

static void rules_jsonl(FILE *f, const af_itemsets *fi, const af_rules *rs,
                        const af_item_labels *lab) {
  const char *const *shown = lab->names ? lab->names : lab->ids;
  for (int64_t i = 0; i < rs->n_rules; i++) {
    const af_rule *r = &rs->rules[i];
    int32_t a[32], c[32];
    int na = af_rule_side(fi, r, 0, a), nc = af_rule_side(fi, r, 1, c);
    fputs("{\"antecedent\": ", f);
    side_json(f, shown, a, na);
    fputs(", \"consequent\": ", f);
    side_json(f, shown, c, nc);
    if (lab->names) {
      fputs(", \"antecedent_ids\": ", f);
      side_json(f, lab->ids, a, na);
      fputs(", \"consequent_ids\": ", f);
      side_json(f, lab->ids, c, nc);
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

/* The largest item index a rule uses, + 1 (the label tables' size). */
static int32_t rules_items(const af_itemsets *fi, const af_rules *rs) {
  int32_t n = 0;
  for (int64_t i = 0; i < rs->n_rules; i++) {
    int64_t s = rs->rules[i].itemset;
    for (int64_t j = fi->offsets[s]; j < fi->offsets[s + 1]; j++)
      if (fi->items[j] + 1 > n)
        n = fi->items[j] + 1;
  }
  return n;
}

af_status af_rules_write(const char *path, int jsonl, const af_itemsets *fi, const af_rules *rs,
                         const af_item_labels *lab, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  if (jsonl) {
    rules_jsonl(f, fi, rs, lab);
  } else {
    af_status st = rules_csv(f, path, fi, rs, lab, rules_items(fi, rs), err);
    if (st != AF_OK) {
      af_atomic_abort(f, tmp);
      return st;
    }
  }
  return af_atomic_fclose(f, tmp, path, err);
}

af_status af_cooccur_write_csv(const char *path, const af_cooccur *co, int64_t min_count,
                               const af_item_labels *lab, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs("item_a,item_b,count,support,confidence_ab,confidence_ba,lift,leverage,conviction,jaccard,"
        "cosine",
        f);
  fputs(lab->names ? ",name_a,name_b\n" : "\n", f);
  int64_t pos = 0, cnt;
  int32_t row = 0, a, b;
  while (af_cooccur_next(co, &pos, &row, &a, &b, &cnt)) {
    if (cnt < min_count)
      continue;
    af_pair_stats s;
    af_pair_stats_compute(co->n_baskets, co->item_count[a], co->item_count[b], cnt, &s);
    af_write_csv_field(f, lab->ids[a]);
    fputc(',', f);
    af_write_csv_field(f, lab->ids[b]);
    fprintf(f, ",%lld,%.10g,%.10g,%.10g,%.10g,%.10g,", (long long)cnt, s.support, s.confidence_ab,
            s.confidence_ba, s.lift, s.leverage);
    if (isfinite(s.conviction))
      fprintf(f, "%.10g", s.conviction);
    else
      fputs("inf", f);
    fprintf(f, ",%.10g,%.10g", s.jaccard, s.cosine);
    if (lab->names) {
      fputc(',', f);
      af_write_csv_field(f, lab->names[a]);
      fputc(',', f);
      af_write_csv_field(f, lab->names[b]);
    }
    fputc('\n', f);
  }
  return af_atomic_fclose(f, tmp, path, err);
}

af_status af_itemcf_write_csv(const char *path, const af_cooccur *co, int k, const int32_t *nbr,
                              const double *score, const af_item_labels *lab, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs(lab->names ? "item,rank,neighbor,score,count,item_name,neighbor_name\n"
                   : "item,rank,neighbor,score,count\n",
        f);
  for (int32_t a = 0; a < co->n_items; a++)
    for (int r = 0; r < k; r++) {
      int32_t b = nbr[(int64_t)a * k + r];
      if (b < 0)
        break;
      af_write_csv_field(f, lab->ids[a]);
      fprintf(f, ",%d,", r + 1);
      af_write_csv_field(f, lab->ids[b]);
      fprintf(f, ",%.10g,%lld", score[(int64_t)a * k + r], (long long)af_cooccur_count(co, a, b));
      if (lab->names) {
        fputc(',', f);
        af_write_csv_field(f, lab->names[a]);
        fputc(',', f);
        af_write_csv_field(f, lab->names[b]);
      }
      fputc('\n', f);
    }
  return af_atomic_fclose(f, tmp, path, err);
}
