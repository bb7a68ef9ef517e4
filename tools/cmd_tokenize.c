/* affinity tokenize --model M.h5 : token ids of each stdin line. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"model", "M.h5", "checkpoint whose vocabulary and options to use (required)"},
    {"max-len", "N", "ids per line incl. [CLS]/[SEP] (default: the model's max_seq_length)"},
};
static const af_cmd_spec SPEC = {
    "tokenize", "--model M.h5 [--max-len N] < lines.txt",
    "Reads UTF-8 lines on stdin and prints, for each, one line of space-separated\n"
    "token ids: [CLS] wordpieces [SEP], truncated at the model's max length.\n"
    "Identical to Hugging Face's BertTokenizerFast with the same vocab and options.",
    FLAGS, sizeof FLAGS / sizeof FLAGS[0]};

int af_cmd_tokenize(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  const char *model_path;
  int64_t max_len = 0;
  af_model *m = NULL;
  af_tokenizer *tok = NULL;
  int rc = 0, have_model = 0;
  if (af_arg_required(&a, "model", &model_path, &err) != AF_OK ||
      af_arg_i64(&a, "max-len", 0, 2, 1 << 20, &max_len, &err) != AF_OK ||
      af_model_open(model_path, &m, &err) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
  } else {
    have_model = 1;
    if (af_model_tokenizer(m, (int)max_len, &tok, &err) != AF_OK)
      rc = af_cli_fail(SPEC.cmd, &err);
  }
  if (tok) {
    int cap = af_tokenizer_options_of(tok)->max_len;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    long long lineno = 0;
    while (ids && (len = getline(&line, &line_cap, stdin)) >= 0) {
      lineno++;
      if (len && line[len - 1] == '\n')
        line[--len] = '\0';
      int n = 0;
      if (af_tokenizer_encode(tok, line, (size_t)len, ids, cap, &n, &err) != AF_OK) {
        af_error_prefix(&err, "stdin line %lld: ", lineno);
        rc = af_cli_fail(SPEC.cmd, &err);
        break;
      }
      for (int i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
      putchar('\n');
    }
    if (!ids) {
      af_error_set(&err, AF_ERR_NOMEM, "out of memory");
      rc = af_cli_fail(SPEC.cmd, &err);
    }
    free(line);
    free(ids);
    if (fflush(stdout) != 0 && rc == 0) {
      af_error_set(&err, AF_ERR_IO, "cannot write to stdout");
      rc = af_cli_fail(SPEC.cmd, &err);
    }
    af_tokenizer_free(tok);
  }
  if (have_model)
    af_model_close(m);
  af_args_free(&a);
  return rc;
}
