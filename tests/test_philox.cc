// Philox4x32-10 against the known-answer vectors published with Random123
// (DEShawResearch/random123, tests/kat_vectors, the three "philox4x32 10"
// lines: counter[4] key[2] -> output[4]). Exact equality: it is integer math.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "base/philox.h"

TEST(Philox, Random123KnownAnswers) {
  struct Kat {
    uint32_t ctr[4], key[2], want[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat &k : kats) {
    uint32_t out[4];
    af_philox4x32_10(k.ctr, k.key, out);
    for (int i = 0; i < 4; i++)
      EXPECT_EQ(out[i], k.want[i]) << "word " << i;
  }
}

TEST(Philox, BlockLayoutMatchesCounterAndKey) {
  // af_philox_block packs (block, stream) into the counter and seed into the key.
  uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull,
           block = 0x85a308d3243f6a88ull;
  uint32_t out[4];
  af_philox_block(seed, stream, block, out);
  EXPECT_EQ(out[0], 0xd16cfe09u);
  EXPECT_EQ(out[1], 0x94fdccebu);
  EXPECT_EQ(out[2], 0x5001e420u);
  EXPECT_EQ(out[3], 0x24126ea1u);
}

TEST(Philox, FillUniformIsTheBlockStreamAndLooksUniform) {
  const int64_t n = 100003;  // not a multiple of 4: the tail block is partial
  std::vector<float> u(n);
  af_philox_fill_uniform(u.data(), n, 42, 7);
  double sum = 0, sumsq = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t w[4];
    af_philox_block(42, 7, (uint64_t)(i / 4), w);
    ASSERT_EQ(u[i], af_philox_uniform(w[i % 4])) << i;
    ASSERT_GE(u[i], 0.0f);
    ASSERT_LT(u[i], 1.0f);
    sum += u[i];
    sumsq += (double)u[i] * u[i];
  }
  // Mean 1/2 and variance 1/12; the standard error of the mean is
  // sqrt(1/12/n) ~ 9e-4, so 5e-3 is > 5 sigma.
  double mean = sum / n, var = sumsq / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 5e-3);
  EXPECT_NEAR(var, 1.0 / 12.0, 5e-3);
  // A different stream gives different numbers.
  std::vector<float> u2(16);
  af_philox_fill_uniform(u2.data(), 16, 42, 8);
  int same = 0;
  for (int i = 0; i < 16; i++)
    same += u2[i] == u[i];
  EXPECT_LT(same, 2);
}
