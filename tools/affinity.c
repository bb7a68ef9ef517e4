/* affinity: the command-line entry point. Dispatches to one subcommand. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "affinity.h"

typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} af_command;

static const af_command COMMANDS[] = {
    {"import-hf", af_cmd_import_hf, "import a Hugging Face BERT model folder into an HDF5 checkpoint"},
    {"tokenize", af_cmd_tokenize, "print WordPiece token ids for each line of stdin"},
    {"embed", af_cmd_embed, "embed every row of a catalog with the encoder"},
    {"score", af_cmd_score, "all-pairs top-k neighbours of an embeddings file"},
    {"rules", af_cmd_rules, "frequent itemsets and association rules from baskets"},
    {"cooccur", af_cmd_cooccur, "pair co-occurrence statistics from baskets"},
    {"itemcf", af_cmd_itemcf, "item-CF neighbours from co-occurrence"},
    {"associate", af_cmd_associate, "fuse text and co-purchase evidence into complements and substitutes"},
    {"eval", af_cmd_eval, "evaluate every method on held-out baskets and cold-start products"},
    {"train", af_cmd_train, "fine-tune the encoder on co-purchase pairs (contrastive)"},
    {"export-hf", af_cmd_export_hf, "export a checkpoint as a Hugging Face / sentence-transformers folder"},
    {"run", af_cmd_run, "the whole pipeline: catalog + baskets to a report"},
    {"report", af_cmd_report, "write the HTML report of a run folder"},
    {"recommend", af_cmd_recommend, "recommend products for a basket"},
    {"groups", af_cmd_groups, "product groups from the complement graph"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out) {
  fprintf(out,
          "affinity %s: product association analysis on a transformer encoder\n\n"
          "usage: affinity COMMAND [flags]   (affinity COMMAND --help for its flags)\n\n"
          "commands:\n",
          AF_VERSION_STRING);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(out, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(out, "\n  --help      show this help\n  --version   print the version\n");
}

/* Runtime settings read by OpenBLAS and libgomp when they load, before
 * main(); the only way to change them from inside is to re-run ourselves once
 * with the environment set. A user's own settings are always respected.
 * - OPENBLAS_CORETYPE=Haswell when Debian's OpenBLAS 0.3.21 does not know the
 *   CPU (AMD Zen 5 among them) and fell back to its SSE3 "Prescott" kernels,
 *   20-35x slower than AVX2 ones; Haswell is what this project's machines use
 *   for old OpenBLAS builds.
 * - OMP_WAIT_POLICY=passive: idle OpenMP workers sleep instead of spinning.
 *   Measured on the 2-core dev VM under load: embedding 80k short rows took
 *   27.5 s spinning and 6.1 s passive; spinning only pays on an idle machine,
 *   and a nightly job shares its machine. */
static void set_runtime_defaults(int argc, char **argv) {
  if (getenv("AF_RUNTIME_REEXEC"))
    return; /* never loop */
  /* Only the commands that run OpenMP kernels or BLAS; the others (rules,
   * cooccur, tokenize, ...) would pay a second start for nothing (~16 ms of
   * CPU measured for `rules`). */
  static const char *heavy[] = {"embed", "score", "associate", "eval", "train", "run", "itemcf", "cooccur"};
  int needs = 0;
  for (size_t i = 0; argc > 1 && i < sizeof heavy / sizeof heavy[0]; i++)
    needs |= strcmp(argv[1], heavy[i]) == 0;
  if (!needs)
    return;
  int change = 0;
  if (!getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    change = 1;
  }
  const char *core = openblas_get_corename();
  if (!getenv("OPENBLAS_CORETYPE") && core && strcmp(core, "Prescott") == 0 &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    change = 1;
  }
  if (!change)
    return;
  setenv("AF_RUNTIME_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  /* exec failed: carry on with the defaults the libraries chose */
}

int main(int argc, char **argv) {
  set_runtime_defaults(argc, argv);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("affinity %s\n", AF_VERSION_STRING);
    return 0;
  }
  af_library_init();
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(argv[1], COMMANDS[i].name) == 0)
      return COMMANDS[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "affinity: unknown command '%s' (see affinity --help)\n", argv[1]);
  return 2;
}
