/* In-process timing of the rules library calls, for a like-for-like
 * comparison with pyfim's in-process fim.arules (bench/rules_bench.py runs
 * both): the baskets are loaded once (not timed, as pyfim gets Python lists),
 * then `runs` times af_fpgrowth + af_rules_generate are timed (process CPU
 * time per phase; wall and CPU time of both). Prints medians and the rule count on one line:
 *   bench_rules_inproc BASKETS long|lines SUPPORT CONFIDENCE MAX_CONSEQUENT RUNS
 * -> "load_ms=.. fpgrowth_cpu_ms=.. rules_cpu_ms=.. total_ms=.. total_cpu_ms=.. itemsets=.. rules=.." */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "affinity.h"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s BASKETS long|lines SUPPORT CONFIDENCE MAX_CONSEQUENT RUNS\n", argv[0]);
    return 2;
  }
  af_error err = {0};
  af_baskets b = {0};
  af_baskets_options bo = {argv[2], NULL, NULL, ',', 0};
  double t0 = clock_s(CLOCK_MONOTONIC);
  if (af_baskets_load(argv[1], &bo, NULL, &b, NULL, &err) != AF_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  double load_ms = (clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
  double sup = atof(argv[3]);
  af_rules_options ro = {atof(argv[4]), 0, atoi(argv[5]), 0};
  int runs = atoi(argv[6]);
  if (runs < 1 || runs > 1000)
    runs = 5;
  double *tf = malloc(sizeof(double) * (size_t)runs), *tr = malloc(sizeof(double) * (size_t)runs); // (runs)
  double *tt = malloc(sizeof(double) * (size_t)runs), *tc = malloc(sizeof(double) * (size_t)runs); // (runs)
  if (!tf || !tr || !tt || !tc)
    return 1;
  int64_t n_sets = 0, n_rules = 0;
  for (int i = 0; i < runs; i++) {
    af_itemsets fi = {0};
    af_rules rs = {0};
    double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
    if (af_fpgrowth(&b, sup, 0, &fi, &err) != AF_OK) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (af_rules_generate(&fi, &ro, &rs, &err) != AF_OK) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double w2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    tf[i] = (c1 - c0) * 1e3;
    tr[i] = (c2 - c1) * 1e3;
    tt[i] = (w2 - w0) * 1e3;
    tc[i] = (c2 - c0) * 1e3;
    n_sets = fi.n_itemsets;
    n_rules = rs.n_rules;
    af_rules_free(&rs);
    af_itemsets_free(&fi);
  }
  printf("load_ms=%.3f fpgrowth_cpu_ms=%.3f rules_cpu_ms=%.3f total_ms=%.3f total_cpu_ms=%.3f itemsets=%lld "
         "rules=%lld\n",
         load_ms, median(tf, runs), median(tr, runs), median(tt, runs), median(tc, runs),
         (long long)n_sets, (long long)n_rules);
  free(tf);
  free(tr);
  free(tt);
  free(tc);
  af_baskets_free(&b);
  return 0;
}
