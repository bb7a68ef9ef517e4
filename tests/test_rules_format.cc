// af_format_g10 (engine/base/out_format.c, the rules CSV writer's number format)
// must write exactly the bytes of printf's "%.10g" -- the reference is the C
// library's own snprintf, on values shaped like rule measures (ratios of
// counts, their products and differences), random doubles over the whole
// exponent range, powers of ten and values next to rounding ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

extern "C" {
#include "affinity.h"
}

namespace {

std::string ref(double x) {
  char b[64];
  snprintf(b, sizeof b, "%.10g", x);
  return b;
}

std::string ours(double x) {
  char b[AF_G10_MAX + 1];
  int n = af_format_g10(b, x);
  return std::string(b, (size_t)n);
}

TEST(FormatG10, RuleMeasures) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; i++) {
    int64_t n = 1 + (int64_t)(rng() % 100000);
    int64_t a = 1 + (int64_t)(rng() % n), c = 1 + (int64_t)(rng() % n);
    int64_t s = 1 + (int64_t)(rng() % std::min(a, c));
    double sa = (double)a / n, sc = (double)c / n, ss = (double)s / n;
    double conf = ss / sa, lift = conf / sc, lev = ss - sa * sc;
    double conv = conf < 1 ? (1 - sc) / (1 - conf) : 2.0;
    for (double x : {ss, conf, lift, lev, conv}) ASSERT_EQ(ours(x), ref(x)) << x;
  }
}

TEST(FormatG10, WholeRangeAndEdges) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 300000; i++) {
    uint64_t bits = rng();
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isnan(x)) continue;
    ASSERT_EQ(ours(x), ref(x)) << bits;
  }
  for (int e = -320; e <= 308; e++) {
    double p = std::pow(10.0, e);
    for (double x : {p, std::nextafter(p, 0.0), std::nextafter(p, INFINITY), -p, 0.5 * p,
                     9.9999999995 * p, 9.99999999949 * p, 1.00000000005 * p, 1.00000000015 * p})
      ASSERT_EQ(ours(x), ref(x)) << x;
  }
  for (double x : {0.0, -0.0, (double)INFINITY, -(double)INFINITY, 1.0, 0.15, 0.1, 1e-5, 12345678905.0,
                   0.00012345678905, 123456789.5, 4.9e-324, 2.2250738585072014e-308})
    ASSERT_EQ(ours(x), ref(x)) << x;
  // Ties at the tenth digit: d + 0.5 ulp-of-digit, exactly representable.
  for (int64_t d = 1000000000; d < 1000000000 + 20000; d++)
    for (int s : {0, 1, 3, 10}) {
      double x = ((double)d + 0.5) / std::pow(2.0, s);
      ASSERT_EQ(ours(x), ref(x)) << x;
    }
}

TEST(FormatI64, MatchesPrintf) {
  for (long long v : {0LL, 1LL, -1LL, 9LL, 10LL, 1234567890123LL, (long long)INT64_MAX, (long long)INT64_MIN}) {
    char b[32], r[32];
    int n = af_format_i64(b, v);
    snprintf(r, sizeof r, "%lld", v);
    EXPECT_EQ(std::string(b, (size_t)n), std::string(r));
  }
}

}  // namespace
