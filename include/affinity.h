/* affinity: product association analysis on a from-scratch transformer
 * encoder. The one public header of the library (libaffinity_core): every type
 * and function a program (the `affinity` CLI, a test, a user's code) may use.
 *
 * Conventions
 *  - A function that can fail returns af_status (AF_OK on success) and fills
 *    the af_error it is given (may be NULL) with a message naming the file,
 *    line or field; results come back through out-parameters. Nothing exits,
 *    prints or keeps global state.
 *  - Heavy objects are opaque handles with a create/alloc and a free/close
 *    (af_model, af_encoder, af_tokenizer, af_trainer, af_score_index, ...);
 *    result structs are plain data owned by the caller, freed by their _free.
 *  - Shapes are given in comments: (N, d) is row-major, N rows of d.
 *  - Nothing here names a third-party type (no HDF5, cJSON, CUDA).
 *
 * The sections follow the library's layers, bottom up (docs/architecture.md):
 * base, kernels (the device), io, comm, search, nn, assoc, train, eval,
 * report, pipeline. Inside the library a layer is compiled with AF_HIDE_<LAYER> for
 * every layer it may not use, so a climbing call fails to compile. */
#ifndef AFFINITY_H
#define AFFINITY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================== layer base ======================================== */

/* ---------------------------------------------------------------- base/error */
/* Error reporting for the affinity library.
 *
 * Every fallible library function takes an `af_error *err` as its last
 * argument and returns an af_status. On failure it fills err with a code and a
 * human-readable message naming the file, line, field or tensor at fault. The
 * library never exits and keeps no global state; only the CLI prints and exits.
 * err may be NULL when the caller does not want the message. */

typedef enum {
  AF_OK = 0,
  AF_ERR_ARG,         /* invalid argument or flag value */
  AF_ERR_IO,          /* cannot open, read, write or rename a file */
  AF_ERR_FORMAT,      /* malformed input: CSV, JSON, safetensors, HDF5 layout */
  AF_ERR_NOMEM,       /* allocation failed */
  AF_ERR_HDF5,        /* an HDF5 call failed */
  AF_ERR_CUDA,        /* a CUDA or cuBLAS call failed */
  AF_ERR_UNSUPPORTED, /* valid input that this build cannot handle */
  AF_ERR_INTERNAL,    /* a broken invariant: a bug */
  AF_ERR_LIMIT        /* a memory budget would be exceeded: stopped before allocating
                         (af_budget_check; the message names the flag that bounds it) */
} af_status;

#define AF_ERROR_MSG_MAX 1024

typedef struct af_error {
  af_status code;
  char msg[AF_ERROR_MSG_MAX];
} af_error;

/* Records code and a printf-style message in err (if non-NULL); returns code. */
af_status af_error_set(af_error *err, af_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with more context ("loading X: ").
 * Returns err's code. */
af_status af_error_prefix(af_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void af_error_clear(af_error *err);

/* A short name for a status code ("I/O error", ...). */
const char *af_status_name(af_status code);

/* Allocation helpers that report failure through err. Sizes are checked for
 * multiplication overflow. */
void *af_malloc(size_t count, size_t size, af_error *err);
void *af_calloc(size_t count, size_t size, af_error *err);
void *af_realloc(void *ptr, size_t count, size_t size, af_error *err);

/* Propagate a failing status to the caller. */
#define AF_TRY(expr)                  \
  do {                                \
    af_status af_try_status_ = (expr); \
    if (af_try_status_ != AF_OK)      \
      return af_try_status_;          \
  } while (0)

/* ---------------------------------------------------------------- base/out_format */
/* Writing CSV fields (RFC 4180 quoting) and JSON strings for the association
 * commands' outputs. */

/* Writes s as one CSV field, quoted when it holds the delimiter, a quote, a
 * line break or leading/trailing space. */
void af_write_csv_field(FILE *f, const char *s);
/* Writes s as a JSON string literal (s is valid UTF-8). */
void af_write_json_string(FILE *f, const char *s);
/* Writes a double as JSON: %.17g, or null when not finite. */
void af_write_json_number(FILE *f, double x);
/* Writes x into dst (room for AF_G10_MAX bytes) exactly as snprintf's "%.10g"
 * would (same bytes, no terminator); returns the length. Formats with integer
 * arithmetic; falls back to snprintf near a rounding tie or outside 1e-300..1e300. */
#define AF_G10_MAX 32
int af_format_g10(char *dst, double x);
/* Writes a non-negative or negative integer in decimal; returns the length. */
int af_format_i64(char *dst, long long v);
/* 1 if path ends with suffix. */
int af_has_suffix(const char *path, const char *suffix);

/* ---------------------------------------------------------------- base/atomic_file */
/* Whole-or-nothing output files: write to "<final>.tmp.<pid>" in the same
 * folder, then rename over the final path. A failed run leaves no file behind
 * and never truncates an existing one. */

#define AF_PATH_MAX 4096

/* Writes the temporary path for final_path into tmp (AF_PATH_MAX bytes), and
 * removes the temporaries of final_path left by dead processes (a killed
 * earlier run), as af_clean_stale_tmp does for a whole folder. */
af_status af_tmp_path(const char *final_path, char *tmp, af_error *err);

/* fsyncs (when possible) and renames tmp over final_path. On failure removes tmp. */
af_status af_commit_file(const char *tmp, const char *final_path, af_error *err);

/* Removes tmp, ignoring errors (for cleanup paths). */
void af_discard_file(const char *tmp);

/* For stdio writers: opens the temporary file for final_path into *out
 * (tmp receives its path, AF_PATH_MAX bytes). */
af_status af_atomic_open(const char *final_path, char *tmp, FILE **out, af_error *err);

/* Gives up a file from af_atomic_open: closes it and removes tmp. */
void af_atomic_abort(FILE *f, const char *tmp);

/* Closes f (checking for write errors) and commits tmp to final_path.
 * On any failure the temporary file is removed. */
af_status af_atomic_fclose(FILE *f, const char *tmp, const char *final_path, af_error *err);

/* Removes the temporary files of dead processes in folder dir: regular files
 * named "<name>.tmp.<pid>" whose pid is not this process and no longer exists
 * (kill(pid, 0) fails with ESRCH). A pid that exists - even if reused by an
 * unrelated process - keeps its file. *removed (may be NULL) gets the count.
 * A folder shared by machines writing into it at the same time is not
 * supported (a pid there is another machine's). */
af_status af_clean_stale_tmp(const char *dir, int *removed, af_error *err);

/* Parses "<name>.tmp.<pid>" (name non-empty, pid all digits); 0 when the
 * file name has another form. */
long af_tmp_name_pid(const char *name);

/* ---------------------------------------------------------------- base/budget */
/* Memory budgets for computations whose output can explode (frequent
 * itemsets, rules, co-occurrence pairs): each estimates what it is about to
 * hold and stops with an error naming the flag that bounds it, before the
 * allocation, instead of running into the kernel's OOM killer (docs/rules.md). */

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

/* AF_OK when need <= limit; else an AF_ERR_LIMIT error:
 * "<what> would need <need> (limit <limit>); <hint>". */
af_status af_budget_check(int64_t need, int64_t limit, const char *what, const char *hint,
                          af_error *err);

/* ======================== layer kernels ===================================== */
#ifndef AF_HIDE_KERNELS

/* ---------------------------------------------------------------- device */
/* Where the encoder runs: the CPU (OpenMP threads) or a CUDA device. The op
 * interface itself (kernels/ops.h) is internal. */

typedef enum { AF_BACKEND_CPU = 0, AF_BACKEND_CUDA = 1 } af_backend;

typedef struct af_backend_ops af_backend_ops; /* the op table (kernels/ops_table.h, internal) */

typedef struct af_device {
  af_backend backend;
  int n_threads;             /* CPU threads for our kernels (0 = OpenMP default) */
  void *ctx;                 /* the backend's context: the CUDA context, NULL on the CPU */
  const af_backend_ops *ops; /* the backend's op table */
} af_device;

/* precision "fp32" (or NULL) or "bf16" (docs/performance.md): bf16 weights and
 * activations into the GEMMs with fp32 accumulation; LayerNorm, softmax, GELU,
 * pooling, the loss and the optimizer stay fp32. On the CPU bf16 needs
 * AVX512_BF16 (otherwise an error says so and dev is unchanged); on CUDA it is
 * the table whose linear layers take bf16 GEMM inputs (training; the encoder's
 * own bf16 path is af_encoder_set_precision). */
af_status af_device_set_precision(af_device *dev, const char *precision, af_error *err);
/* 1 when dev runs a bf16 op table (CPU or CUDA). */
int af_device_is_bf16(const af_device *dev);

/* A CPU device with n_threads threads (0: all cores). */
af_device af_device_cpu(int n_threads);

/* A CUDA device (GPU `ordinal`): creates the stream, cuBLAS handle and
 * workspace. AF_ERR_UNSUPPORTED when the build has no CUDA or no GPU is there. */
af_status af_device_cuda(int ordinal, af_device *out, af_error *err);
void af_device_release(af_device *dev);
/* 1 when this build has CUDA and a GPU is visible. */
int af_cuda_available(void);

/* Memory on the device (host memory for the CPU backend). */

#endif /* AF_HIDE_KERNELS */

/* ======================== layer io ========================================== */
#ifndef AF_HIDE_IO

/* ---------------------------------------------------------------- io/csv */
/* Trims leading/trailing whitespace and collapses each inner run of
 * whitespace (space, tab, CR, LF, VT, FF) to one space, in place, as the
 * catalog and baskets loaders do with ids and fields. Returns the new length. */
size_t af_normalize_ws(char *s);

/* ---------------------------------------------------------------- io/catalog */
/* Product catalog: one row per product, loaded from a CSV with a header.
 *
 * Ids are trimmed and their inner whitespace collapsed (af_normalize_ws: the
 * one id rule of docs/data-formats.md, also applied by embed and baskets); so
 * are text and category fields. A duplicate id is an error naming both lines;
 * an empty id, a row with the wrong number of fields, invalid UTF-8 and a
 * missing column are errors naming file and line (or column). */

struct af_strmap;

typedef struct af_catalog {
  int64_t n;
  char **ids;        /* (n) */
  char **texts;      /* (n) the text columns joined with one space */
  char **categories; /* (n) or NULL when no category column */
  char **names;      /* (n) display name: the first text column */
  int64_t *counts;   /* (n) the count column (a run folder's products.csv "baskets"), or NULL */
  struct af_strmap *index; /* id -> row */
} af_catalog;

typedef struct {
  const char *id_column;
  const char *const *text_columns;
  int n_text_columns;
  const char *category_column; /* may be NULL */
  char delimiter;              /* 0 means ',' */
  const char *count_column;    /* may be NULL: a column of non-negative integers (counts) */
} af_catalog_options;

af_status af_catalog_load(const char *path, const af_catalog_options *opt, af_catalog *out,
                          af_error *err);
int64_t af_catalog_find(const af_catalog *c, const char *id); /* -1 if absent */
void af_catalog_free(af_catalog *c);

/* ---------------------------------------------------------------- io/baskets */
/* Purchase baskets in CSR form, loaded from a CSV.
 *
 * Two input formats:
 *  - "long": a header row, then one row per (order, item): order_column and
 *    item_column name the columns (defaults "order_id", "product_id"). Rows
 *    of one order need not be adjacent.
 *  - "lines": no header; each line is one basket, its fields the items
 *    (Groceries). Empty fields (a trailing comma) are ignored.
 * Preprocessing: ids and items are trimmed and inner whitespace collapsed;
 * an item counts once per basket; exact duplicate rows are dropped; rows with
 * an empty order or item and baskets with no items are dropped; all drops are
 * counted in af_baskets_report. Invalid UTF-8, a wrong field count, and (with
 * a catalog) an unknown item id are errors naming file and line. Baskets keep
 * their order of first appearance. Time and memory are linear in the input. */

struct af_catalog;

typedef struct {
  int64_t n_baskets;
  int32_t n_items;
  int64_t *offsets;  /* (n_baskets + 1) */
  int32_t *items;    /* (offsets[n_baskets]) dense item indices, each basket sorted ascending, unique */
  char **item_ids;   /* (n_items) external ids as strings (product ids, or names for lines format) */
  char **basket_ids; /* (n_baskets) order ids (lines format: "line N") */
} af_baskets;

typedef struct {
  const char *format;       /* "long" (default when NULL) | "lines" */
  const char *order_column; /* long format; NULL means "order_id" */
  const char *item_column;  /* long format; NULL means "product_id" */
  char delimiter;           /* 0 means ',' */
  int drop_unknown_items;   /* with a catalog: 0 = unknown id is an error, 1 = drop and count */
} af_baskets_options;

typedef struct {
  int64_t rows_read;                /* data rows (long) or lines (lines format) read */
  int64_t rows_kept;                /* rows (long) / lines (lines) that contributed to a basket */
  int64_t dropped_duplicate;        /* long: a row identical to an earlier row */
  int64_t dropped_empty;            /* empty order/item (long) or empty line (lines) */
  int64_t dropped_unknown_item;     /* with drop_unknown_items */
  int64_t items_repeated_in_basket; /* an item repeated in a basket (not an exact duplicate row) */
} af_baskets_report;

/* If catalog != NULL, item index == catalog row and n_items == catalog->n;
 * otherwise items get dense indices in order of first appearance.
 * report may be NULL. */
af_status af_baskets_load(const char *path, const af_baskets_options *opt,
                          const struct af_catalog *catalog, af_baskets *out,
                          af_baskets_report *report, af_error *err);
void af_baskets_free(af_baskets *b);

/* Builds baskets from memory (tests, tools): basket b holds items[offsets[b]..offsets[b+1]),
 * any order, repeats allowed (removed). Item ids become "0", "1", ... */
af_status af_baskets_from_arrays(int64_t n_baskets, int32_t n_items, const int64_t *offsets,
                                 const int32_t *items, af_baskets *out, af_error *err);

/* ---------------------------------------------------------------- io/embfile */
/* The embeddings file: one vector per catalog row, written by `affinity embed`
 * and read by `affinity score`, fusion and evaluation.
 *
 * Also read: an HDF5 file from another tool with only /embeddings (float32 or
 * float16) and optionally /ids (strings or integers), and a .npy matrix.
 *
 * HDF5 layout (docs/embeddings-format.md):
 *   /ids         variable-length UTF-8 strings [N]
 *   /embeddings  float32 [N, d]
 *   root attributes: format = "affinity-embeddings", format_version = 1,
 *                    model (string), pooling (string), normalized (int 0/1), dim (int = d)
 * Every value in /embeddings must be finite. */

#define AF_EMB_FORMAT "affinity-embeddings"
#define AF_EMB_FORMAT_VERSION 1

typedef struct {
  int64_t n;      /* rows */
  int d;          /* dimension */
  char **ids;     /* (n) */
  float *emb;     /* (n, d) */
  char *model;
  char *pooling;
  int normalized; /* 1 when every row has unit L2 norm (inner product = cosine) */
} af_embeddings;

/* Reads and validates a whole file. Errors name the file and the dataset or
 * attribute at fault. On failure *out is left empty (safe to free). */
af_status af_embeddings_read(const char *path, af_embeddings *out, af_error *err);
void af_embeddings_free(af_embeddings *e);

/* af_embeddings_read for a catalog of n rows with these ids: a file without
 * ids (a .npy, or an HDF5 file with only /embeddings) reads row i as catalog
 * row i and takes copies of the catalog's ids, and a row count that differs
 * from the catalog's is an error naming both files. A file with ids reads as
 * af_embeddings_read does (its ids are matched by the caller). Without ids,
 * af_embeddings_read gives the 0-based row numbers "0", "1", ... as ids. */
af_status af_embeddings_read_catalog(const char *path, const char *const *ids, int64_t n,
                                     const char *catalog_path, af_embeddings *out,
                                     af_error *err);

/* Writes e atomically (temporary file + rename). */
af_status af_embeddings_write(const char *path, const af_embeddings *e, af_error *err);

/* Streaming writer: `embed` hands rows over batch by batch and never needs the
 * whole matrix. Everything goes to "<path>.tmp.<pid>"; commit renames it into
 * place only when every row and every id has been written; abort deletes it. */
typedef struct af_emb_writer af_emb_writer;

/* Creates the temporary file with /embeddings [n, d] and /ids [n] allocated. */
af_status af_emb_writer_open(const char *path, int64_t n, int d, const char *model,
                             const char *pooling, int normalized, af_emb_writer **out,
                             af_error *err);
/* Writes rows [row0, row0 + nrows): rows (nrows, d). Rejects non-finite values. */
af_status af_emb_writer_rows(af_emb_writer *w, int64_t row0, int64_t nrows, const float *rows,
                             af_error *err);
/* Writes all n ids at once. */
af_status af_emb_writer_ids(af_emb_writer *w, const char *const *ids, int64_t n, af_error *err);
/* Writes ids of rows [row0, row0 + n) (for a streamed catalog). */
af_status af_emb_writer_id_rows(af_emb_writer *w, int64_t row0, int64_t n,
                                const char *const *ids, af_error *err);
/* Checks that every row and id was written, closes and renames; frees w
 * (also on failure, after deleting the temporary file). */
af_status af_emb_writer_commit(af_emb_writer *w, af_error *err);
/* Closes and deletes the temporary file; frees w. NULL is a no-op. */
void af_emb_writer_abort(af_emb_writer *w);

/* ---------------------------------------------------------------- library */
/* Call once at program start: turns off libhdf5's own printing of error
 * stacks (affinity reports every HDF5 failure itself, naming the file). */
void af_library_init(void);

/* ---------------------------------------------------------------- io/run_files */
/* The files of a run folder (docs/report.md) that report, recommend and groups
 * read: products.csv (the cleaned catalog with its basket counts) and
 * associations.csv, and the helpers every run-folder reader and writer shares. */

/* 64-bit FNV-1a over a file's bytes, continuing from h. */
af_status af_run_hash_file(const char *path, uint64_t *h, af_error *err);
uint64_t af_run_hash_bytes(uint64_t h, const void *data, size_t n);
#define AF_RUN_HASH_SEED 0xcbf29ce484222325ULL

/* Joins dir and name into out (AF_PATH_MAX bytes). */
af_status af_run_path(const char *dir, const char *name, char *out, af_error *err);

/* DIR/products.csv (product_id,product,category,baskets) as a catalog:
 * names = texts = the product column, categories = the category column ("" when
 * the run had none), counts = the baskets column. A missing file says the run
 * folder is incomplete. */
af_status af_run_products_read(const char *run_dir, af_catalog *p, af_error *err);

/* One row of associations.csv: product_id,product,related_id,related,type,score,count,lift,cosine */
typedef struct {
  int64_t a, b; /* rows of the run's products */
  int substitute; /* 0: complement, 1: substitute */
  double score, lift, cosine;
  int64_t count;
} af_assoc;

typedef struct {
  int64_t n;
  af_assoc *rows; /* (n) in file order */
} af_assoc_list;

/* Reads DIR/associations.csv; every id must be in products. Errors name file and line. */
af_status af_assoc_read(const char *run_dir, const af_catalog *p, af_assoc_list *out,
                        af_error *err);
void af_assoc_free(af_assoc_list *l);

#endif /* AF_HIDE_IO */

/* ======================== layer comm ======================================== */
#ifndef AF_HIDE_COMM

/* ---------------------------------------------------------------- comm/comm */
/* af_comm: the collective operations data-parallel training and sharded
 * scoring need, over one of three backends:
 *   single  one process (rank 0 of 1); every collective is a copy or nothing;
 *   mpi     MPI_COMM_WORLD (built when CMake finds MPI: AF_HAVE_MPI);
 *   nccl    NCCL across GPUs (built when CUDA and NCCL are found: AF_HAVE_NCCL),
 *           bootstrapped through MPI (rank 0's ncclUniqueId broadcast) or, under
 *           Slurm without MPI, through a file on a shared folder.
 * Buffers are host memory for every backend (NCCL stages them through the
 * device); af_comm_allreduce_sum_f32_device takes device memory (NCCL only).
 *
 * Determinism: af_comm_allreduce_sum_f32 adds the ranks' buffers in rank order
 * 0, 1, ..., R-1 (((x0 + x1) + x2) + ...), element by element, in float, and
 * every rank receives the same bits: the result depends on R and the inputs
 * only, never on MPI's or NCCL's choice of algorithm. (Implementation: the
 * buffer is cut into R chunks; rank j receives chunk j of every rank
 * (all-to-all), sums it in rank order, and the sums are all-gathered.)
 *
 * Failure: every collective waits at most the communicator's timeout (polling
 * non-blocking MPI calls); past it, it returns AF_ERR_IO naming the
 * operation, the rank and the wait, so that a dead or stuck peer ends the job
 * with an error instead of a hang. The caller then calls af_comm_abort, which
 * ends every rank (MPI_Abort). A rank that dies is also seen by mpirun/srun,
 * which end the others. */

typedef enum { AF_COMM_SINGLE = 0, AF_COMM_MPI = 1, AF_COMM_NCCL = 2 } af_comm_backend;

typedef struct af_comm af_comm;

typedef struct {
  af_comm_backend backend;
  double timeout_s;        /* collective wait limit; <= 0: 600 s */
  const char *nccl_id_dir; /* nccl without MPI: shared folder for the unique-id file */
} af_comm_options;

/* backend single, timeout 600 s, no id folder. */
af_comm_options af_comm_default_options(void);

/* 1 when this process was started by mpirun/mpiexec or srun with more than one
 * task (OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_STEP_NUM_TASKS > 1 in the
 * environment; not SLURM_NTASKS, which a batch script's own commands see
 * too), else 0. */
int af_comm_launched_parallel(void);

/* Creates the communicator. Backends not compiled in: AF_ERR_UNSUPPORTED. MPI
 * is initialised here (MPI_THREAD_FUNNELED) and finalised by af_comm_free. */
af_status af_comm_create(const af_comm_options *opt, af_comm **out, af_error *err);
/* Frees it; for MPI also MPI_Finalize (only when this communicator initialised MPI). */
void af_comm_free(af_comm *c);

int af_comm_rank(const af_comm *c);
int af_comm_size(const af_comm *c);
/* The rank on this node (GPU choice); 0 for single. */
int af_comm_local_rank(const af_comm *c);
af_comm_backend af_comm_backend_of(const af_comm *c);
const char *af_comm_backend_name(af_comm_backend b);

/* buf (n), host memory: buf = sum over ranks of buf, in rank order (above). */
af_status af_comm_allreduce_sum_f32(af_comm *c, float *buf, int64_t n, af_error *err);
/* The same on device memory (NCCL backend only; AF_ERR_UNSUPPORTED otherwise). */
af_status af_comm_allreduce_sum_f32_device(af_comm *c, float *dev_buf, int64_t n, af_error *err);
/* The device all-reduce queued, not waited for (NCCL backend only;
 * AF_ERR_UNSUPPORTED otherwise; nothing with one process): it starts after
 * the work queued so far on after_stream (the trainer's cudaStream_t, from
 * af_dev_stream) and runs on the communicator's own stream, so the caller
 * goes on queueing work that does not touch dev_buf (the bucketed gradient
 * all-reduce overlapping the backward). Same sums as the blocking call. */
af_status af_comm_allreduce_sum_f32_device_async(af_comm *c, float *dev_buf, int64_t n,
                                                 void *after_stream, af_error *err);
/* Blocks until every queued collective of c is done (the timeout applies). */
af_status af_comm_wait(af_comm *c, af_error *err);
/* recv (sum of counts bytes) = the ranks' send buffers concatenated in rank
 * order; rank r sends counts[r] bytes. counts (R) must agree on all ranks. */
af_status af_comm_allgatherv(af_comm *c, const void *send, void *recv, const int64_t *counts,
                             af_error *err);
/* buf (bytes) = root's buf on every rank. */
af_status af_comm_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err);
/* Waits for every rank; timeout_s <= 0: the communicator's timeout. */
af_status af_comm_barrier(af_comm *c, double timeout_s, af_error *err);
/* *all = 1 on every rank when ok is 1 on every rank, else 0: how ranks agree
 * that a step (a file write, a shard) succeeded everywhere. */
af_status af_comm_all_ok(af_comm *c, int ok, int *all, af_error *err);
/* Every rank learns whether st is AF_OK on every rank. If not, every rank
 * returns the error of the lowest failing rank, its message prefixed with
 * "rank F of R: " (so whichever rank reports first names the cause); with all
 * ranks OK, AF_OK. One rank: st. */
af_status af_comm_agree(af_comm *c, af_status st, af_error *err);
/* Ends every rank of the job with exit status code (MPI_Abort); for single, exit(code). */
void af_comm_abort(af_comm *c, int code);

#endif /* AF_HIDE_COMM */

/* ======================== layer search ====================================== */
#ifndef AF_HIDE_SEARCH

/* ---------------------------------------------------------------- search/score */
/* All-pairs top-k by inner product on the CPU (docs/scoring.md).
 *
 * For each query row q the k base rows with the largest inner product q . x,
 * best first, ties to the lower base index, entries below min_score dropped
 * (slots left over hold index -1 and score -inf). For L2-normalized
 * embeddings the inner product is the cosine similarity.
 *
 * Scores are computed by our own blocked kernel (8 x 32 register tiles over
 * a packed copy of the base; AVX-512 where the build has it, else portable C)
 * in which every score is the same float32 fused multiply-add chain over
 * the d components in order 0..d-1. A score therefore has the same bits
 * whatever the thread count, block sizes, shard or query batch, and the
 * result of a query never depends on how the work was split.
 * Memory: the packed base, about N x d floats, plus per thread a heap of k
 * entries per row of its current block; never N x N. */

#define AF_SCORE_MAX_K 2048

typedef struct {
  int threads;        /* OpenMP threads; 0 = the OpenMP default */
  int64_t block_rows; /* query rows per parallel task; 0 = default (256) */
  int64_t block_cols; /* base columns kept hot per pass; 0 = default (512) */
  int asymmetric;     /* 1: all-pairs never takes the symmetric path (tests, benchmarks) */
} af_score_options;

/* A base matrix packed for scoring: (ceil(N/32), d, 32) panels, zero padded. */
typedef struct af_score_index af_score_index;

af_status af_score_index_build(const float *base /* (N, d) */, int64_t N, int d,
                               af_score_index **out, af_error *err);
void af_score_index_free(af_score_index *ix);
int64_t af_score_index_rows(const af_score_index *ix);
int af_score_index_dim(const af_score_index *ix);

/* Top-k of M queries (M, d) against the base.
 *   exclude (M) or NULL: base row to skip for each query (-1: none), e.g. itself;
 *   base_skip (N) or NULL: base rows with a nonzero byte are never returned;
 *   nbr (M, k), scr (M, k): outputs. 0 <= k <= AF_SCORE_MAX_K. */
af_status af_score_index_search(const af_score_index *ix, const float *queries, int64_t M,
                                const int64_t *exclude, const unsigned char *base_skip, int k,
                                float min_score, int64_t *nbr, float *scr,
                                const af_score_options *opt, af_error *err);

/* All N rows of emb (N, d), packed in ix, against all of emb, each row
 * excluding itself, computing each pair of rows once (score(i, j) is
 * score(j, i) bit for bit: the fma chain's products commute) and feeding
 * both rows' top-k. The output is identical, bit for bit, to
 * af_score_index_search with exclude[i] = i, for any threads and block sizes.
 * nbr, scr (N, k): the heaps live there, so no memory beyond the output. */
af_status af_score_all_pairs_symmetric(const af_score_index *ix, const float *emb, int k,
                                       float min_score, int64_t *nbr, float *scr,
                                       const af_score_options *opt, af_error *err);

/* The bf16 mode of the symmetric all-pairs (docs/scoring.md): candidates
 * (k + margin per row) from a bf16 kernel with fp32 accumulation, each
 * rescored with the fp32 kernel's exact arithmetic, the top-k taken again.
 * The output equals af_score_all_pairs_symmetric's bit for bit except where a
 * true neighbour was not among the candidates; *n_unsure (may be NULL) counts
 * the rows where that is possible by the bf16 error bound (an upper bound on
 * the rows that differ). AF_ERR_UNSUPPORTED on a CPU without AVX512_BF16. */
af_status af_score_all_pairs_bf16(const af_score_index *ix, const float *emb, int k, int margin,
                                  float min_score, int64_t *nbr, float *scr,
                                  const af_score_options *opt, int64_t *n_unsure, af_error *err);

/* All-pairs convenience: rows [row0, row1) of emb (N, d) against all of emb,
 * each row excluding itself. nbr, scr (row1 - row0, k). Builds the packed
 * index each call: when scoring many row ranges, build one index and call
 * af_score_index_search instead. All rows (row0 = 0, row1 = N) take the
 * symmetric path unless opt->asymmetric. */
af_status af_topk_all_pairs(const float *emb, int64_t N, int d, int k, float min_score,
                            int64_t row0, int64_t row1, int64_t *nbr, float *scr,
                            const af_score_options *opt, af_error *err);

/* ---------------------------------------------------------------- search/nbrfile */
/* The neighbours file written by `affinity score` (docs/scoring.md), its
 * reader, the merge of shard files, and the driver that scores an embeddings
 * file into a neighbours file while streaming rows to disk.
 *
 * HDF5 layout:
 *   /ids        variable-length UTF-8 strings [N]: every id of the embeddings file
 *   /neighbors  int64 [R, k]: row indices into /ids, best first; -1 = empty slot
 *   /scores     float32 [R, k]: inner products, descending; -inf = empty slot
 *   root attributes: format = "affinity-neighbors", format_version = 1,
 *     k (columns), k_requested, n_total (= N), row0, row_count (= R; the rows
 *     are row0 .. row0+R-1 of /ids), shard ("i/n", 0-based i), min_score
 *     (double, -inf when none), metric = "inner_product", normalized (0/1),
 *     model (string, from the embeddings file). */

#define AF_NBR_FORMAT "affinity-neighbors"
#define AF_NBR_FORMAT_VERSION 1

typedef struct {
  int64_t n_total;   /* N: entries of ids */
  int k;             /* columns */
  int k_requested;
  int64_t row0;      /* first row covered */
  int64_t row_count; /* R */
  int shard_i, shard_n;
  double min_score;
  int normalized;
  char *model;
  char **ids;        /* (n_total) */
  int64_t *nbr;      /* (row_count, k) */
  float *scr;        /* (row_count, k) */
} af_neighbors;

af_status af_neighbors_read(const char *path, af_neighbors *out, af_error *err);
void af_neighbors_free(af_neighbors *nb);

/* Rows of shard i of n: [i*N/n, (i+1)*N/n). */
void af_shard_rows(int64_t N, int shard_i, int shard_n, int64_t *row0, int64_t *row1);

typedef void (*af_score_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
  int k;             /* requested; the file has min(k, N - 1) columns */
  float min_score;   /* -INFINITY for none */
  int shard_i, shard_n; /* 0 and 1 for the whole file */
  af_score_options score;
  int bf16;          /* 1: bf16 candidates (k + bf16_margin) rescored in fp32 (unsharded only) */
  int bf16_margin;   /* extra candidates per row in bf16 mode; < 0: k */
  int64_t *bf16_unsure; /* may be NULL; receives the rows where a neighbour may be lost
                           (af_score_all_pairs_bf16) */
  af_score_progress_fn progress; /* may be NULL */
  void *progress_ctx;
  /* NULL or a CPU device: the CPU scorer. A CUDA device: the GPU scorer (bf16
   * candidates, fp32 rescore with the CPU's bits; docs/scoring.md), equal to
   * the CPU's output on every certified row. */
  const struct af_device *device;
  int margin;              /* GPU: extra bf16 candidates per row (0: 16) */
  int64_t *uncertified;    /* GPU, may be NULL: rows where a neighbour may be lost */
} af_score_file_options;

/* Scores every row of shard i of embeddings file emb_path against all rows
 * and writes the neighbours file out_path atomically. Output rows go to the
 * file a chunk at a time, so memory is the embeddings, their packed copy and
 * one chunk of results. */
af_status af_score_file(const char *emb_path, const char *out_path,
                        const af_score_file_options *opt, af_error *err);

/* Merges shard files covering rows [0, N) exactly once into one file equal to
 * the unsharded run's. Inputs may come in any order. */
af_status af_neighbors_merge(const char *const *inputs, int n_inputs, const char *out_path,
                             af_error *err);

/* af_score_file over the ranks of comm (mpirun -np R affinity score): rank r
 * scores shard r of R into <out_path>.rank<r>-of-<R>.h5, every rank waits for
 * the slowest, rank 0 merges the shards into out_path (equal to the
 * single-process file) and every rank removes its shard. The output folder
 * must be one the ranks share. opt->shard_n must be 1. One rank: af_score_file. */
af_status af_score_file_ranks(af_comm *comm, const char *emb_path, const char *out_path,
                              const af_score_file_options *opt, af_error *err);

#endif /* AF_HIDE_SEARCH */

/* ======================== layer nn ========================================== */
#ifndef AF_HIDE_NN

/* ---------------------------------------------------------------- nn/model */
/* The BERT-family encoder (engine/nn/model.c, encoder.c): configuration,
 * checkpoint, and the forward pass over packed batches.
 *
 * Post-LayerNorm BERT: word + position + token-type embeddings -> LayerNorm ->
 * L x [QKV -> attention -> output proj -> +res -> LN -> FFN(erf-GELU) -> +res -> LN]
 * -> pooling (mean or CLS) -> optional L2 normalisation. */

typedef enum { AF_POOL_MEAN = 0, AF_POOL_CLS = 1 } af_pooling;

typedef struct {
  int vocab_size;        /* V */
  int hidden_size;       /* C */
  int num_layers;        /* L */
  int num_heads;         /* NH */
  int intermediate_size; /* F */
  int max_position;      /* P */
  int type_vocab_size;   /* TT */
  float layer_norm_eps;
  af_pooling pooling;
  int normalize;   /* L2-normalise the pooled embedding */
  int max_seq_len; /* tokens per sequence incl. [CLS]/[SEP] (sentence-transformers max_seq_length) */
  int has_pooler;  /* the checkpoint carries pooler.dense (kept for export; unused here) */
  /* tokenizer options */
  int lowercase;
  int strip_accents; /* 1, 0, -1 = follow lowercase */
  int tokenize_chinese_chars;
} af_model_config;

/* The model is a handle: af_model_alloc gives an empty one that af_model_load
 * (our checkpoint), af_model_import_hf (a Hugging Face folder) or
 * af_train_checkpoint_load fills; af_model_close frees it. */
typedef struct af_model af_model;
af_status af_model_alloc(af_model **out, af_error *err);
/* alloc + af_model_load / af_model_import_hf; *out is NULL on failure. */
af_status af_model_open(const char *path, af_model **out, af_error *err);
af_status af_model_open_hf(const char *dir, af_model **out, af_error *err);
void af_model_close(af_model *m);
const af_model_config *af_model_get_config(const af_model *m);
const char *af_model_name(const af_model *m);  /* "" when unnamed */
af_status af_model_set_name(af_model *m, const char *name, af_error *err);
int af_model_vocab_size(const af_model *m);
int af_model_n_tensors(const af_model *m);
int64_t af_model_n_floats(const af_model *m);

/* Hugging Face BERT folder (safetensors + config.json + vocab.txt +
 * sentence-transformers files) -> model (docs/checkpoint-format.md). */
af_status af_model_import_hf(const char *dir, af_model *m, af_error *err);
/* Our HDF5 checkpoint: save is atomic (tmp + rename). */
af_status af_model_save(const char *path, const af_model *m, af_error *err);
af_status af_model_load(const char *path, af_model *m, af_error *err);

/* ---- forward ----------------------------------------------------------------- */

/* A packed batch: B sequences, T tokens in all, host arrays. */
typedef struct {
  int B, T;
  const int32_t *ids;        /* (T) */
  const int32_t *cu_seqlens; /* (B + 1), cu_seqlens[0] = 0, cu_seqlens[B] = T */
} af_batch;

/* Runs a model on a device: the parameters (copied to the device for CUDA)
 * and activation buffers sized for the largest batch seen so far. */
typedef struct af_encoder af_encoder;

af_status af_encoder_create(const af_model *m, const af_device *dev, af_encoder **out,
                            af_error *err);
void af_encoder_free(af_encoder *enc);
/* C of the encoder's model. */
int af_encoder_hidden_size(const af_encoder *enc);
/* Re-copies the host parameters to the device (after training changed them). */
af_status af_encoder_sync_params(af_encoder *enc, af_error *err);

/* Arithmetic of the forward pass. FP32: every op in fp32 (the parity mode,
 * matching Hugging Face to 1e-4). BF16: the GEMMs take bf16 weights (a copy at
 * the fp32 table's offsets) and bf16 activations with fp32 accumulation; the
 * residual stream, LayerNorm statistics, softmax sums and pooling stay fp32
 * (kernels/ops.h, "bf16 inference ops"). DEFAULT: BF16 on a GPU, FP32 on the
 * CPU (where BF16 is an exact but slow emulation, for tests). */
typedef enum { AF_PRECISION_DEFAULT = 0, AF_PRECISION_FP32 = 1, AF_PRECISION_BF16 = 2 } af_precision;

/* Parses "fp32" / "bf16" (field names the flag in the error). */
af_status af_precision_parse(const char *s, const char *field, af_precision *out, af_error *err);
/* FP32 or BF16: what DEFAULT means on dev. */
af_precision af_precision_resolve(af_precision p, const af_device *dev);
/* Switches the encoder's precision (BF16 makes and uploads the bf16 weights). */
af_status af_encoder_set_precision(af_encoder *enc, af_precision p, af_error *err);

/* out (B, C) host: pooled (and, if the model says so, L2-normalised)
 * embeddings. hidden (L + 1, T, C) host, may be NULL: the embedding output and
 * each layer's output (Hugging Face's output_hidden_states). Sequences must
 * have 1..cfg.max_position tokens. */
af_status af_encoder_forward(af_encoder *enc, const af_batch *batch, float *out, float *hidden,
                             af_error *err);

/* ---------------------------------------------------------------- nn/tokenizer */
/* BERT WordPiece tokenizer, identical to Hugging Face's BertTokenizerFast
 * (BertNormalizer + BertPreTokenizer + WordPiece + [CLS] ... [SEP]) for the
 * same vocab and options. See docs/tokenizer.md.
 *
 * A tokenizer is immutable after creation: af_tokenizer_encode is reentrant
 * and may be called from many threads at once; it allocates nothing. */

typedef struct af_tokenizer af_tokenizer; /* opaque */

typedef struct {
  int lowercase;              /* do_lower_case */
  int strip_accents;          /* 1, 0, or -1 = follow lowercase (HF's strip_accents=None) */
  int tokenize_chinese_chars; /* split CJK ideographs into single-character words */
  int max_len;                /* total ids including [CLS] and [SEP] (>= 2); truncation
                                 keeps the first max_len-2 wordpieces */
} af_tokenizer_options;

/* lowercase 1, strip_accents -1, tokenize_chinese_chars 1, max_len 512. */
void af_tokenizer_default_options(af_tokenizer_options *opt);

/* vocab[i] is the token with id i (n_vocab entries, NUL-terminated UTF-8).
 * [CLS], [SEP] and [UNK] must be present; [PAD] and [MASK] are optional. When a
 * token occurs twice, lookups give the later id (as HF's dict does). opt may be
 * NULL for the defaults. */
af_status af_tokenizer_create(const char *const *vocab, int n_vocab, const af_tokenizer_options *opt,
                              af_tokenizer **out, af_error *err);

/* One token per line (\n, \r\n or \r), id = line index, as HF's load_vocab
 * reads it. Errors name the file and line (invalid UTF-8, a NUL byte). */
af_status af_tokenizer_from_vocab_file(const char *path, const af_tokenizer_options *opt,
                                       af_tokenizer **out, af_error *err);

void af_tokenizer_free(af_tokenizer *tok);

/* Encodes UTF-8 text (len bytes, need not be NUL-terminated) into
 * [CLS] wordpieces... [SEP], truncated to max_len ids. Writes at most cap ids
 * (cap >= max_len is always enough; a smaller cap that the ids do not fit in
 * gives AF_ERR_ARG); *n_ids = count written. Invalid UTF-8 anywhere in the
 * text gives AF_ERR_FORMAT naming the byte offset. The literal special tokens
 * [CLS] [SEP] [UNK] [PAD] [MASK] in the text map to their ids, as in HF. */
af_status af_tokenizer_encode(const af_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              int cap, int *n_ids, af_error *err);

int af_tokenizer_vocab_size(const af_tokenizer *tok);
const char *af_tokenizer_token(const af_tokenizer *tok, int32_t id);    /* NULL if out of range */
int32_t af_tokenizer_token_id(const af_tokenizer *tok, const char *token); /* -1 if absent */
/* The options as given at creation (strip_accents may be -1). */
const af_tokenizer_options *af_tokenizer_options_of(const af_tokenizer *tok);
int32_t af_tokenizer_cls_id(const af_tokenizer *tok);
int32_t af_tokenizer_sep_id(const af_tokenizer *tok);
int32_t af_tokenizer_unk_id(const af_tokenizer *tok);
int32_t af_tokenizer_pad_id(const af_tokenizer *tok); /* -1 if the vocab has no [PAD] */

/* ---------------------------------------------------------------- nn/embed */
/* Text to embeddings: the model's tokenizer, embedding of in-memory texts, and
 * streaming embedding of a whole catalog CSV into an embeddings file
 * (docs/embeddings-format.md). Memory is bounded by one chunk of rows and its
 * batches' activations, plus the output ids; never by the catalog's texts. */

/* The tokenizer described by the model's vocabulary and options; max_len 0
 * means the model's max_seq_length (a larger value is clamped to it). */
af_status af_model_tokenizer(const af_model *m, int max_len, af_tokenizer **out, af_error *err);

typedef void (*af_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
  int max_len;        /* tokens per text incl. [CLS]/[SEP]; 0 = the model's */
  int batch_tokens;   /* token budget of one packed forward batch (default 8192) */
  af_precision precision; /* encoder arithmetic; DEFAULT: bf16 on a GPU, fp32 on the CPU */
  int pipeline;       /* af_embed_catalog: 0 = on for a GPU, off on the CPU; 1 = on; -1 = off.
                         On: a second thread reads and tokenizes chunk c + 1 while chunk c is
                         encoded and written; and (af_embed_texts too) each chunk's batches are
                         staged in pinned memory with queued copies, one wait per chunk (the
                         same output, bit for bit) */
  af_progress_fn progress; /* may be NULL */
  void *progress_ctx;
} af_embed_options;

void af_embed_default_options(af_embed_options *opt);

/* Embeds n texts: out (n, C). */
af_status af_embed_texts(af_encoder *enc, const af_tokenizer *tok, const char *const *texts,
                         int64_t n, const af_embed_options *opt, float *out, af_error *err);

typedef struct {
  const char *path;
  const char *id_column;
  const char *const *text_columns; /* joined with one space */
  int n_text_columns;
  char delimiter;
} af_catalog_source;

/* Streams the catalog twice (count, then embed) and writes `out_path`
 * atomically: /ids, /embeddings (N, C), attributes model and pooling.
 * Duplicate or empty ids and rows with the wrong number of fields are errors
 * naming the file and line. *n_rows (may be NULL) receives N. */
af_status af_embed_catalog(const af_model *m, const af_device *dev, const af_catalog_source *src,
                           const af_embed_options *opt, const char *out_path, int64_t *n_rows,
                           af_error *err);

/* ---------------------------------------------------------------- nn/export_hf */
/* Export of a checkpoint as a Hugging Face BertModel + sentence-transformers
 * folder: model.safetensors (float32, Hugging Face names), config.json,
 * vocab.txt, tokenizer_config.json, special_tokens_map.json, modules.json,
 * 1_Pooling/config.json, sentence_bert_config.json,
 * config_sentence_transformers.json. SentenceTransformer(dir) loads it and
 * af_model_import_hf(dir) reads it back exactly (docs/training.md). */

/* Writes every file into "<dir>.tmp.<pid>" first; then, when dir does not
 * exist, renames that folder to dir, else moves each file into dir with one
 * rename each (so no file of dir is ever half-written). */
af_status af_export_hf(const af_model *m, const char *dir, af_error *err);

#endif /* AF_HIDE_NN */

/* ======================== layer assoc ======================================= */
#ifndef AF_HIDE_ASSOC

/* ---------------------------------------------------------------- assoc/cooccur */
/* Sparse item co-occurrence counts from baskets, and the pair statistics
 * built on them.
 *
 * count(a, b) is the number of baskets holding both a and b (each unordered
 * pair once per basket). Pairs are kept when count >= min_count. Storage is a
 * symmetric CSR: row a lists every neighbour b != a (ascending) with its
 * count, so item-CF and fusion read a neighbour list directly; af_cooccur_next
 * walks each unordered pair once (a < b).
 *
 * Counting: for each item a (in parallel over chunks of items), walk the
 * baskets holding a and add 1 to a dense counter for each later item b > a;
 * the touched counters are then sorted and emitted. Time O(sum of squared
 * basket sizes), scratch O(n_items) per thread, output O(pairs). */

typedef struct {
  int64_t n_baskets;
  int32_t n_items;
  int64_t min_count;
  int64_t *item_count; /* (n_items) baskets holding each item */
  int64_t *offsets;    /* (n_items + 1) CSR rows */
  int32_t *nbr;        /* (offsets[n_items]) neighbour items, ascending within a row */
  int32_t *count;      /* (offsets[n_items]) count(a, nbr) */
} af_cooccur;

/* min_count >= 1. */
af_status af_cooccur_build(const af_baskets *b, int64_t min_count, af_cooccur *out, af_error *err);
void af_cooccur_free(af_cooccur *c);

/* af_cooccur_build within memory_limit bytes for the pairs (0 =
 * af_memory_limit_default()); past it, an error naming --min-count and
 * --memory-limit, before the allocation. */
af_status af_cooccur_build_limited(const af_baskets *b, int64_t min_count, int64_t memory_limit,
                                   af_cooccur *out, af_error *err);

/* Number of unordered pairs stored. */
int64_t af_cooccur_n_pairs(const af_cooccur *c);
/* count(a, b), 0 when below min_count or absent (binary search in row a). */
int64_t af_cooccur_count(const af_cooccur *c, int32_t a, int32_t b);

/* Iterates unordered pairs a < b in (a, b) order. Start with *pos = 0, *row = 0. */
int af_cooccur_next(const af_cooccur *c, int64_t *pos, int32_t *row, int32_t *a, int32_t *b,
                    int64_t *count);

/* Association measures of the pair (a, b) as in mlxtend's association_rules:
 * support = n_ab/n, confidence_ab = n_ab/n_a, lift = confidence_ab/support_b,
 * leverage = support - support_a*support_b, conviction = (1 - support_b)/(1 -
 * confidence_ab) (+inf when confidence_ab == 1), jaccard = n_ab/(n_a + n_b -
 * n_ab), cosine = n_ab/sqrt(n_a*n_b). */
typedef struct {
  double support, confidence_ab, confidence_ba, lift, leverage, conviction, jaccard, cosine;
} af_pair_stats;
void af_pair_stats_compute(int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab, af_pair_stats *s);

/* ---------------------------------------------------------------- assoc/itemcf */
/* Item-based collaborative filtering on co-occurrence counts.
 *
 * For every item a, the top-k neighbours b != a with count(a, b) >= min_count,
 * scored by
 *   cosine: count(a, b) / sqrt(count(a) count(b))
 *   lift:   count(a, b) n / (count(a) count(b))
 * highest first; equal scores are broken by the lower item index. Rows with
 * fewer than k neighbours are padded with index -1 and score 0. */
typedef enum { AF_ITEMCF_COSINE = 0, AF_ITEMCF_LIFT = 1 } af_itemcf_measure;

/* Parses "cosine" / "lift". */
af_status af_itemcf_measure_parse(const char *s, af_itemcf_measure *m, af_error *err);

/* nbr: (n_items, k) neighbour indices; score: (n_items, k) scores. Uses the
 * pairs stored in co (built with co->min_count <= min_count). */
af_status af_itemcf_topk(const af_cooccur *co, af_itemcf_measure measure, int k, int64_t min_count,
                         int32_t *nbr, double *score, af_error *err);

/* Score of the pair under measure, from counts (n = baskets). */
double af_itemcf_score(af_itemcf_measure measure, int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab);

/* Item-KNN with shrinkage (Sarwar et al. 2001; shrinkage as in Koren 2008):
 *   s(a, b) = count(a, b) / (sqrt(count(a) count(b)) + shrink)
 * over the pairs with count(a, b) >= min_count; each item keeps its k best
 * neighbours (ties: lower index). A query Q scores b by the sum over q in Q
 * of s(q, b) when b is among q's kept neighbours. Shrinkage pulls the
 * similarity of pairs seen in few baskets towards 0. */
typedef struct {
  int32_t n_items;
  int64_t *off; /* (n_items + 1) CSR rows */
  int32_t *nbr; /* (off[n_items]) best first */
  float *sim;   /* (off[n_items]) */
} af_itemknn;

af_status af_itemknn_build(const af_cooccur *co, int k, double shrink, int64_t min_count,
                           af_itemknn *out, af_error *err);
void af_itemknn_free(af_itemknn *m);
/* out[b] += sum over q in query of s(q, b) (out (n_items)). */
void af_itemknn_query_scores(const af_itemknn *m, const int32_t *query, int n_query, float *out);

/* ---------------------------------------------------------------- assoc/rules */
/* Frequent itemsets (FP-growth, engine/assoc/fpgrowth.c) and association rules
 * (engine/assoc/rules.c).
 *
 * Support of an itemset is its basket count over n_baskets. An itemset is
 * frequent when count / n_baskets >= min_support evaluated in double
 * precision, i.e. count >= af_min_count_for_support(min_support, n), the
 * smallest integer c with (double)c / n >= min_support (and c >= 1). This is
 * mlxtend's `support >= min_support` (its apriori); mlxtend's fpgrowth uses
 * ceil(min_support * n), which can differ by one when the product rounds up
 * (0.07 * 100 = 7.000000000000001).
 *
 * A rule A -> C splits a frequent itemset S (2 <= |S| <= max_len) into two
 * non-empty disjoint sides, |C| <= max_consequent (0 = any). Measures follow
 * mlxtend.association_rules in double precision: support = s(S), confidence =
 * s(S)/s(A), lift = confidence/s(C), leverage = s(S) - s(A) s(C), conviction =
 * (1 - s(C))/(1 - confidence), +inf when confidence == 1. A rule is kept when
 * confidence >= min_confidence and lift >= min_lift. */

/* Itemsets of one or more items, each sorted ascending by item index. */
typedef struct {
  int64_t n_baskets;
  int64_t min_count;
  int64_t n_itemsets;
  int64_t *offsets; /* (n_itemsets + 1) into items */
  int32_t *items;   /* (offsets[n_itemsets]) */
  int64_t *counts;  /* (n_itemsets) baskets holding the whole itemset */
  int64_t cap_sets, cap_items;
} af_itemsets;

int64_t af_min_count_for_support(double min_support, int64_t n_baskets);

/* All frequent itemsets of length 1..max_len (0 = no limit) by FP-growth.
 * Output order: deterministic (the mining order), not sorted. */
af_status af_fpgrowth(const af_baskets *b, double min_support, int max_len, af_itemsets *out,
                      af_error *err);
void af_itemsets_free(af_itemsets *s);

typedef struct {
  double min_support;   /* (0, 1] */
  int max_len;          /* 0 = no limit */
  int64_t max_itemsets; /* 0 = no cap; more is an error naming --max-itemsets */
  int64_t memory_limit; /* bytes for the itemsets; 0 = af_memory_limit_default() */
} af_fpgrowth_options;

/* af_fpgrowth with limits: the itemsets' memory is checked before each growth
 * of the output arrays, so an explosive min_support stops with an error
 * naming --min-support, --max-len, --max-itemsets and --memory-limit.
 * (af_fpgrowth uses the default memory limit and no itemset cap.) */
af_status af_fpgrowth_ex(const af_baskets *b, const af_fpgrowth_options *opt, af_itemsets *out,
                         af_error *err);

typedef struct {
  double min_confidence; /* [0, 1] */
  double min_lift;       /* 0 = no filter */
  int max_consequent;    /* 0 = every split; 1 = one-item consequents (arules, pyfim) */
  int64_t max_rules;     /* 0 = all; else the first max_rules in the sort order */
} af_rules_options;

/* A rule: antecedent = the items of itemset `itemset` selected by ante_mask
 * (bit i = i-th item), consequent = the rest. */
typedef struct {
  int64_t itemset;
  uint32_t ante_mask;
  int64_t count, ante_count, cons_count;
  double support, confidence, lift, leverage, conviction;
} af_rule;

typedef struct {
  int64_t n_rules;
  af_rule *rules; /* (n_rules) sorted: lift desc, confidence desc, support desc, then antecedent
                     items, then consequent items (lexicographic by item index) */
} af_rules;

/* Rules from every frequent itemset of length >= 2 in fi (which must hold
 * every subset of each itemset it holds, as af_fpgrowth's output does).
 * Itemsets longer than 31 items are an error (cap them with max_len). */
af_status af_rules_generate(const af_itemsets *fi, const af_rules_options *opt, af_rules *out,
                            af_error *err);
void af_rules_free(af_rules *r);

/* af_rules_generate within memory_limit bytes for the candidate rules and
 * their sort (0 = af_memory_limit_default()); past it, an error naming
 * --min-confidence, --max-len, --max-consequent and --memory-limit. */
af_status af_rules_generate_limited(const af_itemsets *fi, const af_rules_options *opt,
                                    int64_t memory_limit, af_rules *out, af_error *err);

/* Items of a rule's antecedent (side 0) or consequent (side 1) into dst
 * (capacity >= 32); returns how many. */
int af_rule_side(const af_itemsets *fi, const af_rule *r, int side, int32_t *dst);

/* ---------------------------------------------------------------- assoc/assoc_files */
/* The association output files, one writer each, used by both the CLI
 * commands (rules, cooccur, itemcf) and the run stages (docs/data-formats.md):
 *
 *   rules.csv    antecedent,consequent,support,confidence,lift,leverage,conviction,count
 *                [,antecedent_ids,consequent_ids when the items have names]
 *   rules.jsonl  {"antecedent": [...], "consequent": [...], ["antecedent_ids", "consequent_ids",]
 *                 "support", "confidence", "lift", "leverage", "conviction", "count"}
 *   cooccur.csv  item_a,item_b,count,support,confidence_ab,confidence_ba,lift,leverage,
 *                conviction,jaccard,cosine[,name_a,name_b when the items have names]
 *   itemcf.csv   item,rank,neighbor,score,count[,item_name,neighbor_name when named]
 *
 * A side of a rule joins its names with " | " and its ids with " "; numbers are
 * "%.10g" (af_format_g10), infinite conviction "inf" in CSV and null in JSONL.
 * Every file is written to a temporary and renamed (base/atomic_file.h). */

/* How items are shown: ids (n_items) always; names (n_items) or NULL when
 * there is no catalog (then the name columns are left out and the display
 * name of an item is its id). */
typedef struct {
  const char *const *ids;
  const char *const *names;
} af_item_labels;

/* rules.csv (jsonl = 0) or rules.jsonl (jsonl = 1). */
af_status af_rules_write(const char *path, int jsonl, const af_itemsets *fi, const af_rules *rs,
                         const af_item_labels *lab, af_error *err);

/* One row per pair with count >= min_count, in af_cooccur_next's order. */
af_status af_cooccur_write_csv(const char *path, const af_cooccur *co, int64_t min_count,
                               const af_item_labels *lab, af_error *err);

/* nbr, score: (n_items, k) from af_itemcf_topk; rows end at the first nbr < 0. */
af_status af_itemcf_write_csv(const char *path, const af_cooccur *co, int k, const int32_t *nbr,
                              const double *score, const af_item_labels *lab, af_error *err);

/* ---------------------------------------------------------------- assoc/fuse */
/* Fusion of co-purchase evidence and text similarity into complements and
 * substitutes (docs/fusion.md).
 *
 * The small API that `affinity associate`, `affinity run` and `affinity eval`
 * use:
 *
 *   af_fuse_input in = {N, d, emb, &baskets, n_levels, levels};
 *   af_fuse_options opt; af_fuse_default_options(&opt);
 *   af_fuse_result res;
 *   af_fuse_run(&opt, &in, &res, &err);        // in-memory results
 *   af_fuse_write_csv("associations.csv", ids, names, &res, &err);  // atomic
 *   af_fuse_result_free(&res);
 *
 * Complement score. With A the item-CF cosine matrix, A[x,y] =
 * count(x,y)/sqrt(count(x) count(y)) for pairs bought together in at least
 * min_count baskets (0 elsewhere and on the diagonal), and T the back-off
 * matrix
 *   T[x,:] = (1 - beta_x) [n_x > 0] e_x + beta_x S[x,:]
 *   beta_x = (1 - w_x) cbar_x,   w_x = n_x / (n_x + history_prior)
 * (n_x = baskets holding x; history_prior 0 means w_x = 1 when n_x > 0, else
 * 0; S[x,:] = x's text_k nearest products *that have history* with cosine >=
 * text_min_cosine, weighted by cosine and normalised to sum 1; cbar_x =
 * their cosine-weighted mean cosine, 0 when there are none, so evidence
 * borrowed from a neighbour is discounted by how similar it is), the fused
 * complement score is
 *   F = T A T^T.
 * Where both products have long histories F[a,b] ~ A[a,b] (pure co-purchase);
 * where the product a has none, F[a,:] is the complements of a's text
 * neighbours; where the candidate b has none, b is scored through its own
 * text neighbours -- so new products get complements and can be complements.
 * A query (a basket) scores a candidate by the sum of F over its items.
 *
 * Substitute: among a's sub_pool text nearest neighbours (any product), those
 * with cosine >= sub_min_cosine, in the same category (the first category
 * level where both products have a non-empty value decides; none: no
 * constraint), whose co-purchase lift is <= sub_max_lift or who were never
 * bought together; best cosine first.
 *
 * Everything is deterministic: ties go to the lower catalog row. */

typedef struct {
  int k;                 /* complements and substitutes kept per product (default 10) */
  int64_t min_count;     /* co-purchase pairs seen in fewer baskets carry no evidence (default 2) */
  int text_k;            /* text neighbours with history used for back-off (default 20) */
  double history_prior;  /* n/(n + prior) is the weight of a product's own history (default 5) */
  double text_min_cosine; /* back-off neighbours need at least this cosine (default 0.4) */
  int sub_pool;          /* text neighbours examined for substitutes (default 50) */
  double sub_min_cosine; /* substitute needs at least this text cosine (default 0.6) */
  double sub_max_lift;   /* and co-purchase lift at most this (default 1) */
  int threads;           /* OpenMP threads; 0 = default */
  /* Adaptive text back-off (added; see af_fuse_adaptive_scores). text_alpha
   * 0 turns it off: complements are ranked by F alone. */
  double text_alpha;     /* back-off weight of a never-sold candidate (default 0: off) */
  double text_beta;      /* lambda_b = text_alpha / (1 + n_b / text_beta) (default 4) */
  int rank_k;            /* reciprocal ranks 1 / (rank_k + rank) (default 10) */
  int text_pool;         /* text candidates ranked per query (default 100) */
  int text_mode;         /* AF_FUSE_TEXT_SCALED (default), _RANKS or _MERGE (below) */
  double warm_text_weight; /* AF_FUSE_TEXT_MERGE: + this x cosine in the warm list (default 0.05) */
  int query_history;     /* 1: lambda also scaled by the query items' mean 1/(1 + n_q/text_beta),
                            so text counts where the query's own history is thin (default 0) */
  int64_t memory_limit;  /* bytes for the model, its text-neighbour pools and the result rows
                            (0 = af_memory_limit_default()): af_fuse_model_build and
                            af_fuse_run estimate their need before allocating and stop with
                            AF_ERR_LIMIT naming --memory-limit and the pool flags past it;
                            the co-occurrence pairs (every pair, at any count) are counted
                            against what remains as they are found */
} af_fuse_options;

void af_fuse_default_options(af_fuse_options *opt);
/* AF_ERR_ARG naming the offending field when out of range. */
af_status af_fuse_check_options(const af_fuse_options *opt, af_error *err);

typedef struct {
  int64_t N;                 /* products (catalog rows) */
  int d;                     /* embedding dimension */
  const float *emb;          /* (N, d) L2-normalised, row i = catalog row i */
  const af_baskets *baskets; /* n_items == N: item index = catalog row */
  int n_category_levels;     /* 0 = no categories */
  const char *const *const *categories; /* (n_category_levels) arrays of (N); "" or NULL = unknown */
} af_fuse_input;

enum { AF_FUSE_TEXT_SCALED = 0, AF_FUSE_TEXT_RANKS = 1, AF_FUSE_TEXT_MERGE = 2 };
/* The mode named "scaled", "ranks" or "merge" (NULL: scaled); an unknown
 * name is AF_ERR_ARG naming the flag --text-mode. */
af_status af_fuse_text_mode_parse(const char *name, int *mode, af_error *err);

/* ---- the scoring model (eval uses it directly) ---------------------------- */
typedef struct af_fuse_model af_fuse_model;

/* Builds co-occurrence, the back-off matrix T and (with substitutes != 0) the
 * substitute candidate pool. Borrows in->emb and in->categories for the
 * model's lifetime. */
af_status af_fuse_model_build(const af_fuse_options *opt, const af_fuse_input *in,
                              int substitutes, af_fuse_model **out, af_error *err);
void af_fuse_model_free(af_fuse_model *m);

/* Per-thread work space of af_fuse_query_scores. */
typedef struct af_fuse_scratch af_fuse_scratch;
af_status af_fuse_scratch_create(const af_fuse_model *m, af_fuse_scratch **out, af_error *err);
void af_fuse_scratch_free(af_fuse_scratch *s);

/* Adds sum over query items q of F[q, b] into out[b] for every b (out (N)).
 * Returns the number of entries that may be nonzero;
 * *touched then lists them (ascending by first touch, owned by s, valid until
 * the next call). */
int64_t af_fuse_query_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                             af_fuse_scratch *s, float *out, const int32_t **touched);

/* The adaptive complement score (docs/fusion.md), with the query's items
 * excluded everywhere:
 *   score(Q, b) = [F_Q(b) > 0] / (rank_k + rank_F(b))
 *               + lambda_b [b in P] / (rank_k + rank_T(b)),
 *   lambda_b = text_alpha / (1 + n_b / text_beta),
 * F_Q(b) = sum over q in Q of F[q, b]; rank_F(b) = 1 + #{c : F_Q(c) > F_Q(b)}
 * among the candidates with F_Q > 0; P = the query's text pool: its
 * text_pool best candidates by text cosine, best first, given in pool
 * (n_pool entries, query items already left out; pool == NULL and
 * n_query == 1: the model's own neighbours of query[0], which exist when the
 * model was built with substitutes != 0); rank_T(b) = 1 + #{c in P :
 * cos(c) > cos(b)}; n_b = baskets holding b. Both terms are reciprocal ranks,
 * so co-purchase and text evidence are on the same scale for every query;
 * the text term fades as the candidate's history grows. The text term is
 * off (lambda = 0) when text_alpha is 0 or the baskets carry no co-purchase
 * evidence at all (no pair reaches min_count): text alone is no complement
 * evidence.
 * out (N) must be all zero on entry; it gets the scores; returns the number
 * of nonzero entries, listed in *touched (owned by s, valid until the next
 * call). */
/* text_mode AF_FUSE_TEXT_MERGE instead merges two lists by reciprocal rank:
 * the candidates with history ranked by W(b) = F_Q(b) + warm_text_weight
 * cos(b) score 1 / (rank_k + rank_W(b)); the candidates without history
 * (never in a training basket) ranked by C(b) = F_Q(b) + cos(b) (borrowed
 * co-purchases plus direct text match, both on their natural scales) score
 * text_alpha / (rank_k + rank_C(b)); cos(b) = 0 outside the pool, and a
 * candidate with W or C <= 0 scores 0. With rank_k = 10 and text_alpha 0.5
 * the j-th cold candidate lands just below the (2j + 10)-th warm one. */
int64_t af_fuse_adaptive_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                                const int32_t *pool, const float *pool_cos, int n_pool,
                                af_fuse_scratch *s, float *out, const int32_t **touched);
/* lambda_b of candidate b (0 when the text term is off). */
double af_fuse_text_lambda(const af_fuse_model *m, int32_t b);

/* ---- whole-catalog associations -------------------------------------------- */
typedef enum { AF_ASSOC_COMPLEMENT = 0, AF_ASSOC_SUBSTITUTE = 1 } af_assoc_type;

typedef struct {
  int32_t product, related; /* catalog rows */
  af_assoc_type type;
  float score;   /* complement: the adaptive score (F[product, related] when text_alpha
                    is 0); substitute: the text cosine */
  int64_t count; /* baskets holding both */
  double lift;   /* count n / (n_a n_b); NAN when count == 0 */
  float cosine;  /* text cosine similarity */
} af_association;

typedef struct {
  int64_t n;
  af_association *rows; /* (n) by product, then complements best first, then substitutes */
} af_fuse_result;

af_status af_fuse_run(const af_fuse_options *opt, const af_fuse_input *in, af_fuse_result *out,
                      af_error *err);
void af_fuse_result_free(af_fuse_result *r);

/* Writes product_id,product,related_id,related,type,score,count,lift,cosine
 * atomically. ids, names (N). */
af_status af_fuse_write_csv(const char *path, const char *const *ids, const char *const *names,
                            const af_fuse_result *r, af_error *err);

/* Copies embeddings into catalog order: out (n_catalog, d) row i = the vector
 * of catalog id ids[i], L2-normalised. A catalog id absent from emb_ids is an
 * error naming it and `source`. */
af_status af_fuse_align_embeddings(const char *source, const char *const *emb_ids,
                                   const float *emb, int64_t n_emb, int d,
                                   const char *const *ids, int64_t n_catalog, float *out,
                                   af_error *err);

/* ---------------------------------------------------------------- assoc/ease */
/* EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), a closed-form
 * linear item-item model.
 *
 * With X the (baskets, n) 0/1 matrix of the modelled products and
 * G = X^T X the Gram matrix (G[i,j] = baskets holding both i and j, G[i,i] =
 * baskets holding i), B minimises ||X - X B||^2 + lambda ||B||^2 subject to
 * diag(B) = 0. Its closed form is
 *   P = (G + lambda I)^{-1},   B = I - P diag(1 / diag(P)),
 * i.e. B[i,j] = -P[i,j] / P[j,j] (i != j), B[j,j] = 0; it satisfies the
 * normal equations ((G + lambda I) B)[i,j] = G[i,j] for every i != j.
 * A query Q scores a candidate j by sum over q in Q of B[q, j].
 *
 * Modelled products: those in at least min_count training baskets. The
 * solve is dense: O(n^2) memory (8 n^2 bytes while solving, 4 n^2 after) and
 * O(n^3) time (a Cholesky factorisation and inverse, LAPACK dpotrf + dpotri
 * from OpenBLAS), so n is capped at max_items: above it only the max_items
 * most-bought products are modelled (ties: lower catalog row), the others
 * score 0 (docs/evaluation.md has the measured cost). */
typedef struct {
  double lambda;     /* L2 weight, > 0 (default 100: chosen on Instacart's validation split) */
  int64_t min_count; /* products in fewer training baskets are not modelled (default 2) */
  int64_t max_items; /* size limit of the dense solve (default 5000) */
} af_ease_options;

#define AF_EASE_DEFAULT_OPTIONS {.lambda = 100.0, .min_count = 2, .max_items = 5000}

typedef struct {
  int32_t N;          /* catalog products (baskets' n_items) */
  int64_t n;          /* modelled products */
  int64_t n_eligible; /* products with >= min_count baskets, before the max_items cap */
  int32_t *items;     /* (n) catalog rows of the modelled products, ascending */
  int32_t *local;     /* (N) catalog row -> index into items, or -1 */
  float *B;           /* (n, n) row-major: B[i * n + j] weight of item i for candidate j */
  double seconds;     /* fit time (Gram + solve) */
} af_ease_model;

/* In place: A (n, n) symmetric positive definite -> A^{-1} (LAPACK dpotrf +
 * dpotri); an error naming dpotrf's info when A is not positive definite. */
af_status af_spd_inverse(double *A, int64_t n, af_error *err);

/* In place: G (n, n) symmetric Gram matrix on entry, B on return (row-major,
 * B[i * n + j]). An error when G + lambda I is not positive definite. */
af_status af_ease_solve(double *G, int64_t n, double lambda, af_error *err);

/* Fits EASE on the baskets (item index = catalog row). */
af_status af_ease_fit(const af_baskets *train, const af_ease_options *o, af_ease_model *out,
                      af_error *err);
void af_ease_free(af_ease_model *m);

/* out[j] += sum over the modelled query items q of B[q, j] (out (N)). */
void af_ease_query_scores(const af_ease_model *m, const int32_t *query, int n_query, float *out);

/* res's complement rows replaced by related (N, k) / score (N, k) (catalog
 * rows best first, -1 padded; N = baskets->n_items), with their co-purchase
 * count and lift from baskets and the text cosine of emb (N, d; NULL: 0);
 * res's substitutes stay, each product's after its complements. */
af_status af_fuse_replace_complements(const af_baskets *baskets, int k, const int32_t *related,
                                      const float *score, const float *emb, int d,
                                      af_fuse_result *res, af_error *err);

/* associate with EASE complements: res's complement rows are replaced by
 * each modelled product's k best candidates with B[a, b] > 0 (ties: lower
 * row), with their co-purchase count and lift from baskets and the text
 * cosine of emb (N, d, L2-normalised; NULL: 0); res's substitutes stay. */
af_status af_ease_complements(const af_ease_model *m, const af_baskets *baskets, int k,
                              const float *emb, int d, af_fuse_result *res, af_error *err);

/* ---------------------------------------------------------------- assoc/groups */
/* Product groups from the complement graph (docs/report.md).
 *
 * Graph: one node per product with a complement association of score > 0 and >=
 * min_score; one undirected edge per pair, weighted by the larger score of
 * its two directions (associations.csv lists a -> b and b -> a separately).
 *
 * Grouping, --method:
 *  louvain (default): modularity clustering (Blondel et al. 2008), made
 *    deterministic (nodes in catalog order, a move needs a strictly larger
 *    gain, ties to the community seen first); local moving, then communities
 *    become nodes, repeated while anything moves (engine/assoc/groups_louvain.c).
 *  lpa: weighted label propagation (Raghavan, Albert, Kumara 2007), made
 *    deterministic: every node starts with its own label; sweeps visit nodes
 *    in catalog order and give each the label with the largest summed edge
 *    weight among its neighbours, keeping its current label on a tie with the
 *    best and otherwise taking the smallest tied label; stop when a sweep
 *    changes nothing (or after max_sweeps). At the end every node's label is
 *    a best label among its neighbours. It grows groups around hubs.
 * Connected components are no use here: on the Instacart sample 1,948 of the
 * 2,022 linked products form one component.
 *
 * Groups are numbered by size (largest first, ties by smallest member row);
 * members are ordered by strength (summed weight of their edges inside the
 * group), strongest first. */

typedef enum { AF_GROUPS_LOUVAIN = 0, AF_GROUPS_LPA = 1 } af_groups_method;

typedef struct {
  af_groups_method method; /* default louvain */
  double min_score; /* complement rows below this are ignored (default 0) */
  int max_sweeps;   /* per level (default 100) */
} af_groups_options;

void af_groups_default_options(af_groups_options *o);

typedef struct {
  int64_t n_groups;
  int64_t *offsets;  /* (n_groups + 1) into members */
  int64_t *members;  /* (offsets[n_groups]) product rows */
  double *strength;  /* (offsets[n_groups]) per member */
  int sweeps;        /* lpa: sweeps run; louvain: levels that moved nodes */
  int converged;     /* lpa: the last sweep changed nothing */
  double modularity; /* Q = sum over groups of in/m - (tot/2m)^2 on the weighted graph */
} af_groups;

af_status af_groups_compute(const af_catalog *p, const af_assoc_list *as,
                            const af_groups_options *o, af_groups *out, af_error *err);
void af_groups_free(af_groups *g);

/* groups.csv: group,group_size,rank,product_id,product,category,strength */
af_status af_groups_write_csv(const char *path, const af_catalog *p, const af_groups *g,
                              af_error *err);

#endif /* AF_HIDE_ASSOC */

/* ======================== layer train ======================================= */
#ifndef AF_HIDE_TRAIN

/* ---------------------------------------------------------------- train/adamw */
/* AdamW optimizer, learning-rate schedule and gradient clipping, with the
 * semantics of torch.optim.AdamW (single-tensor path),
 * transformers.get_linear_schedule_with_warmup and
 * torch.nn.utils.clip_grad_norm_.
 *
 * One optimizer step over a model whose parameters are a table of tensors:
 *   double ss = 0;  for each tensor: ss += af_grad_sumsq(grad, n);
 *   float  gs = accum_scale * af_clip_coef(accum_scale * sqrt(ss), max_norm);
 *   double lr = af_lr_linear_warmup(base_lr, steps_done, warmup, total);
 *   for each tensor: af_adamw_update(p, g, m, v, n, lr, &cfg,
 *                                    af_param_decays(name), steps_done + 1, gs);
 *   steps_done++; zero the gradients.
 * accum_scale turns summed micro-batch gradients into their mean (1 / number
 * of micro-batches; 1 without accumulation). */

typedef struct af_adamw_config {
  float beta1, beta2; /* moment decay rates */
  float eps;          /* added to sqrt(v_hat), outside the square root */
  float weight_decay; /* decoupled: p -= lr * weight_decay * p, for decaying tensors */
} af_adamw_config;

/* torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
af_adamw_config af_adamw_defaults(void);

/* One AdamW step of one tensor; step is this update's 1-based count (the
 * bias corrections use beta^step). With g = grad_scale * grad:
 *   if decay: p *= 1 - lr * weight_decay
 *   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * param, grad, m, v (n); m and v start at zero. */
void af_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, double lr,
                     const af_adamw_config *cfg, int decay, int64_t step, float grad_scale);

/* The float scalars of one AdamW step (computed in double, then rounded, as
 * af_adamw_update uses them; a device kernel given these does the same
 * per-element float operations and gets the same bits). */
typedef struct af_adamw_scalars {
  float keep_decay; /* 1 - lr * weight_decay (decaying tensors; others keep 1) */
  float w1, w2, fb2; /* 1 - beta1, 1 - beta2, beta2 */
  float step_size;  /* lr / (1 - beta1^step) */
  float bc2_sqrt;   /* sqrt(1 - beta2^step) */
  float eps;
} af_adamw_scalars;
af_adamw_scalars af_adamw_step_scalars(const af_adamw_config *cfg, double lr, int64_t step);

/* 1 if the parameter of this Hugging Face name takes weight decay: 0 for
 * biases (".bias" at the end) and LayerNorm tensors ("LayerNorm" anywhere). */
int af_param_decays(const char *hf_name);

/* Learning rate of the optimizer step that follows `steps_done` steps:
 * base_lr * steps_done / warmup while steps_done < warmup, then
 * base_lr * max(0, (total - steps_done) / max(1, total - warmup)).
 * (transformers' get_linear_schedule_with_warmup: the first step runs at lr 0
 * when warmup > 0.) */
double af_lr_linear_warmup(double base_lr, int64_t steps_done, int64_t warmup, int64_t total);

/* Sum of squares of n gradient values, in double, in a fixed order
 * (independent of the thread count). Sum it over all tensors, take the square
 * root: the global L2 norm. */
double af_grad_sumsq(const float *grad, int64_t n);

/* clip_grad_norm_'s factor: min(1, max_norm / (total_norm + 1e-6)).
 * max_norm <= 0 disables clipping (returns 1). */
float af_clip_coef(double total_norm, double max_norm);

/* ---------------------------------------------------------------- train/pairs */
/* Training pairs for contrastive fine-tuning: (anchor text, positive text).
 *
 * From baskets: every unordered pair of items (a, b) bought together in at
 * least min_count baskets whose lift (af_pair_stats_compute) is >= min_lift,
 * both with a non-empty text. The eligible pairs, enumerated in (a, b) order,
 * are shuffled with the seed; each pair's orientation (which item is the
 * anchor) is drawn from the seed too; the first n_val become the held-out
 * validation set, then at most max_pairs of the rest the training set.
 * From a CSV (header row, first two columns anchor, positive): same shuffle
 * and split.
 *
 * Every draw is Philox4x32-10 (engine/base/philox.h) with key = seed on a fixed
 * stream, so the sets and every epoch's order are functions of (data, options,
 * seed) alone. The epoch order is a Fisher-Yates shuffle on stream
 * AF_PAIRS_STREAM_EPOCH + epoch: a data cursor (epoch, position) is all a
 * checkpoint needs to continue the same sequence of batches. */

#define AF_PAIRS_STREAM_SPLIT 0x5041495253000000ULL /* "PAIRS" */
#define AF_PAIRS_STREAM_EPOCH 0x4550434800000000ULL /* "EPCH" + epoch */

typedef struct af_pair_set {
  int64_t n;
  char **anchor;   /* (n) */
  char **positive; /* (n) */
  int32_t *item_a; /* (n) anchor item index (baskets), -1 for CSV pairs */
  int32_t *item_b; /* (n) positive item index, -1 for CSV pairs */
  int64_t *count;  /* (n) baskets holding both (0 for CSV pairs) */
  double *lift;    /* (n) (0 for CSV pairs) */
} af_pair_set;

typedef struct {
  int64_t min_count;   /* >= 1 (default 2) */
  double min_lift;     /* default 1.0 */
  int64_t max_pairs;   /* training pairs kept; 0 = all */
  double val_fraction; /* share of the eligible pairs held out (default 0.05) */
  int64_t max_val;     /* at most this many validation pairs (default 1000; 0 = none) */
  uint64_t seed;
} af_pairs_options;

void af_pairs_default_options(af_pairs_options *opt);

/* texts: catalog->texts when catalog != NULL (items are catalog rows), else
 * the baskets' item ids (e.g. Groceries item names). */
af_status af_pairs_from_baskets(const af_baskets *b, const af_catalog *catalog,
                                const af_pairs_options *opt, af_pair_set *train, af_pair_set *val,
                                af_error *err);

/* A CSV with a header; the first two columns are anchor and positive. Rows with
 * an empty field are errors naming the file and line. */
af_status af_pairs_from_csv(const char *path, const af_pairs_options *opt, af_pair_set *train,
                            af_pair_set *val, af_error *err);

void af_pair_set_free(af_pair_set *s);

/* FNV-1a 64 of the pair texts in order (checkpoints verify resumed data). */
uint64_t af_pair_set_fingerprint(const af_pair_set *s);

/* perm (n): the order of epoch `epoch`, a permutation of 0..n-1. */
void af_pairs_epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);

/* A uniform integer in [0, bound) from draw `i` of stream (seed, stream). */
uint64_t af_pairs_rand_below(uint64_t seed, uint64_t stream, uint64_t i, uint64_t bound);

/* ---------------------------------------------------------------- train/train */
/* Fine-tuning the encoder on any backend of the op interface (the CPU, or a
 * CUDA GPU; parameters, gradients, AdamW moments and activations live in the
 * device's memory, which is host memory on the CPU): the training forward (which keeps what
 * the backward needs), the backward through the whole encoder + pooling + L2
 * normalisation + multiple-negatives ranking loss into a gradient buffer laid
 * out exactly like the parameters (af_model.data, same table and offsets),
 * AdamW steps, and checkpoints with the optimizer state that resume
 * bit-exactly. The math is in docs/training.md; the checkpoint groups in
 * docs/checkpoint-format.md ("Training state").
 *
 * One micro-batch is a packed batch of 2B sequences: the B anchors, then the
 * B positives of the same pairs (af_batch, cu_seqlens (2B + 1)). Its pooled,
 * normalised embeddings (2B, C) go through af_mnr_loss (in-batch negatives).
 *
 * Dropout follows Hugging Face's BertModel in train mode: hidden dropout
 * after the embeddings' LayerNorm, after the attention output dense and after
 * the FFN output dense (before each residual add), and attention-probability
 * dropout on the softmax (af_op_attention_dropout_forward, kernels/ops_backward.h). Masks come from Philox
 * (engine/base/philox.h) with key = seed and
 *   stream = micro * AF_TRAIN_DROPOUT_SITES(L) + site,
 * site 0 = embeddings, 1 + 3l = layer l attention probabilities, 2 + 3l =
 * layer l attention output, 3 + 3l = layer l FFN output, micro = step *
 * grad_accum + index of the micro-batch in the step. So a step's masks depend on (seed, step) only, which makes resumed
 * runs bit-exact. With dropout 0 the training forward performs exactly the
 * inference forward's operations (af_encoder_forward), so the embeddings are
 * bitwise equal. */

#define AF_TRAIN_DROPOUT_SITES(L) (1 + 3 * (uint64_t)(L))

typedef struct {
  float dropout;        /* hidden dropout probability, 0 <= p < 1 (BERT: 0.1) */
  float attn_dropout;   /* attention-probability dropout, 0 <= p < 1 (BERT: 0.1) */
  float scale;          /* MNR scale (sentence-transformers: 20) */
  int symmetric;        /* symmetric MNR loss */
  uint64_t seed;        /* dropout masks, pair shuffling */
  double lr;            /* peak learning rate */
  int64_t warmup;       /* warm-up steps */
  int64_t total_steps;  /* schedule length (lr reaches 0 there) */
  double max_grad_norm; /* <= 0: no clipping */
  int grad_accum;       /* micro-batches per optimizer step (>= 1) */
  int batch;            /* pairs per micro-batch (B) */
  af_adamw_config adamw;
} af_train_config;

/* dropout 0.1 (hidden and attention), scale 20, plain loss, seed 42, lr 2e-5, warmup 0, total 1,
 * max_grad_norm 1, grad_accum 1, batch 32, torch's AdamW defaults. */
void af_train_default_config(af_train_config *cfg);

typedef struct af_trainer af_trainer;

/* Trains m (AF_ERR_UNSUPPORTED on a backend without the training ops). The
 * trainer keeps a pointer to m and allocates gradients and AdamW moments
 * (3 x n_floats floats) on dev. On the CPU the parameters are m's own buffer,
 * trained in place; on a GPU they are a device copy, and m's host buffer is
 * refreshed by af_trainer_sync_host (checkpoints and evaluations do it). */
af_status af_trainer_create(af_model *m, const af_device *dev, const af_train_config *cfg,
                            af_trainer **out, af_error *err);
void af_trainer_free(af_trainer *t);

const af_train_config *af_trainer_config(const af_trainer *t);
/* The model being trained. */
af_model *af_trainer_model(const af_trainer *t);
/* Optimizer steps done so far. */
int64_t af_trainer_steps_done(const af_trainer *t);
/* The device the trainer runs on. */
const af_device *af_trainer_device(const af_trainer *t);
/* (n_floats) gradient buffer, parallel to m->data (same offsets), in the
 * device's memory (host memory on the CPU; af_trainer_read_state copies it). */
float *af_trainer_grad(af_trainer *t);
af_status af_trainer_zero_grad(af_trainer *t, af_error *err);
/* AdamW moments (n_floats each), device memory as the gradient. */
float *af_trainer_moment1(af_trainer *t);
float *af_trainer_moment2(af_trainer *t);
/* The parameters being trained (n_floats, device memory; m->data on the CPU). */
float *af_trainer_params(af_trainer *t);
/* bf16 mode (af_device_set_precision "bf16"): the persistent bf16 working
 * copy of the parameters (n_floats, device memory, the parameter layout) that
 * the linear layers read, the bf16 rounding of af_trainer_params, refreshed by
 * every optimizer step; NULL in fp32 mode. */
const uint16_t *af_trainer_work_bf16(const af_trainer *t);
/* m->data = the trained parameters (a download on a GPU, nothing on the CPU). */
af_status af_trainer_sync_host(af_trainer *t, af_error *err);
/* Host copies (n_floats each) of the gradient and moments; NULL: not wanted. */
af_status af_trainer_read_state(const af_trainer *t, float *grad, float *m1, float *m2,
                                af_error *err);
/* The moments from host copies (n_floats each): resume. */
af_status af_trainer_write_moments(af_trainer *t, const float *m1, const float *m2,
                                   af_error *err);
/* Sets the step counter (resume); moments are filled through the pointers above. */
void af_trainer_set_steps_done(af_trainer *t, int64_t steps);
/* Changes the schedule's length (a resumed run extended with --steps); >= steps done. */
af_status af_trainer_set_total_steps(af_trainer *t, int64_t total, af_error *err);
/* 1 if the parameter is trained: every parameter but pooler.* (BertModel's
 * pooler gets no gradient under mean/CLS pooling, so torch's AdamW skips it). */
int af_trainer_param_trained(const char *hf_name);

/* The training forward of a packed batch with the dropout masks of micro-batch
 * `micro`: out (B, C) pooled (and normalised when the model says so)
 * embeddings. Keeps the activations for af_trainer_backward. */
af_status af_trainer_forward(af_trainer *t, const af_batch *batch, uint64_t micro, float *out,
                             af_error *err);
/* Backward of the last af_trainer_forward given d loss / d out (B, C):
 * accumulates into the gradient buffer. */
af_status af_trainer_backward(af_trainer *t, const float *dout, af_error *err);

/* Forward + loss + backward of one micro-batch of pairs (2B sequences: B
 * anchors, then their B positives); gradients accumulate. *loss: the mean MNR
 * loss of the micro-batch. */
af_status af_trainer_accumulate(af_trainer *t, const af_batch *pairs, uint64_t micro, float *loss,
                                af_error *err);

/* One optimizer step over the n_micro micro-batches accumulated since the
 * last step: gradient mean (1 / n_micro), global-norm clipping, linear
 * warm-up/decay schedule, AdamW on every trained parameter; then zeroes the
 * gradients. *lr, *grad_norm (may be NULL): the lr used and the norm of the
 * mean gradient before clipping. */
af_status af_trainer_step(af_trainer *t, int n_micro, double *lr, double *grad_norm,
                          af_error *err);

/* ---- data parallel (engine/train/train_dp.c; docs/distributed.md) -------------
 * Every rank holds the whole model and the same global micro-batch of B pairs
 * (2B sequences); rank r embeds pairs [r B / R, (r + 1) B / R) (its anchors and
 * their positives), the embeddings of all ranks are all-gathered so that the
 * MNR loss and its in-batch negatives span the whole global batch (every rank
 * computes the same loss), each rank backpropagates the loss gradient of its
 * own rows, and af_trainer_allreduce_grad sums the gradients over ranks before
 * af_trainer_step. Dropout masks are drawn at each element's position in the
 * global batch, so R ranks compute the gradient one process computes for the
 * same B, up to the order of floating-point sums. */

/* Where the sequences of the next forward/backward sit in a larger batch:
 * gtok (B) the global token index of each sequence's first token, gprob (B)
 * the global index (ops.h layout) of its first attention probability; NULL:
 * the batch is whole. Copied; stays until changed. */
af_status af_trainer_set_layout(af_trainer *t, const int32_t *gtok, const int64_t *gprob, int B,
                                af_error *err);

/* Hidden dropout at global positions: for sequence i of x (cu (B + 1), C per
 * token) element c of its token k is global element (gtok[i] + k) C + c of
 * af_op_dropout_forward's mask. dout NULL: x = mask ⊙ x / (1 - p) in place;
 * else x += mask ⊙ dout / (1 - p) (the backward; p = 0 adds dout). */
void af_train_dropout_at(float *x, const float *dout, const int32_t *cu, int B, int C,
                         const int32_t *gtok, float p, uint64_t seed, uint64_t stream);

/* The data-parallel af_trainer_accumulate: pairs is the whole global
 * micro-batch (the same on every rank); this rank computes its share and
 * *loss is the global batch's mean loss. With one rank it is
 * af_trainer_accumulate. Needs B >= ranks. */
af_status af_trainer_accumulate_shared(af_trainer *t, af_comm *comm, const af_batch *pairs,
                                       uint64_t micro, float *loss, af_error *err);

/* Sums the gradient buffer over the ranks (rank order, af_comm). */
af_status af_trainer_allreduce_grad(af_trainer *t, af_comm *comm, af_error *err);

/* Bucketed all-reduce overlapping the backward (GPU trainer, nccl backend,
 * several ranks): with comm set, every following backward queues the
 * all-reduce of each layer's gradient on the communicator's stream as soon as
 * that layer's backward is queued, and of the embeddings and pooler at the
 * end; af_comm_wait(comm) then completes it (instead of
 * af_trainer_allreduce_grad). The same sums as af_trainer_allreduce_grad
 * (rank order, element by element). Set it for the last micro-batch of a step
 * only; NULL turns it off. AF_ERR_UNSUPPORTED when not possible. */
int af_trainer_can_overlap_reduce(const af_trainer *t, af_comm *comm);
af_status af_trainer_reduce_in_backward(af_trainer *t, af_comm *comm, af_error *err);

/* ---- checkpoints (engine/train/train_checkpoint.c) -------------------------------- */

/* What the loop stores beside the model and optimizer. */
typedef struct {
  int64_t epoch;            /* data cursor: epoch ... */
  int64_t position;         /* ... and the next pair of that epoch's order */
  int64_t n_train, n_val;   /* pair counts, checked on resume */
  uint64_t data_fingerprint; /* af_pair_set_fingerprint of the training pairs */
  int64_t tokens_seen;
  int64_t max_len;          /* tokens per text used for training */
} af_train_meta;

/* Writes model + /optim + /train atomically (tmp + rename). */
af_status af_train_checkpoint_save(const char *path, const af_trainer *t,
                                   const af_train_meta *meta, af_error *err);

/* Reads a training checkpoint: *m gets the model, *t a trainer with its
 * config, moments and step, *meta the loop state. Every dataset's shape, the
 * configuration's ranges and a checksum over parameters and moments are
 * verified: a truncated or corrupted file is an AF_ERR_FORMAT/AF_ERR_HDF5
 * error naming the file (and nothing is returned). */
af_status af_train_checkpoint_load(const char *path, const af_device *dev, af_model *m,
                                   af_trainer **t, af_train_meta *meta, af_error *err);

/* 1 when the file looks like a training checkpoint (has /optim and /train). */
int af_train_checkpoint_is(const char *path);

/* ---- the loop (engine/train/train_loop.c) ------------------------------------------ */


/* One record of the loop's progress, handed to the callback (the CLI prints
 * it) and appended to <out_dir>/log.jsonl as one JSON line. */
typedef struct {
  int is_eval;
  int64_t step, total_steps, epoch;
  double loss, lr, grad_norm, tokens_per_s, elapsed_s; /* training records */
  int64_t tokens;                                      /* tokens in this step */
  double recall_at_1, recall_at_10, mean_rank;         /* evaluation records */
  int64_t n_val;
  const char *json; /* the JSON line (no newline) */
} af_train_event;

typedef void (*af_train_event_fn)(void *ctx, const af_train_event *ev);

typedef struct {
  const af_pair_set *train; /* required, n >= batch */
  const af_pair_set *val;   /* may be NULL or empty: no evaluation */
  int max_len;          /* tokens per text incl. [CLS]/[SEP] */
  int64_t stop_after;   /* stop after this many steps in this call (0: at total_steps) */
  int64_t save_every;   /* checkpoint every N steps (0: only at the end) */
  int64_t keep;         /* step-*.h5 checkpoints kept (0: all) */
  int64_t eval_every;   /* validation Recall@10 every N steps (0: at start and end only) */
  const char *out_dir;  /* existing folder: step-XXXXXXX.h5, final.h5, log.jsonl */
  af_train_event_fn on_event;
  void *ctx;
  af_comm *comm;        /* data parallel over its ranks (NULL: one process); rank 0
                           alone writes checkpoints and log.jsonl, evaluates and
                           calls on_event */
  const struct af_basket_examples *baskets; /* set: the basket objective on these examples
                                        (train unused, one process only) */
} af_train_loop_options;

/* Runs optimizer steps until total_steps (or stop_after in this call).
 * meta carries the data cursor in and out (a fresh run: zeroed, with n_train,
 * n_val, data_fingerprint and max_len set). Writes
 * out_dir/step-<step 7 digits>.h5 every save_every steps and when it stops
 * (keeping the newest `keep`), out_dir/final.h5 when the schedule is done, and
 * appends to out_dir/log.jsonl. Evaluation ranks each validation anchor's
 * positive among all validation positives (cosine). */
af_status af_train_run(af_trainer *t, const af_tokenizer *tok,
                       const af_train_loop_options *opt, af_train_meta *meta, af_error *err);

/* Recall@1, Recall@10 and the mean rank (1-based) of each pair's positive
 * among all positives of the set, ranked by cosine similarity to its anchor
 * with the current parameters (inference forward, no dropout). */
af_status af_train_evaluate(af_model *m, const af_device *dev, const af_tokenizer *tok,
                            const af_pair_set *val, int max_len, double *recall_at_1,
                            double *recall_at_10, double *mean_rank, af_error *err);

/* ---------------------------------------------------------------- train/basket */
/* The basket-completion objective (engine/train/basket.c, docs/training.md):
 * an example is a training basket with one item held out; its query is the
 * other items (at most max_query of them, drawn with the seed when there are
 * more), pooled as the mean of their unit-normalised encoder embeddings
 * (normalised again by the loss); the positive is the held-out item's text;
 * the other examples' held-out items of the micro-batch are the negatives,
 * each logit corrected by - log q_j (q = the item's share of the training
 * baskets' item occurrences) when logq is set, and a candidate that is in
 * the row's own basket is masked (it is a true positive, not a negative).
 * The loss gradient flows back into every query item's sequence. */

#define AF_BASKET_STREAM_QUERY 0x424153514b000000ULL /* "BASQK": query sampling */
#define AF_BASKET_MAX_QUERY 64

typedef struct af_basket_examples {
  int64_t n;                 /* examples */
  int64_t *basket;           /* (n) basket index */
  int32_t *held;             /* (n) the held-out item */
  double *log_q;             /* (n_items) log share of item occurrences; items never bought:
                                log(0.5 / occurrences) (never a positive, only for safety) */
  const af_baskets *baskets; /* borrowed */
  const char *const *texts;  /* borrowed (n_items) */
  int max_query;             /* 1..AF_BASKET_MAX_QUERY */
  int logq;                  /* apply the correction */
  uint64_t seed;
} af_basket_examples;

/* Every (basket, item) of the baskets with >= 2 items that have a non-empty
 * text, in basket order (then item order); max_examples > 0 keeps a seeded
 * sample of that many (in the same order). out is overwritten (cleared first,
 * so pass a fresh or freed one); on error it holds nothing to free. */
af_status af_basket_examples_build(const af_baskets *b, const char *const *texts, int max_query,
                                   int logq, int64_t max_examples, uint64_t seed,
                                   af_basket_examples *out, af_error *err);
void af_basket_examples_free(af_basket_examples *ex);
/* FNV-1a over the settings and the (basket, held) list (checked on resume). */
uint64_t af_basket_examples_fingerprint(const af_basket_examples *ex);
/* q (max_query): the query items of example e (ascending); returns how many.
 * A function of (seed, e) only: Philox stream AF_BASKET_STREAM_QUERY + e. */
int af_basket_query(const af_basket_examples *ex, int64_t e, int32_t *q);

/* Forward + basket loss + backward of examples idx (B) as one micro-batch
 * (each distinct item of the batch is one sequence, tokenised with tok);
 * gradients accumulate. *loss the mean loss, *tokens the tokens forwarded. */
af_status af_trainer_accumulate_basket(af_trainer *t, const af_tokenizer *tok,
                                       const af_basket_examples *ex, const int64_t *idx, int B,
                                       uint64_t micro, float *loss, int64_t *tokens,
                                       af_error *err);

#endif /* AF_HIDE_TRAIN */

/* ======================== layer eval ======================================== */
#ifndef AF_HIDE_EVAL

/* ---------------------------------------------------------------- eval/eval */
/* Offline evaluation of basket completion (docs/evaluation.md).
 *
 * Protocol. Baskets are split 80/20 by a seeded hash (exactly
 * round(test_fraction * n) test baskets); a seeded cold_fraction of the
 * products that occur in any basket (exactly round(cold_fraction * n_sold))
 * is removed from every training basket (their titles stay in the
 * catalog). In each test basket with at least two items one item is hidden
 * (seeded) and the others form the query. A method scores every product; the
 * query items are excluded; the rank of the hidden item is
 *   1 + #{b not in query, b != h : s_b > s_h  or  (s_b == s_h and b < h)}
 * over all N products -- no candidate sampling. With popularity_ties (the
 * default) equal scores are first ordered by training popularity (so the
 * many zero scores of a sparse method fall back to popularity), then by the
 * lower catalog row. Per query, with K in {10, 20}:
 *   Recall@K = [rank <= K], NDCG@K = [rank <= K] / log2(rank + 1)
 * (one relevant item: the ideal DCG is 1), RR = 1 / rank (no cut-off);
 * reported values are means over the queries of a group. Groups: warm = the
 * hidden product occurs in the training baskets; cold = it does not (the
 * seeded cold products, and products that happen to occur only in test
 * baskets; counted apart in af_eval_split).
 *
 * Seeds: everything random is Philox4x32-10 (philox.h) of (seed, stream,
 * index), so a split depends on the seed and the data only. */
enum { AF_EVAL_WARM = 0, AF_EVAL_COLD = 1, AF_EVAL_N_GROUPS = 2 };
#define AF_EVAL_NK 2
extern const int af_eval_ks[AF_EVAL_NK]; /* {10, 20} */

typedef struct {
  uint64_t seed;        /* default 42 */
  double test_fraction; /* default 0.2 */
  double cold_fraction; /* default 0.1 */
} af_eval_split_options;

void af_eval_split_default_options(af_eval_split_options *o);

typedef struct {
  int32_t N;                /* products */
  af_baskets train;         /* n_items == N, cold products removed */
  unsigned char *cold;      /* (N) 1 = seeded cold product */
  int64_t n_cold_products;  /* seeded */
  int64_t n_test_baskets;   /* baskets held out */
  int64_t n_test_too_small; /* held-out baskets with fewer than two items (no query) */
  int64_t n_queries;
  int64_t *q_off;           /* (n_queries + 1) */
  int32_t *q_items;         /* (q_off[n_queries]) query items, ascending */
  int32_t *hidden;          /* (n_queries) */
  int64_t *q_basket;        /* (n_queries) index of the test basket */
  unsigned char *group;     /* (n_queries) AF_EVAL_WARM / AF_EVAL_COLD */
  int64_t n_cold_seeded;    /* cold queries whose hidden product is a seeded cold product */
} af_eval_split;

/* The random split of `all` (n_items = N). */
af_status af_eval_split_random(const af_baskets *all, const af_eval_split_options *o,
                               af_eval_split *out, af_error *err);
/* Train on `train`, query every basket of `test` (same item indexing, no
 * seeded cold products; only the hidden item is drawn with seed). */
af_status af_eval_split_given(const af_baskets *train, const af_baskets *test, uint64_t seed,
                              af_eval_split *out, af_error *err);
void af_eval_split_free(af_eval_split *s);

/* ---- metrics ---------------------------------------------------------------- */
typedef struct {
  int64_t n;               /* queries */
  double recall[AF_EVAL_NK], ndcg[AF_EVAL_NK], mrr; /* sums until finished, then means */
} af_eval_metrics;

/* Rank (1-based) of hidden among all N products but the n_query query
 * items. Equal scores are ordered by tie (N) descending when tie != NULL,
 * then by the lower index. */
int64_t af_eval_rank(const float *scores /* (N) */, const float *tie /* (N) or NULL */,
                     int64_t N, int32_t hidden, const int32_t *query, int n_query);
void af_eval_metrics_add(af_eval_metrics *m, int64_t rank);
void af_eval_metrics_finish(af_eval_metrics *m);

/* ---- methods ---------------------------------------------------------------- */
typedef enum {
  AF_EVAL_POPULARITY, /* training basket count */
  AF_EVAL_RULES,      /* best confidence of a rule A -> {b} with A a subset of the query */
  AF_EVAL_ITEMCF,     /* sum over query items of the item-CF cosine */
  AF_EVAL_TEXT,       /* cosine to the mean (or max over) query items' embeddings */
  AF_EVAL_FUSION,     /* sum over query items of the fused complement score F */
  AF_EVAL_CUSTOM,     /* a caller's scoring function (tests) */
  AF_EVAL_EASE,       /* sum over query items of the EASE weight B[q, b] (assoc/ease.h) */
  AF_EVAL_ITEMKNN,    /* sum over query items of the shrunk item-KNN similarity (assoc/itemcf.h) */
  AF_EVAL_LEARNED     /* a linear ranker over the features below, fitted on a validation split */
} af_eval_kind;

/* Custom scorer: writes scores (N) for one query. */
typedef void (*af_eval_score_fn)(void *ctx, const int32_t *query, int n_query, float *scores);

typedef struct {
  af_eval_kind kind;
  const char *name;
  /* TEXT and FUSION */
  const float *emb; /* (N, d) L2-normalised, catalog order */
  int d;
  int text_max;     /* TEXT: 0 = mean of the query embeddings, 1 = max cosine over them */
  /* ITEMCF (and ITEMKNN, LEARNED): pairs seen in fewer baskets are ignored
   * (AF_EVAL_DEFAULT_MIN_COUNT: eval, run and associate share the rule) */
  int64_t min_count;
  /* RULES: FP-growth on the training baskets */
  int64_t rules_min_count; /* itemset support in baskets */
  int rules_max_len;
  double rules_min_confidence;
  /* FUSION */
  af_fuse_options fuse;
  /* FUSION: + (text_weight + cold_text_weight * (1 - w_b)) * (mean-query text
   * cosine of b), w_b = n_b / (n_b + history_prior) the candidate's history
   * weight (0 for a product never bought in training). With fuse.text_alpha
   * > 0 these two are unused: the scores are af_fuse_adaptive_scores with
   * the query's fuse.text_pool best products by mean-query cosine as pool */
  double text_weight;
  double cold_text_weight;
  int popularity_ties; /* break equal scores by training popularity (default 1) */
  /* EASE */
  af_ease_options ease;
  /* ITEMKNN: k neighbours per item, shrinkage, pair threshold min_count */
  int knn_k;
  double knn_shrink;
  /* LEARNED: category codes per level (-1 unknown) for the category-match
   * features; the validation split's seed; negatives per query and source */
  int n_levels;
  const int32_t *const *category; /* (n_levels) arrays (N) */
  const int32_t *n_codes;         /* (n_levels) codes per level */
  uint64_t learn_seed;
  int learn_pool;
  double learn_l2;
  double learn_cold_weight; /* weight of the pairs of validation queries hiding a cold item (1) */
  int learn_listwise;       /* 1: softmax over the query's pool (listwise) instead of the
                               pairwise logistic loss (0, the default) */
  int learn_cold_slots;     /* ranks 11 - s .. 10 go to the s best never-bought candidates of
                               a second ranker fitted on the cold validation queries (0: off;
                               0..AF_EVAL_MAX_COLD_SLOTS; docs/evaluation.md, "Cold slots") */
  int learn_text_max;       /* 1: the max over the query items of the text cosine is a feature
                               and a pool source (feature text_max; 0 by default: chosen on
                               the validation split, docs/evaluation.md, "Text max") */
  int learn_folds;          /* validation splits carved from the training baskets (seeds
                               learn_seed, learn_seed + 1, ...) whose queries the ranker is
                               fitted on together (AF_EVAL_DEFAULT_LEARN_FOLDS; at most
                               AF_EVAL_MAX_LEARN_FOLDS) */
  /* CUSTOM */
  af_eval_score_fn fn;
  void *ctx;
} af_eval_method;

#define AF_EVAL_MAX_COLD_SLOTS 10
#define AF_EVAL_MAX_LEARN_FOLDS 8
/* The learned ranker's folds (docs/evaluation.md, "Folds": chosen on the validation split). */
#define AF_EVAL_DEFAULT_LEARN_FOLDS 6

/* The item-CF pair threshold of eval, run and associate (docs/evaluation.md:
 * 1 gives warm Recall@20 0.0901, 2 gives 0.1537 on Instacart). */
#define AF_EVAL_DEFAULT_MIN_COUNT 2
/* EASE's lambda grid for the validation-split choice (eval and run). */
#define AF_EVAL_EASE_GRID_N 8
extern const double af_eval_ease_lambda_grid[AF_EVAL_EASE_GRID_N];

/* Defaults: min_count AF_EVAL_DEFAULT_MIN_COUNT, rules 3/3, ease
 * AF_EASE_DEFAULT_OPTIONS, knn 100/10, learned seed 43, pool 50, l2 1e-3, 6 folds. */
void af_eval_method_init(af_eval_method *m, af_eval_kind kind, const char *name);

/* The learned ranker's features of candidate b for query Q (docs/evaluation.md). */
enum {
  AF_EVAL_F_EASE, AF_EVAL_F_ITEMCF, AF_EVAL_F_RULES, AF_EVAL_F_FUSION, AF_EVAL_F_TEXT,
  AF_EVAL_F_TEXT_COLD, AF_EVAL_F_CAT0, AF_EVAL_F_CAT1, AF_EVAL_F_LOG_POP, AF_EVAL_F_HISTORY,
  AF_EVAL_F_EASE_LOGQ, AF_EVAL_F_TEXT_LOGQ, AF_EVAL_F_COLD_MAP, AF_EVAL_F_SELL_PRIOR,
  AF_EVAL_F_CAT_PROFILE, AF_EVAL_F_TEXT_MAX, AF_EVAL_N_FEATURES
};
extern const char *const af_eval_feature_names[AF_EVAL_N_FEATURES];

typedef struct {
  af_eval_metrics group[AF_EVAL_N_GROUPS];
  double seconds; /* fitting + scoring + ranking */
  int64_t modelled, eligible; /* EASE: products modelled, and those with >= min_count baskets */
  double weights[AF_EVAL_N_FEATURES]; /* LEARNED: the ranker's weights (standardised features) */
  int64_t train_pairs;                /* LEARNED: pairs it was fitted on */
  double cold_weights[AF_EVAL_N_FEATURES]; /* LEARNED, learn_cold_slots > 0: the cold ranker's */
  int64_t cold_pairs;                      /* and its pairs (0 when off) */
} af_eval_result;

af_status af_eval_run(const af_eval_method *m, const af_eval_split *sp, int threads,
                      af_eval_result *out, af_error *err);
/* As af_eval_run; ranks (n_queries) or NULL gets each query's rank of its
 * hidden item, in query order. */
af_status af_eval_run_ranks(const af_eval_method *m, const af_eval_split *sp, int threads,
                            af_eval_result *out, int64_t *ranks, af_error *err);

/* Dense codes of category names (N): equal names share a code, 0, 1, ... in
 * order of first appearance; "" or NULL is -1. *n_codes the number used. */
af_status af_eval_category_codes(const char *const *names, int64_t N, int32_t *codes,
                                 int32_t *n_codes, af_error *err);

/* associate with the learned ranker: every product a of the catalog
 * (baskets->n_items) as the one-item query {a}; m a LEARNED method (fitted
 * here: base models on all of baskets, the ranker on a validation split
 * carved from them). related, score (N, k): a's k best candidates of its
 * pool, best first, -1 padded. */
af_status af_eval_learned_complements(const af_eval_method *m, const af_baskets *baskets, int k,
                                      int threads, int32_t *related, float *score,
                                      af_error *err);

/* recommend with the learned ranker: the ranker (fitted as above) scores
 * every product for the one query `items` (n ascending rows); scores (N):
 * the pool's scores, -FLT_MAX outside the pool (and for the query items). */
af_status af_eval_learned_query(const af_eval_method *m, const af_baskets *baskets,
                                const int32_t *items, int n, int threads, float *scores,
                                af_error *err);

/* ---- tuning on a validation split ----------------------------------------------- */
typedef enum {
  AF_EVAL_TUNE_EASE_LAMBDA, /* m->ease.lambda */
  AF_EVAL_TUNE_KNN_SHRINK   /* m->knn_shrink */
} af_eval_tune_param;

/* Runs m on the validation split val once per grid value of param and picks
 * the value with the highest Recall@10 over all of val's queries (ties: the
 * first). score (n_grid) gets each value's Recall@10; *best its index. */
af_status af_eval_tune(const af_eval_method *m, af_eval_tune_param param, const double *grid,
                       int n_grid, const af_eval_split *val, int threads, double *score,
                       int *best, af_error *err);

/* ---- paired bootstrap -------------------------------------------------------------- */
typedef struct {
  int64_t n;           /* queries in the group */
  double diff;         /* mean over the group of [ra <= K] - [rb <= K] */
  double lo, hi;       /* percentile interval (2.5%, 97.5%) of the resampled means */
} af_eval_interval;

/* Paired bootstrap of the Recall@K difference of two methods' ranks over the
 * queries with group[q] == g (group NULL or g < 0: all): n_boot resamples of
 * those queries with replacement, drawn by Philox (seed, stream 4, resample
 * index); the interval's ends are the resampled means at the order
 * statistics floor(0.025 (n_boot - 1)) and ceil(0.975 (n_boot - 1)). */
af_status af_eval_bootstrap(const int64_t *ra, const int64_t *rb, const unsigned char *group,
                            int g, int64_t n_queries, int K, int n_boot, uint64_t seed,
                            af_eval_interval *out, af_error *err);

/* ---- the outputs: eval.json and the per-query ranks (eval_report.c) ----------- */
typedef struct {
  const char *name;
  af_eval_result r;
  const int64_t *ranks;                    /* (n_queries) or NULL */
  af_eval_interval diff[AF_EVAL_N_GROUPS]; /* Recall@10 minus the reference's (with ranks) */
} af_eval_row;

typedef struct {
  const char *method, *param; /* e.g. "ease", "lambda" */
  const double *grid, *score; /* (n) values and their validation Recall@10 */
  int n, best;
} af_eval_tuning;

typedef struct {
  const char *catalog, *baskets, *test_baskets; /* file names; test_baskets NULL: random split */
  int64_t products;
  int validation;                       /* evaluated on the validation split */
  const af_eval_split *split;
  const af_eval_split_options *split_options;
  const af_eval_row *rows;
  int n_rows;
  int reference;                        /* row of the bootstrap reference, -1: none */
  int n_boot;
  uint64_t boot_seed;
  const af_fuse_options *fusion;        /* the fusion rows' options, NULL: no fusion row */
  double text_weight, cold_text_weight; /* fusion's additive text term */
  const af_eval_tuning *tuning;
  int n_tuning;
} af_eval_report;

/* Reference row for the bootstrap: the row with the best Recall@10 over all
 * queries among those with is_baseline[i] != 0 (ties: the first); -1 if none. */
int af_eval_best_row(const af_eval_row *rows, int n, const unsigned char *is_baseline);
/* Fills rows[i].diff for every row with ranks against rows[ref] (paired
 * bootstrap, r->n_boot resamples, seed r->boot_seed). */
af_status af_eval_compare_rows(af_eval_row *rows, int n, int ref, const af_eval_split *sp,
                               int n_boot, uint64_t seed, af_error *err);
/* eval.json (docs/evaluation.md), atomically. */
af_status af_eval_write_json(const char *path, const af_eval_report *r, af_error *err);
/* CSV query,basket,group,hidden_id,<one rank column per row> (rows with
 * ranks), atomically. basket_ids (the split's basket indexing) or NULL: the
 * basket index; ids (N) the catalog ids. */
af_status af_eval_write_ranks(const char *path, const af_eval_report *r,
                              const char *const *basket_ids, const char *const *ids,
                              af_error *err);

#endif /* AF_HIDE_EVAL */

/* ======================== layer report ====================================== */
#ifndef AF_HIDE_REPORT

/* ---------------------------------------------------------------- report/report */
/* The HTML report of a run folder (docs/report.md): one self-contained file
 * (inline CSS and SVG, no network access) with the association network of the
 * top products (laid out by Graphviz), a category x category heatmap of
 * complement associations, the top rules, each top product's complements and
 * substitutes with their evidence, the evaluation table and the run's
 * metadata; plus PNG exports of both figures (rendered by Graphviz).
 *
 * Reads from the run folder: run.json, products.csv and associations.csv
 * (required), rules.csv and eval.json (optional: the report says when they
 * are absent). Every text is HTML-escaped. */

typedef struct {
  int top;               /* products ranked by association strength that anchor the network */
  int max_nodes;         /* network nodes in all (top + their strongest partners) */
  int max_edges;         /* strongest edges kept */
  int table_products;    /* products with a complements/substitutes table */
  int table_rules;       /* rules listed */
  const char *layout;    /* Graphviz engine for the network: "neato" (default), "sfdp", "fdp" */
  const char *network_png; /* NULL: no PNG */
  const char *heatmap_png; /* NULL: no PNG */
} af_report_options;

void af_report_default_options(af_report_options *o);

/* Writes html_path (and the PNGs) atomically. */
af_status af_report_write(const char *run_dir, const char *html_path, const af_report_options *o,
                          af_error *err);

/* ---------------------------------------------------------------- report/recommend */
/* Basket recommendations from a run folder (docs/report.md).
 *
 * For a basket B of product ids, every product c not in B collects evidence:
 *   rule:      the rule X -> {c} of rules.jsonl (one-item consequent) with X a
 *              subset of B and the highest confidence (its confidence, lift, count);
 *   co-purchase: the basket item b with the highest item-CF cosine
 *              count(b,c)/sqrt(n_b n_c) in cooccur.csv (its count, lift);
 *   text:      the basket item b whose title is most similar to c's
 *              (neighbors.h5, cosine >= min_text_cosine).
 * score = rule confidence + co-purchase cosine + text_weight * text cosine
 * (each term 0 when absent). The k best, ties to the lower catalog row. */

typedef struct {
  int k;                  /* recommendations (default 10) */
  double text_weight;     /* default 0.3 */
  double min_text_cosine; /* default 0.5 */
  int learned;            /* 1: rank by the learned ranker (docs/evaluation.md), refitted on
                             the run's baskets, products.csv and embeddings.h5; the reasons
                             stay the evidence above (default 0) */
  int threads;            /* learned: CPU threads (0: all) */
  int cold_slots;         /* learned: the last N of the top 10 are never-bought products
                             (af_eval_method.learn_cold_slots; default 0) */
  int learn_folds;        /* learned: af_eval_method.learn_folds (AF_EVAL_DEFAULT_LEARN_FOLDS) */
} af_recommend_options;

void af_recommend_default_options(af_recommend_options *o);

typedef struct {
  int64_t product; /* row of products.csv */
  double score;
  /* rule evidence (rule_count 0: none) */
  int64_t rule_count;
  double rule_confidence, rule_lift;
  char *rule_antecedent; /* display names joined by " + ", malloc'd, NULL when none */
  /* co-purchase evidence (cop_with -1: none) */
  int64_t cop_with, cop_count;
  double cop_cosine, cop_lift;
  /* text evidence (text_with -1: none) */
  int64_t text_with;
  double text_cosine;
} af_recommendation;

typedef struct {
  af_catalog products;
  int n;
  af_recommendation *recs; /* (n) best first */
} af_recommendations;

/* basket_ids: product ids of the run's products.csv; an unknown id is an
 * error naming it. */
af_status af_recommend(const char *run_dir, const char *const *basket_ids, int n_basket,
                       const af_recommend_options *o, af_recommendations *out, af_error *err);
void af_recommendations_free(af_recommendations *r);

#endif /* AF_HIDE_REPORT */

/* ======================== layer pipeline ==================================== */
#ifndef AF_HIDE_PIPELINE

/* ---------------------------------------------------------------- pipeline/run */
/* The whole pipeline in one call: catalog (+ baskets) -> a run folder
 * (docs/report.md).
 *
 * Stages, each writing its outputs into the run folder DIR:
 *   load      products.csv (the cleaned catalog: product_id,product,category,baskets)
 *   embed     embeddings.h5                       (include/affinity.h)
 *   score     neighbors.h5                        (include/affinity.h)
 *   rules     rules.csv, rules.jsonl              (include/affinity.h)      baskets only
 *   cooccur   cooccur.csv                         (include/affinity.h)    baskets only
 *   itemcf    itemcf.csv                          (include/affinity.h)     baskets only
 *   finetune  finetuned.h5 (with fine_tune_steps)  (include/affinity.h)      baskets only
 *   associate associations.csv                    (include/affinity.h)
 *   eval      eval.json                           (include/affinity.h)       baskets only
 *   report    report.html, network.png, heatmap.png (include/affinity.h)
 * and run.json (metadata, parameters, per-stage timings).
 *
 * Re-running skips a stage when its key is unchanged and its outputs exist.
 * The key of a stage is a 64-bit FNV-1a hash over: the binary version string,
 * the stage name, the stage's parameters (as text) and the bytes of every
 * input file (the user's files and the outputs of earlier stages). Keys are
 * kept in DIR/manifest.json. A stage that reruns changes its outputs, so the
 * keys of the stages after it change and they rerun too. */

typedef void (*af_run_log_fn)(void *ctx, const char *line);

typedef struct {
  const char *out_dir;
  /* catalog */
  const char *catalog;
  const char *id_column;              /* NULL: product_id */
  const char *const *text_columns;    /* NULL: {"product_name"} */
  int n_text_columns;
  const char *category_column;        /* NULL: "department" when the catalog has it, else none;
                                         "" : none */
  /* baskets (NULL: text-only run; basket stages are skipped) */
  const char *baskets;
  af_baskets_options baskets_opt;
  /* model */
  const char *model;
  int fine_tune_steps; /* 0: none */
  const af_device *dev;
  int threads; /* CPU threads for scoring (0: all) */
  /* parameters */
  int max_len;             /* embed: tokens per title, 0 = the model's */
  int score_k;             /* neighbours per product (default 20) */
  double min_support;      /* rules */
  double min_confidence;
  int max_itemset_len;
  int64_t cooccur_min_count; /* pairs kept in cooccur.csv */
  int itemcf_k;
  int64_t itemcf_min_count;
  double substitute_min_cosine; /* fusion: substitutes need this title cosine */
  int assoc_k;                  /* complements and substitutes kept per product */
  int report_top;               /* products in the report's network */
  int force;                    /* rerun every stage */
  const char *binary_version;   /* part of every stage key */
  af_run_log_fn log;            /* may be NULL */
  void *log_ctx;
} af_run_options;

void af_run_default_options(af_run_options *o);

/* Runs the pipeline. On failure the stages already done keep their outputs
 * (and manifest entries), so the next run resumes after them. */
af_status af_run_pipeline(const af_run_options *o, af_error *err);

#endif /* AF_HIDE_PIPELINE */

#ifdef __cplusplus
}
#endif
#endif /* AFFINITY_H */
