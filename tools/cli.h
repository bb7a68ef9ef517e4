/* Flag parsing and shared helpers for the affinity CLI. The CLI is thin: each
 * tools/cmd_<name>.c parses its flags with these helpers and calls the library. */
#ifndef AF_CLI_H
#define AF_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "affinity.h"

/* One flag a command accepts. `value` is NULL for a boolean flag, else a
 * placeholder shown in --help ("FILE", "N"). */
typedef struct {
  const char *name; /* without the leading "--" */
  const char *value;
  const char *help;
} af_flag_spec;

typedef struct {
  const char *cmd;     /* "embed" */
  const char *usage;   /* one line after "affinity CMD " */
  const char *summary; /* paragraph printed by --help */
  const af_flag_spec *flags;
  int n_flags;
} af_cmd_spec;

typedef struct {
  const char *name;
  const char *value; /* NULL for booleans */
} af_arg;

typedef struct {
  af_arg *args;
  int n_args;
  const char **positional;
  int n_positional;
  int help;
} af_args;

/* Parses argv (argv[0] is the command name). Accepts "--name value",
 * "--name=value" and boolean "--name". Unknown flags, or a missing value,
 * are errors naming the flag. */
af_status af_args_parse(const af_cmd_spec *spec, int argc, char **argv, af_args *out,
                        af_error *err);
void af_args_free(af_args *a);
/* The start of every command: parses argv, prints help for --help. Returns -1
 * when the command should go on (a is then filled; free it), else the exit
 * code to return (a is then freed). */
int af_cli_start(const af_cmd_spec *spec, int argc, char **argv, af_args *a);
void af_print_help(const af_cmd_spec *spec, FILE *out);
/* The whole of a command whose work is fn: af_cli_start, no positional
 * argument, fn(a, err), then the exit code (af_cli_fail's on an error). */
typedef af_status (*af_cmd_fn)(const af_args *a, af_error *err);
int af_cli_main(const af_cmd_spec *spec, int argc, char **argv, af_cmd_fn fn);

/* Last value given for name, or NULL. */
const char *af_arg_str(const af_args *a, const char *name);
/* All values given for a repeatable flag; returns the count, fills vals (malloc'd). */
int af_arg_all(const af_args *a, const char *name, const char ***vals);
int af_arg_flag(const af_args *a, const char *name);
/* Required string flag. */
af_status af_arg_required(const af_args *a, const char *name, const char **value, af_error *err);
/* Numeric flags with defaults and range checks; errors name the flag. */
af_status af_arg_i64(const af_args *a, const char *name, int64_t def, int64_t lo, int64_t hi,
                     int64_t *value, af_error *err);
af_status af_arg_f64(const af_args *a, const char *name, double def, double lo, double hi,
                     double *value, af_error *err);

/* The device named by --device (cpu, cuda, cuda:N; default cpu) with n_threads
 * CPU threads (0: all cores). */
struct af_device;
af_status af_cli_device(const af_args *a, int n_threads, struct af_device *dev, af_error *err);

/* Prints "affinity CMD: error: MSG" to stderr and returns the exit code (1 or 2). */
int af_cli_fail(const char *cmd, const af_error *err);

/* Progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct {
  const char *label;
  int64_t total;
  int enabled;
  double start;
  double last_draw;
} af_progress;
void af_progress_init(af_progress *p, const char *label, int64_t total);
void af_progress_update(af_progress *p, int64_t done);
void af_progress_done(af_progress *p);
double af_now_seconds(void);

#endif
