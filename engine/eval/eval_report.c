/* eval.json and the per-query ranks: the one writer of each, used by
 * `affinity eval` and by the eval stage of `affinity run` (see eval.h). */
#include <stdio.h>
#include <string.h>

#include "affinity.h"

static const char *const GROUP_NAME[AF_EVAL_N_GROUPS] = {"warm", "cold"};

int af_eval_best_row(const af_eval_row *rows, int n, const unsigned char *is_baseline) {
  int best = -1;
  double best_r = -1;
  for (int i = 0; i < n; i++) {
    if (!is_baseline[i] || !rows[i].ranks)
      continue;
    int64_t q = 0;
    double hits = 0;
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      q += rows[i].r.group[g].n;
      hits += rows[i].r.group[g].recall[0] * (double)rows[i].r.group[g].n;
    }
    double r = q ? hits / (double)q : 0;
    if (r > best_r)
      best = i, best_r = r;
  }
  return best;
}

af_status af_eval_compare_rows(af_eval_row *rows, int n, int ref, const af_eval_split *sp,
                               int n_boot, uint64_t seed, af_error *err) {
  for (int i = 0; i < n; i++)
    for (int g = 0; g < AF_EVAL_N_GROUPS && ref >= 0 && rows[i].ranks; g++)
      AF_TRY(af_eval_bootstrap(rows[i].ranks, rows[ref].ranks, sp->group, g, sp->n_queries,
                               af_eval_ks[0], n_boot, seed, &rows[i].diff[g], err));
  return AF_OK;
}

static void write_protocol(FILE *f, const af_eval_report *r) {
  const af_eval_split *sp = r->split;
  const af_eval_split_options *so = r->split_options;
  const int given = r->test_baskets != NULL;
  fputs("{\n  \"catalog\": ", f);
  af_write_json_string(f, r->catalog);
  fputs(",\n  \"baskets\": ", f);
  af_write_json_string(f, r->baskets);
  fputs(",\n  \"test_baskets\": ", f);
  if (given)
    af_write_json_string(f, r->test_baskets);
  else
    fputs("null", f);
  fprintf(f,
          ",\n  \"products\": %lld,\n  \"protocol\": {\"split\": \"%s\", \"validation\": %s, "
          "\"seed\": %llu, \"test_fraction\": %.17g, \"cold_fraction\": %.17g, "
          "\"train_baskets\": %lld, \"test_baskets\": %lld, \"test_baskets_too_small\": %lld, "
          "\"cold_products\": %lld, \"queries\": %lld, \"cold_queries_seeded\": %lld, "
          "\"ks\": [%d, %d]}",
          (long long)r->products, given ? "given" : "random", r->validation ? "true" : "false",
          (unsigned long long)so->seed, given ? 0.0 : so->test_fraction,
          given ? 0.0 : so->cold_fraction, (long long)sp->train.n_baskets,
          (long long)sp->n_test_baskets, (long long)sp->n_test_too_small,
          (long long)sp->n_cold_products, (long long)sp->n_queries, (long long)sp->n_cold_seeded,
          af_eval_ks[0], af_eval_ks[1]);
}

static void write_group(FILE *f, const af_eval_report *r, const af_eval_row *row, int g) {
  const af_eval_metrics *m = &row->r.group[g];
  fprintf(f, ", \"%s\": {\"queries\": %lld", GROUP_NAME[g], (long long)m->n);
  for (int k = 0; k < AF_EVAL_NK; k++) {
    fprintf(f, ", \"recall@%d\": ", af_eval_ks[k]);
    af_write_json_number(f, m->recall[k]);
    fprintf(f, ", \"ndcg@%d\": ", af_eval_ks[k]);
    af_write_json_number(f, m->ndcg[k]);
  }
  fputs(", \"mrr\": ", f);
  af_write_json_number(f, m->mrr);
  fputs(", \"recall@10_diff\": ", f);
  if (r->reference < 0 || !row->ranks) {
    fputs("null}", f);
    return;
  }
  fputs("{\"diff\": ", f);
  af_write_json_number(f, row->diff[g].diff);
  fputs(", \"lo\": ", f);
  af_write_json_number(f, row->diff[g].lo);
  fputs(", \"hi\": ", f);
  af_write_json_number(f, row->diff[g].hi);
  fputs("}}", f);
}

static void write_methods(FILE *f, const af_eval_report *r) {
  fputs(",\n  \"methods\": [", f);
  for (int i = 0; i < r->n_rows; i++) {
    fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
    af_write_json_string(f, r->rows[i].name);
    fputs(", \"seconds\": ", f);
    af_write_json_number(f, r->rows[i].r.seconds);
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++)
      write_group(f, r, &r->rows[i], g);
    fputc('}', f);
  }
  fputs("\n  ],\n  \"bootstrap\": ", f);
  if (r->reference < 0) {
    fputs("null", f);
  } else {
    fputs("{\"reference\": ", f);
    af_write_json_string(f, r->rows[r->reference].name);
    fprintf(f, ", \"metric\": \"recall@10\", \"resamples\": %d, \"seed\": %llu, \"level\": 0.95}",
            r->n_boot, (unsigned long long)r->boot_seed);
  }
}

static void write_tuning(FILE *f, const af_eval_report *r) {
  fputs(",\n  \"tuning\": [", f);
  for (int i = 0; i < r->n_tuning; i++) {
    const af_eval_tuning *t = &r->tuning[i];
    fputs(i ? ",\n    {\"method\": " : "\n    {\"method\": ", f);
    af_write_json_string(f, t->method);
    fputs(", \"param\": ", f);
    af_write_json_string(f, t->param);
    fputs(", \"split\": \"validation\", \"grid\": [", f);
    for (int j = 0; j < t->n; j++) {
      fputs(j ? ", " : "", f);
      af_write_json_number(f, t->grid[j]);
    }
    fputs("], \"recall@10\": [", f);
    for (int j = 0; j < t->n; j++) {
      fputs(j ? ", " : "", f);
      af_write_json_number(f, t->score[j]);
    }
    fputs("], \"chosen\": ", f);
    af_write_json_number(f, t->grid[t->best]);
    fputc('}', f);
  }
  fputs(r->n_tuning ? "\n  ]" : "]", f);
}

static void write_fusion(FILE *f, const af_eval_report *r) {
  static const char *const mode[] = {"scaled", "ranks", "merge"};
  const af_fuse_options *fo = r->fusion;
  if (!fo) { /* no fusion row: no fusion parameters */
    fputs("\n}\n", f);
    return;
  }
  fprintf(f,
          ",\n  \"fusion\": {\"min_count\": %lld, \"text_k\": %d, \"history_prior\": %.17g, "
          "\"text_min_cosine\": %.17g, \"text_alpha\": %.17g, \"text_beta\": %.17g, "
          "\"text_mode\": \"%s\", \"text_pool\": %d, \"rank_k\": %d, \"query_history\": %s, "
          "\"text_weight\": %.17g, \"cold_text_weight\": %.17g}\n}\n",
          (long long)fo->min_count, fo->text_k, fo->history_prior, fo->text_min_cosine,
          fo->text_alpha, fo->text_beta, mode[fo->text_mode], fo->text_pool, fo->rank_k,
          fo->query_history ? "true" : "false", fo->text_alpha > 0 ? 0.0 : r->text_weight,
          fo->text_alpha > 0 ? 0.0 : r->cold_text_weight);
}

af_status af_eval_write_json(const char *path, const af_eval_report *r, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  write_protocol(f, r);
  write_methods(f, r);
  write_tuning(f, r);
  write_fusion(f, r);
  return af_atomic_fclose(f, tmp, path, err);
}

af_status af_eval_write_ranks(const char *path, const af_eval_report *r,
                              const char *const *basket_ids, const char *const *ids,
                              af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs("query,basket,group,hidden_id", f);
  for (int i = 0; i < r->n_rows; i++)
    if (r->rows[i].ranks) {
      fputc(',', f);
      af_write_csv_field(f, r->rows[i].name);
    }
  fputc('\n', f);
  const af_eval_split *sp = r->split;
  for (int64_t q = 0; q < sp->n_queries; q++) {
    fprintf(f, "%lld,", (long long)q);
    if (basket_ids)
      af_write_csv_field(f, basket_ids[sp->q_basket[q]]);
    else
      fprintf(f, "%lld", (long long)sp->q_basket[q]);
    fprintf(f, ",%s,", GROUP_NAME[sp->group[q]]);
    af_write_csv_field(f, ids[sp->hidden[q]]);
    for (int i = 0; i < r->n_rows; i++)
      if (r->rows[i].ranks)
        fprintf(f, ",%lld", (long long)r->rows[i].ranks[q]);
    fputc('\n', f);
  }
  return af_atomic_fclose(f, tmp, path, err);
}
