/* Weak placeholders for subcommands whose tools/cmd_<name>.c has not landed:
 * a real definition in its own file overrides each. This file is deleted once
 * every command exists. */
#include <stdio.h>

#include "commands.h"

static int pending(const char *name) {
  fprintf(stderr, "affinity %s: not available in this build yet\n", name);
  return 2;
}

#define PENDING(fn, name) \
  __attribute__((weak)) int fn(int argc, char **argv) { (void)argc; (void)argv; return pending(name); }

PENDING(af_cmd_import_hf, "import-hf")
PENDING(af_cmd_tokenize, "tokenize")
PENDING(af_cmd_embed, "embed")
PENDING(af_cmd_score, "score")
PENDING(af_cmd_rules, "rules")
PENDING(af_cmd_cooccur, "cooccur")
PENDING(af_cmd_itemcf, "itemcf")
PENDING(af_cmd_associate, "associate")
PENDING(af_cmd_eval, "eval")
PENDING(af_cmd_train, "train")
PENDING(af_cmd_export_hf, "export-hf")
PENDING(af_cmd_run, "run")
PENDING(af_cmd_report, "report")
PENDING(af_cmd_recommend, "recommend")
PENDING(af_cmd_groups, "groups")
