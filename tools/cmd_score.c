/* affinity score: all-pairs top-k neighbours of an embeddings file, or the
 * merge of shard outputs. Thin over include/affinity.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"embeddings", "FILE", "embeddings: HDF5 (affinity embed, or h5py with /embeddings [N, d]) or .npy"},
    {"k", "K", "neighbours per row, 1..2048 (default 50; at most N-1 are kept)"},
    {"out", "FILE", "neighbours file to write (HDF5)"},
    {"min-score", "S", "drop neighbours scoring below S (empty slots: index -1, score -inf)"},
    {"shard", "I/N", "score only rows of shard I of N (0-based), for merging later"},
    {"block-rows", "R", "query rows per parallel task (default 256)"},
    {"block-cols", "C", "catalog columns per cache slab (default 512)"},
    {"threads", "T", "threads (default: OpenMP default, i.e. all cores)"},
    {"device", "cpu|cuda",
     "cuda: bf16 tensor-core candidates + fp32 rescore, equal to cpu on every certified row "
     "(default cpu)"},
    {"precision", "fp32|bf16", "fp32 (default) or bf16 candidates (k + margin per row, AVX512_BF16 "
                               "CPUs, unsharded runs) rescored with the fp32 arithmetic"},
    {"bf16-margin", "M", "extra bf16 candidates per row (default: k)"},
    {"merge", NULL, "merge the shard files given as arguments into --out"},
    {"comm-timeout", "S", "under mpirun/srun: seconds a rank waits for the others in a "
                          "collective (default 600)"},
};

static const af_cmd_spec SPEC = {
    "score",
    "--embeddings FILE --k K --out FILE [flags]  |  --merge SHARD.h5... --out FILE",
    "For every row of the embeddings file, the K other rows with the highest inner\n"
    "product (cosine similarity when the embeddings are L2-normalized), best first,\n"
    "ties to the lower row. Output: /ids, /neighbors [R, K] (row indices), /scores.\n"
    "The result does not depend on --threads, --block-rows, --block-cols or sharding.\n"
    "Under `mpirun -np R` each rank scores 1/R of the rows and rank 0 merges them into\n"
    "--out (a folder the ranks share), the same file one process writes.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

static void on_progress(void *ctx, int64_t done, int64_t total) {
  af_progress *p = ctx;
  p->total = total;
  af_progress_update(p, done);
}

static af_status parse_shard(const char *s, int *i, int *n, af_error *err) {
  *i = 0;
  *n = 1;
  if (!s)
    return AF_OK;
  char tail;
  if (sscanf(s, "%d/%d%c", i, n, &tail) != 2 || *n < 1 || *i < 0 || *i >= *n)
    return af_error_set(err, AF_ERR_ARG, "--shard: '%s' is not I/N with 0 <= I < N", s);
  return AF_OK;
}

static af_status run(const af_args *a, af_comm *comm, af_error *err) {
  const char *out = NULL;
  AF_TRY(af_arg_required(a, "out", &out, err));
  if (af_arg_flag(a, "merge")) {
    if (af_comm_size(comm) > 1)
      return af_error_set(err, AF_ERR_ARG, "--merge runs in one process, not under mpirun");
    if (a->n_positional < 1)
      return af_error_set(err, AF_ERR_ARG, "--merge needs the shard files as arguments");
    return af_neighbors_merge(a->positional, a->n_positional, out, err);
  }
  if (a->n_positional > 0)
    return af_error_set(err, AF_ERR_ARG, "unexpected argument '%s'", a->positional[0]);
  af_score_file_options o = {0};
  const char *emb = NULL;
  int64_t k, rows, cols, threads;
  double min_score;
  AF_TRY(af_arg_required(a, "embeddings", &emb, err));
  AF_TRY(af_arg_i64(a, "k", 50, 1, AF_SCORE_MAX_K, &k, err));
  AF_TRY(af_arg_f64(a, "min-score", -INFINITY, -INFINITY, INFINITY, &min_score, err));
  AF_TRY(af_arg_i64(a, "block-rows", 256, 1, 1 << 20, &rows, err));
  AF_TRY(af_arg_i64(a, "block-cols", 512, 1, 1 << 24, &cols, err));
  AF_TRY(af_arg_i64(a, "threads", 0, 0, 4096, &threads, err));
  AF_TRY(parse_shard(af_arg_str(a, "shard"), &o.shard_i, &o.shard_n, err));
  int64_t margin;
  AF_TRY(af_arg_i64(a, "bf16-margin", -1, -1, AF_SCORE_MAX_K, &margin, err));
  o.bf16_margin = (int)margin;
  const char *prec = af_arg_str(a, "precision");
  af_device probe = af_device_cpu(0);
  AF_TRY(af_device_set_precision(&probe, prec, err));
  o.bf16 = af_device_is_bf16(&probe);
  int64_t unsure = 0;
  o.bf16_unsure = &unsure;
  o.k = (int)k;
  o.min_score = (float)min_score;
  o.score.threads = (int)threads;
  o.score.block_rows = rows;
  o.score.block_cols = cols;
  af_device dev;
  int64_t uncertified = 0;
  AF_TRY(af_cli_device(a, (int)threads, &dev, err));
  o.device = &dev;
  o.uncertified = &uncertified;
  af_progress p;
  af_progress_init(&p, "score", 0);
  if (af_comm_rank(comm) != 0)
    p.enabled = 0;
  o.progress = on_progress;
  o.progress_ctx = &p;
  af_status st = af_score_file_ranks(comm, emb, out, &o, err);
  af_progress_done(&p);
  if (st == AF_OK && dev.backend != AF_BACKEND_CPU)
    fprintf(stderr, "score: %lld rows not certified exact (a bf16 candidate list may have missed "
            "a neighbour)\n", (long long)uncertified);
  if (st == AF_OK && o.bf16)
    fprintf(stderr,
            "score: bf16 candidates rescored in fp32; %lld rows where a neighbour may differ "
            "from fp32 (by the worst-case bf16 error bound)\n",
            (long long)unsure);
  af_device_release(&dev);
  return st;
}

int af_cmd_score(int argc, char **argv) {
  af_args a; /* not af_cli_main: --merge takes the shard files as arguments */
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  double timeout = 600;
  af_comm *comm = NULL;
  af_status st = af_arg_f64(&a, "comm-timeout", 600, 1, 1e7, &timeout, &err);
  if (st == AF_OK) { /* one shard per rank when launched by mpirun/srun */
    af_comm_options co = af_comm_default_options();
    co.backend = af_comm_launched_parallel() ? AF_COMM_MPI : AF_COMM_SINGLE;
    co.timeout_s = timeout;
    st = af_comm_create(&co, &comm, &err);
  }
  if (st == AF_OK)
    st = run(&a, comm, &err);
  af_args_free(&a);
  int rc = 0;
  if (st != AF_OK) {
    if (af_comm_size(comm) > 1 && strncmp(err.msg, "rank ", 5) != 0)
      af_error_prefix(&err, "rank %d of %d: ", af_comm_rank(comm), af_comm_size(comm));
    rc = af_cli_fail(SPEC.cmd, &err);
  }
  af_comm_free(comm);
  return rc;
}
