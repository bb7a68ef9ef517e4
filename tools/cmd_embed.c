/* affinity embed: embeddings of every catalog row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"model", "M.h5", "encoder checkpoint (required)"},
    {"catalog", "FILE.csv", "catalog CSV with a header row (required)"},
    {"id-column", "COL", "column holding the product id (required)"},
    {"text-column", "COL", "column(s) to embed; repeat to join several with a space (required)"},
    {"out", "E.h5", "embeddings file to write: /ids, /embeddings [N, d] (required)"},
    {"max-len", "N", "tokens per text incl. [CLS]/[SEP] (default: the model's max_seq_length)"},
    {"batch-tokens", "N", "tokens per packed forward batch (default 8192)"},
    {"delimiter", "C", "CSV field delimiter (default ,; 'tab' for TSV)"},
    {"device", "cpu|cuda", "where to run the encoder (default cpu)"},
    {"precision", "fp32|bf16",
     "bf16 GEMM inputs with fp32 accumulation, or fp32 throughout (default: bf16 on cuda, fp32 on "
     "cpu; cpu bf16 needs AVX512_BF16)"},
    {"threads", "N", "CPU threads (default: all cores)"},
};
static const af_cmd_spec SPEC = {
    "embed",
    "--model M.h5 --catalog FILE.csv --id-column COL --text-column COL [--text-column COL2 ...] "
    "--out E.h5 [--max-len N] [--batch-tokens N] [--device cpu|cuda] [--precision fp32|bf16]",
    "Embeds every row of a catalog with the encoder and writes an HDF5 file with /ids and\n"
    "/embeddings (float32 [N, d], one row per catalog row, in order) and attributes naming\n"
    "the model and pooling. The catalog is streamed: memory is bounded by one batch.",
    FLAGS, sizeof FLAGS / sizeof FLAGS[0]};

/* --precision: DEFAULT when absent (bf16 on a GPU, fp32 on the CPU). */
static af_status parse_precision(const af_args *a, af_precision *out, af_error *err) {
  const char *s = af_arg_str(a, "precision");
  *out = AF_PRECISION_DEFAULT;
  return s ? af_precision_parse(s, "--precision", out, err) : AF_OK;
}

/* On the CPU, --precision bf16 is the device's bf16 mode (the linear layers
 * on the vdpbf16ps GEMM, docs/performance.md) with the fp32 encoder around
 * it; on a GPU it is the encoder's bf16 path (docs/cuda.md). */
static af_status cpu_bf16_mode(af_device *dev, af_precision *p, af_error *err) {
  if (dev->backend != AF_BACKEND_CPU || *p != AF_PRECISION_BF16)
    return AF_OK;
  AF_TRY(af_device_set_precision(dev, "bf16", err));
  *p = AF_PRECISION_FP32;
  return AF_OK;
}

static void on_progress(void *ctx, int64_t done, int64_t total) {
  af_progress *p = ctx;
  p->total = total;
  af_progress_update(p, done);
}

int af_cmd_embed(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  const char *model_path, *catalog, *id_col, *out, **text_cols = NULL;
  int64_t max_len, batch_tokens, threads;
  af_device dev = {0};
  af_precision precision;
  af_model *m = NULL;
  int have_model = 0, rc = 0;
  int n_text = af_arg_all(&a, "text-column", &text_cols);
  if (af_arg_required(&a, "model", &model_path, &err) != AF_OK ||
      af_arg_required(&a, "catalog", &catalog, &err) != AF_OK ||
      af_arg_required(&a, "id-column", &id_col, &err) != AF_OK ||
      af_arg_required(&a, "out", &out, &err) != AF_OK ||
      (n_text == 0 && af_error_set(&err, AF_ERR_ARG, "missing required flag --text-column")) ||
      af_arg_i64(&a, "max-len", 0, 3, 1 << 20, &max_len, &err) != AF_OK ||
      af_arg_i64(&a, "batch-tokens", 8192, 16, 1 << 24, &batch_tokens, &err) != AF_OK ||
      af_arg_i64(&a, "threads", 0, 0, 4096, &threads, &err) != AF_OK ||
      parse_precision(&a, &precision, &err) != AF_OK ||
      af_cli_device(&a, (int)threads, &dev, &err) != AF_OK ||
      cpu_bf16_mode(&dev, &precision, &err) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
    af_device_release(&dev);
  } else if (af_model_open(model_path, &m, &err) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
    af_device_release(&dev);
  } else {
    have_model = 1;
    char delim = ',';
    const char *d = af_arg_str(&a, "delimiter");
    if (d)
      delim = strcmp(d, "tab") == 0 ? '\t' : d[0];
    af_catalog_source src = {catalog, id_col, text_cols, n_text, delim};
    af_embed_options opt;
    af_embed_default_options(&opt);
    opt.max_len = (int)max_len;
    opt.batch_tokens = (int)batch_tokens;
    opt.precision = precision;
    af_progress prog;
    af_progress_init(&prog, "embed", 0);
    opt.progress = on_progress;
    opt.progress_ctx = &prog;
    int64_t n = 0;
    double t0 = af_now_seconds();
    if (af_embed_catalog(m, &dev, &src, &opt, out, &n, &err) != AF_OK) {
      rc = af_cli_fail(SPEC.cmd, &err);
    } else {
      af_progress_done(&prog);
      double dt = af_now_seconds() - t0;
      fprintf(stderr, "embedded %lld rows of %s in %.1f s (%.0f rows/s) -> %s [%lld x %d]\n",
              (long long)n, catalog, dt, n / (dt > 0 ? dt : 1), out, (long long)n,
              af_model_get_config(m)->hidden_size);
    }
    af_device_release(&dev);
  }
  if (have_model)
    af_model_close(m);
  free(text_cols);
  af_args_free(&a);
  return rc;
}
