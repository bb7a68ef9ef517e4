/* affinity import-hf DIR --out FILE.h5 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const af_flag_spec FLAGS[] = {
    {"out", "FILE.h5", "checkpoint to write (required)"},
    {"name", "NAME", "model name to record (default: DIR)"},
};
static const af_cmd_spec SPEC = {
    "import-hf", "DIR --out FILE.h5 [--name NAME]",
    "Imports a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt,\n"
    "tokenizer_config.json, and the sentence-transformers files when present) into an\n"
    "affinity HDF5 checkpoint (docs/checkpoint-format.md). Pickle files are never read.",
    FLAGS, sizeof FLAGS / sizeof FLAGS[0]};

int af_cmd_import_hf(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  const char *out;
  int rc = 0;
  if (a.n_positional != 1) {
    af_error_set(&err, AF_ERR_ARG, "expected exactly one model folder (see --help)");
    rc = af_cli_fail(SPEC.cmd, &err);
  } else if (af_arg_required(&a, "out", &out, &err) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
  } else {
    af_model *m = NULL;
    if (af_model_open_hf(a.positional[0], &m, &err) != AF_OK) {
      rc = af_cli_fail(SPEC.cmd, &err);
    } else {
      const char *name = af_arg_str(&a, "name");
      if ((name && af_model_set_name(m, name, &err) != AF_OK) ||
          af_model_save(out, m, &err) != AF_OK) {
        rc = af_cli_fail(SPEC.cmd, &err);
      } else {
        const af_model_config *c = af_model_get_config(m);
        fprintf(stderr,
                "imported %s: hidden %d, layers %d, heads %d, intermediate %d, vocab %d, "
                "%s pooling%s, max_seq_len %d, %lld parameters -> %s\n",
                a.positional[0], c->hidden_size, c->num_layers, c->num_heads, c->intermediate_size,
                af_model_vocab_size(m), c->pooling == AF_POOL_CLS ? "CLS" : "mean",
                c->normalize ? " + L2 norm" : "", c->max_seq_len, (long long)af_model_n_floats(m), out);
      }
      af_model_close(m);
    }
  }
  af_args_free(&a);
  return rc;
}
