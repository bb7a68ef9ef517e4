/* A method's parameter chosen on a validation split (see eval.h). */
#include "affinity.h"

static void set_param(af_eval_method *m, af_eval_tune_param p, double v) {
  if (p == AF_EVAL_TUNE_EASE_LAMBDA)
    m->ease.lambda = v;
  else
    m->knn_shrink = v;
}

af_status af_eval_tune(const af_eval_method *m, af_eval_tune_param param, const double *grid,
                       int n_grid, const af_eval_split *val, int threads, double *score,
                       int *best, af_error *err) {
  if (n_grid < 1)
    return af_error_set(err, AF_ERR_ARG, "%s: empty tuning grid", m->name);
  *best = 0;
  for (int i = 0; i < n_grid; i++) {
    af_eval_method t = *m;
    set_param(&t, param, grid[i]);
    af_eval_result r;
    AF_TRY(af_eval_run(&t, val, threads, &r, err));
    int64_t n = 0;
    double hits = 0;
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      n += r.group[g].n;
      hits += r.group[g].recall[0] * (double)r.group[g].n;
    }
    score[i] = n ? hits / (double)n : 0.0;
    if (score[i] > score[*best])
      *best = i;
  }
  return AF_OK;
}
