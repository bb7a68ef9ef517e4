/* Flag parsing, help text, error printing and progress bar for the CLI. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include "affinity.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const af_flag_spec *find_flag(const af_cmd_spec *spec, const char *name, size_t len) {
  for (int i = 0; i < spec->n_flags; i++)
    if (strlen(spec->flags[i].name) == len && strncmp(spec->flags[i].name, name, len) == 0)
      return &spec->flags[i];
  return NULL;
}

af_status af_args_parse(const af_cmd_spec *spec, int argc, char **argv, af_args *out,
                        af_error *err) {
  memset(out, 0, sizeof *out);
  out->args = af_calloc((size_t)argc + 1, sizeof *out->args, err);
  out->positional = af_calloc((size_t)argc + 1, sizeof *out->positional, err);
  if (!out->args || !out->positional) {
    af_args_free(out);
    return AF_ERR_NOMEM;
  }
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      out->help = 1;
      continue;
    }
    if (strncmp(s, "--", 2) != 0 || s[2] == '\0') {
      out->positional[out->n_positional++] = s;
      continue;
    }
    const char *name = s + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const af_flag_spec *f = find_flag(spec, name, len);
    if (!f) {
      af_args_free(out);
      return af_error_set(err, AF_ERR_ARG, "unknown flag --%.*s (see affinity %s --help)",
                          (int)len, name, spec->cmd);
    }
    af_arg *a = &out->args[out->n_args++];
    a->name = f->name;
    if (!f->value) {
      if (eq) {
        af_args_free(out);
        return af_error_set(err, AF_ERR_ARG, "flag --%s takes no value", f->name);
      }
      a->value = NULL;
    } else if (eq) {
      a->value = eq + 1;
    } else {
      if (i + 1 >= argc) {
        af_args_free(out);
        return af_error_set(err, AF_ERR_ARG, "flag --%s needs a value (%s)", f->name, f->value);
      }
      a->value = argv[++i];
    }
  }
  return AF_OK;
}

int af_cli_start(const af_cmd_spec *spec, int argc, char **argv, af_args *a) {
  af_error err = {0};
  if (af_args_parse(spec, argc, argv, a, &err) != AF_OK)
    return af_cli_fail(spec->cmd, &err);
  if (a->help) {
    af_print_help(spec, stdout);
    af_args_free(a);
    return 0;
  }
  return -1;
}

void af_args_free(af_args *a) {
  free(a->args);
  free(a->positional);
  memset(a, 0, sizeof *a);
}

void af_print_help(const af_cmd_spec *spec, FILE *out) {
  fprintf(out, "usage: affinity %s %s\n\n%s\n", spec->cmd, spec->usage, spec->summary);
  if (spec->n_flags)
    fprintf(out, "\nflags:\n");
  for (int i = 0; i < spec->n_flags; i++) {
    char left[96];
    snprintf(left, sizeof left, "--%s%s%s", spec->flags[i].name, spec->flags[i].value ? " " : "",
             spec->flags[i].value ? spec->flags[i].value : "");
    fprintf(out, "  %-30s %s\n", left, spec->flags[i].help);
  }
  fprintf(out, "  %-30s %s\n", "--help", "show this help");
}

const char *af_arg_str(const af_args *a, const char *name) {
  const char *v = NULL;
  for (int i = 0; i < a->n_args; i++)
    if (strcmp(a->args[i].name, name) == 0)
      v = a->args[i].value;
  return v;
}

int af_arg_all(const af_args *a, const char *name, const char ***vals) {
  int n = 0;
  *vals = malloc(sizeof(char *) * ((size_t)a->n_args + 1));
  if (!*vals)
    return 0;
  for (int i = 0; i < a->n_args; i++)
    if (strcmp(a->args[i].name, name) == 0)
      (*vals)[n++] = a->args[i].value;
  return n;
}

int af_arg_flag(const af_args *a, const char *name) {
  for (int i = 0; i < a->n_args; i++)
    if (strcmp(a->args[i].name, name) == 0)
      return 1;
  return 0;
}

af_status af_arg_required(const af_args *a, const char *name, const char **value, af_error *err) {
  *value = af_arg_str(a, name);
  if (!*value || !**value)
    return af_error_set(err, AF_ERR_ARG, "missing required flag --%s", name);
  return AF_OK;
}

af_status af_arg_i64(const af_args *a, const char *name, int64_t def, int64_t lo, int64_t hi,
                     int64_t *value, af_error *err) {
  const char *s = af_arg_str(a, name);
  if (!s) {
    *value = def;
    return AF_OK;
  }
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0')
    return af_error_set(err, AF_ERR_ARG, "--%s: '%s' is not an integer", name, s);
  if (v < lo || v > hi)
    return af_error_set(err, AF_ERR_ARG, "--%s: %lld is out of range [%lld, %lld]", name, v,
                        (long long)lo, (long long)hi);
  *value = v;
  return AF_OK;
}

af_status af_arg_f64(const af_args *a, const char *name, double def, double lo, double hi,
                     double *value, af_error *err) {
  const char *s = af_arg_str(a, name);
  if (!s) {
    *value = def;
    return AF_OK;
  }
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !isfinite(v))
    return af_error_set(err, AF_ERR_ARG, "--%s: '%s' is not a number", name, s);
  if (v < lo || v > hi)
    return af_error_set(err, AF_ERR_ARG, "--%s: %g is out of range [%g, %g]", name, v, lo, hi);
  *value = v;
  return AF_OK;
}

int af_cli_fail(const char *cmd, const af_error *err) {
  fprintf(stderr, "affinity %s: error: %s\n", cmd, err->msg[0] ? err->msg : af_status_name(err->code));
  return err->code == AF_ERR_ARG ? 2 : 1;
}

double af_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void af_progress_init(af_progress *p, const char *label, int64_t total) {
  p->label = label;
  p->total = total;
  p->enabled = isatty(STDERR_FILENO);
  p->start = af_now_seconds();
  p->last_draw = 0;
}

void af_progress_update(af_progress *p, int64_t done) {
  if (!p->enabled)
    return;
  double now = af_now_seconds();
  if (now - p->last_draw < 0.1 && done < p->total)
    return;
  p->last_draw = now;
  double frac = p->total > 0 ? (double)done / (double)p->total : 1.0;
  int width = 30, fill = (int)(frac * width + 0.5);
  double rate = done / (now - p->start + 1e-9);
  fprintf(stderr, "\r%s [", p->label);
  for (int i = 0; i < width; i++)
    fputc(i < fill ? '#' : '.', stderr);
  fprintf(stderr, "] %lld/%lld  %.0f/s ", (long long)done, (long long)p->total, rate);
  fflush(stderr);
}

void af_progress_done(af_progress *p) {
  if (!p->enabled)
    return;
  af_progress_update(p, p->total);
  fputc('\n', stderr);
}

af_status af_cli_device(const af_args *a, int n_threads, af_device *dev, af_error *err) {
  const char *d = af_arg_str(a, "device");
  if (!d || strcmp(d, "cpu") == 0) {
    *dev = af_device_cpu(n_threads);
    return AF_OK;
  }
  if (strncmp(d, "cuda", 4) == 0) {
    int ordinal = 0;
    if (d[4] == ':')
      ordinal = atoi(d + 5);
    else if (d[4] != '\0')
      return af_error_set(err, AF_ERR_ARG, "--device: '%s' is not cpu, cuda or cuda:N", d);
    return af_device_cuda(ordinal, dev, err);
  }
  return af_error_set(err, AF_ERR_ARG, "--device: '%s' is not cpu, cuda or cuda:N", d);
}

int af_cli_main(const af_cmd_spec *spec, int argc, char **argv, af_cmd_fn fn) {
  af_args a;
  int rc = af_cli_start(spec, argc, argv, &a);
  if (rc >= 0)
    return rc;
  af_error err = {0};
  af_status st = a.n_positional ? af_error_set(&err, AF_ERR_ARG, "unexpected argument '%s'",
                                               a.positional[0])
                                : fn(&a, &err);
  af_args_free(&a);
  return st == AF_OK ? 0 : af_cli_fail(spec->cmd, &err);
}
