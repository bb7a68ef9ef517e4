/* affinity run: the whole pipeline into a run folder (include/affinity.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "affinity.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"out", "DIR", "run folder to write (required)"},
    {"data", "DIR", "folder with products.csv and (optional) order_products.csv"},
    {"catalog", "FILE", "catalog CSV with a header row"},
    {"baskets", "FILE", "baskets CSV (omit for a text-only run)"},
    {"baskets-format", "FMT", "long (one row per order line, default) or lines (one basket a line)"},
    {"order-column", "NAME", "long format: order id column (default order_id)"},
    {"item-column", "NAME", "long format: item id column (default product_id)"},
    {"drop-unknown", NULL, "drop (and count) basket items missing from the catalog instead of failing"},
    {"id-column", "NAME", "catalog id column (default product_id)"},
    {"text-column", "NAME", "catalog text column to embed; repeat to join several (default product_name)"},
    {"category-column", "NAME", "catalog category column (default department when present; '' for none)"},
    {"model", "M.h5", "encoder checkpoint (default weights/all-MiniLM-L6-v2.h5)"},
    {"fine-tune-steps", "N", "fine-tune the encoder N steps on co-purchase pairs first (default 0)"},
    {"device", "cpu|cuda", "where the encoder runs (default cpu)"},
    {"threads", "N", "CPU threads (default: all cores)"},
    {"k", "N", "text neighbours per product (default 20)"},
    {"min-support", "S", "rules: minimum itemset support (default 0.002)"},
    {"min-confidence", "C", "rules: minimum confidence (default 0.05)"},
    {"min-count", "N", "co-occurrence pairs and item-CF: at least N baskets together (default 2)"},
    {"substitute-cosine", "X", "substitutes: minimum title cosine similarity (default 0.6)"},
    {"top", "N", "products anchoring the report's network (default 30)"},
    {"force", NULL, "rerun every stage even when its inputs did not change"},
};

static const af_cmd_spec SPEC = {
    "run",
    "[--catalog F [--baskets F] | --data DIR] --out DIR [--model M.h5] [flags]",
    "Runs the pipeline: load and clean -> embed -> all-pairs text neighbours -> rules,\n"
    "co-occurrence and item-CF (when there are baskets) -> associations (complements and\n"
    "substitutes) -> report. Each stage writes its files into DIR (products.csv,\n"
    "embeddings.h5, neighbors.h5, rules.csv, rules.jsonl, cooccur.csv, itemcf.csv,\n"
    "associations.csv, report.html, network.png, heatmap.png, run.json) and logs its time.\n"
    "A stage whose inputs, parameters and binary did not change since the last run in DIR\n"
    "is skipped (DIR/manifest.json). With no data flags it runs on the bundled\n"
    "datasets/instacart-sample/.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

static void log_line(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, "affinity run: %s\n", line);
}

static int is_file(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static af_status run(const af_args *a, af_error *err) {
  af_run_options o;
  af_run_default_options(&o);
  /* The binary's identity in every stage key: the version and a hash of the
   * executable itself, so any rebuild that changes the code reruns the stages. */
  char version[128];
  uint64_t exe_hash = AF_RUN_HASH_SEED;
  if (af_run_hash_file("/proc/self/exe", &exe_hash, NULL) != AF_OK)
    exe_hash = 0;
  snprintf(version, sizeof version, "%s (exe %016llx)", AF_VERSION_STRING,
           (unsigned long long)exe_hash);
  o.binary_version = version;
  AF_TRY(af_arg_required(a, "out", &o.out_dir, err));
  char cat_path[4096], bask_path[4096];
  const char *data = af_arg_str(a, "data");
  o.catalog = af_arg_str(a, "catalog");
  o.baskets = af_arg_str(a, "baskets");
  if (data && (o.catalog || o.baskets))
    return af_error_set(err, AF_ERR_ARG, "--data DIR and --catalog/--baskets exclude each other");
  if (!data && !o.catalog && o.baskets)
    return af_error_set(err, AF_ERR_ARG, "--baskets needs --catalog");
  if (!data && !o.catalog)
    data = "datasets/instacart-sample";
  if (data) {
    snprintf(cat_path, sizeof cat_path, "%s/products.csv", data);
    snprintf(bask_path, sizeof bask_path, "%s/order_products.csv", data);
    if (!is_file(cat_path))
      return af_error_set(err, AF_ERR_IO, "--data %s: no products.csv there%s", data,
                          strcmp(data, "datasets/instacart-sample") == 0
                              ? " (run from the repository root, or give --catalog)"
                              : "");
    o.catalog = cat_path;
    o.baskets = is_file(bask_path) ? bask_path : NULL;
  }
  o.model = af_arg_str(a, "model");
  if (!o.model) {
    o.model = "weights/all-MiniLM-L6-v2.h5";
    if (!is_file(o.model))
      return af_error_set(err, AF_ERR_IO,
                          "%s: the default model is not installed (./setup.sh installs it; run "
                          "from the repository root, or give --model)",
                          o.model);
  }
  o.id_column = af_arg_str(a, "id-column");
  const char **texts = NULL;
  o.n_text_columns = af_arg_all(a, "text-column", &texts);
  o.text_columns = texts;
  o.category_column = af_arg_str(a, "category-column");
  o.baskets_opt.format = af_arg_str(a, "baskets-format");
  o.baskets_opt.order_column = af_arg_str(a, "order-column");
  o.baskets_opt.item_column = af_arg_str(a, "item-column");
  o.baskets_opt.delimiter = ',';
  o.baskets_opt.drop_unknown_items = af_arg_flag(a, "drop-unknown");
  o.force = af_arg_flag(a, "force");
  int64_t steps, threads, k, min_count, top;
  double sup, conf, subc;
  af_status st;
  if ((st = af_arg_i64(a, "fine-tune-steps", 0, 0, 1 << 30, &steps, err)) != AF_OK ||
      (st = af_arg_i64(a, "threads", 0, 0, 4096, &threads, err)) != AF_OK ||
      (st = af_arg_i64(a, "k", 20, 1, 2048, &k, err)) != AF_OK ||
      (st = af_arg_i64(a, "min-count", AF_EVAL_DEFAULT_MIN_COUNT, 1, 1 << 30, &min_count,
                       err)) != AF_OK ||
      (st = af_arg_i64(a, "top", 30, 1, 500, &top, err)) != AF_OK ||
      (st = af_arg_f64(a, "min-support", 0.002, 1e-9, 1, &sup, err)) != AF_OK ||
      (st = af_arg_f64(a, "min-confidence", 0.05, 0, 1, &conf, err)) != AF_OK ||
      (st = af_arg_f64(a, "substitute-cosine", 0.6, -1, 1, &subc, err)) != AF_OK) {
    free(texts);
    return st;
  }
  o.fine_tune_steps = (int)steps;
  o.threads = (int)threads;
  o.score_k = (int)k;
  o.cooccur_min_count = o.itemcf_min_count = min_count;
  o.report_top = (int)top;
  o.min_support = sup;
  o.min_confidence = conf;
  o.substitute_min_cosine = subc;
  af_device dev;
  if ((st = af_cli_device(a, (int)threads, &dev, err)) != AF_OK) {
    free(texts);
    return st;
  }
  o.dev = &dev;
  o.log = log_line;
  st = af_run_pipeline(&o, err);
  af_device_release(&dev);
  free(texts);
  return st;
}

int af_cmd_run(int argc, char **argv) { return af_cli_main(&SPEC, argc, argv, run); }
