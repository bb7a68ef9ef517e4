/* affinity export-hf: a checkpoint as a Hugging Face / sentence-transformers folder. */
#include <stdio.h>

#include "cli.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"model", "CKPT.h5", "checkpoint (imported, trained or a training checkpoint) (required)"},
    {"out", "DIR", "folder to write (created; existing files of the same names replaced) (required)"},
};
static const af_cmd_spec SPEC = {
    "export-hf", "--model CKPT.h5 --out DIR",
    "Writes model.safetensors (float32, Hugging Face BertModel names), config.json, vocab.txt,\n"
    "tokenizer_config.json, special_tokens_map.json and the sentence-transformers files\n"
    "(modules.json, 1_Pooling/config.json, sentence_bert_config.json,\n"
    "config_sentence_transformers.json): SentenceTransformer(DIR) gives the embeddings of\n"
    "`affinity embed --model CKPT.h5`. Optimizer state in a training checkpoint is ignored.",
    FLAGS, sizeof FLAGS / sizeof FLAGS[0]};

int af_cmd_export_hf(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  const char *model_path = NULL, *out = NULL;
  int rc = 0;
  af_model *m = NULL;
  if (af_arg_required(&a, "model", &model_path, &err) != AF_OK ||
      af_arg_required(&a, "out", &out, &err) != AF_OK ||
      af_model_open(model_path, &m, &err) != AF_OK) {
    rc = af_cli_fail(SPEC.cmd, &err);
  } else {
    if (af_export_hf(m, out, &err) != AF_OK)
      rc = af_cli_fail(SPEC.cmd, &err);
    else
      fprintf(stderr, "exported %s (%d tensors, %lld floats) -> %s\n", model_path, af_model_n_tensors(m),
              (long long)af_model_n_floats(m), out);
    af_model_close(m);
  }
  af_args_free(&a);
  return rc;
}
