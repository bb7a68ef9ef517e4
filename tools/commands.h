/* Every subcommand of the affinity CLI: one tools/cmd_<name>.c each. */
#ifndef AF_COMMANDS_H
#define AF_COMMANDS_H

int af_cmd_import_hf(int argc, char **argv);
int af_cmd_tokenize(int argc, char **argv);
int af_cmd_embed(int argc, char **argv);
int af_cmd_score(int argc, char **argv);
int af_cmd_rules(int argc, char **argv);
int af_cmd_cooccur(int argc, char **argv);
int af_cmd_itemcf(int argc, char **argv);
int af_cmd_associate(int argc, char **argv);
int af_cmd_eval(int argc, char **argv);
int af_cmd_train(int argc, char **argv);
int af_cmd_export_hf(int argc, char **argv);
int af_cmd_run(int argc, char **argv);
int af_cmd_report(int argc, char **argv);
int af_cmd_recommend(int argc, char **argv);
int af_cmd_groups(int argc, char **argv);

#endif
