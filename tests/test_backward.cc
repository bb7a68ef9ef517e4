// Backward ops (kernels/ops_backward.h) against finite differences.
//
// For each op: a float64 reference forward written here from the op's
// definition (not from our kernels), a scalar loss L = sum(out * R) with a
// fixed random R, central differences of L in float64 for every input and
// parameter element, and our float32 backward fed dout = R at the same
// (float-representable) inputs.
//
// Tolerances, and why:
//  - gradients: max |ours - FD| <= 1e-4 * max |FD| (relative in the inf norm;
//    the brief allows 1e-3, we hold a tighter line). FD in float64 with
//    h = 1e-5 has truncation error ~h^2 |L'''| ~ 1e-10 and rounding
//    ~1e-16 |L| / h ~ 1e-10: exact for our purpose. Our backward is float32:
//    each value is a sum of at most ~100 products of O(1) terms, fed float32
//    activations (mean/rstd, softmax probabilities): error ~1e-6 relative
//    (observed <= 6e-7, printed by each test). A wrong term, sign, index or
//    factor gives errors of order 1; a 1% error planted in one term of
//    LayerNorm, GELU or attention backward fails these tests.
//  - forward: |float32 forward - float64 forward| <= 1e-5 * max(1, |ref|):
//    float32 rounding (6e-8) over sums of ~100 terms and erf/exp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "ops.h"
#include "ops_backward.h"
#include "base/philox.h"

namespace {

using Vec = std::vector<double>;
using FVec = std::vector<float>;

const double kGradTol = 1e-4;
const double kFwdTol = 1e-5;

struct Rng {
  std::mt19937 gen;
  explicit Rng(unsigned seed) : gen(seed) {}
  // Values representable in float, so float32 and float64 see the same input.
  Vec uniform(size_t n, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    Vec v(n);
    for (auto &x : v)
      x = (double)(float)d(gen);
    return v;
  }
};

FVec to_f(const Vec &v) { return FVec(v.begin(), v.end()); }

// Central differences of loss() with respect to every element of x.
Vec finite_diff(const std::function<double()> &loss, Vec &x, double h = 1e-5) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    double x0 = x[i];
    x[i] = x0 + h;
    double lp = loss();
    x[i] = x0 - h;
    double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

double dot(const Vec &a, const Vec &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++)
    s += a[i] * b[i];
  return s;
}

void expect_grad_near(const FVec &ours, const Vec &ref, const char *what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double mx = 0, err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    mx = std::max(mx, std::fabs(ref[i]));
    double e = std::fabs((double)ours[i] - ref[i]);
    if (e > err) {
      err = e;
      worst = i;
    }
  }
  ASSERT_GT(mx, 1e-6) << what << ": the reference gradient is zero, the test checks nothing";
  std::printf("  %-18s relative error vs finite differences %.2e\n", what, err / mx);
  EXPECT_LE(err / mx, kGradTol) << what << ": worst element " << worst << " ours " << ours[worst]
                                << " finite differences " << ref[worst];
}

void expect_fwd_near(const FVec &ours, const Vec &ref, const char *what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); i++)
    ASSERT_NEAR((double)ours[i], ref[i], kFwdTol * std::max(1.0, std::fabs(ref[i])))
        << what << " element " << i;
}

std::vector<int32_t> cu_from_lens(const std::vector<int> &lens) {
  std::vector<int32_t> cu{0};
  for (int l : lens)
    cu.push_back(cu.back() + l);
  return cu;
}

af_device cpu() { return af_device_cpu(0); }

// ---- float64 reference forwards, from the definitions in ops.h ----------------

Vec ref_embedding(const Vec &wte, const Vec &wpe, const Vec &wtt, const std::vector<int32_t> &ids,
                  const std::vector<int32_t> &pos, const std::vector<int32_t> &tt, int C) {
  int T = (int)ids.size();
  Vec out((size_t)T * C);
  for (int t = 0; t < T; t++)
    for (int c = 0; c < C; c++)
      out[(size_t)t * C + c] = wte[(size_t)ids[t] * C + c] + wpe[(size_t)pos[t] * C + c] +
                               wtt[(size_t)(tt.empty() ? 0 : tt[t]) * C + c];
  return out;
}

Vec ref_layernorm(const Vec &x, const Vec &w, const Vec &b, int N, int C, double eps) {
  Vec y(x.size());
  for (int i = 0; i < N; i++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++)
      m += x[(size_t)i * C + c];
    m /= C;
    for (int c = 0; c < C; c++)
      v += (x[(size_t)i * C + c] - m) * (x[(size_t)i * C + c] - m);
    v /= C;
    for (int c = 0; c < C; c++)
      y[(size_t)i * C + c] = (x[(size_t)i * C + c] - m) / std::sqrt(v + eps) * w[c] + b[c];
  }
  return y;
}

Vec ref_linear(const Vec &x, const Vec &w, const Vec &b, int N, int IC, int OC) {
  Vec y((size_t)N * OC);
  for (int i = 0; i < N; i++)
    for (int o = 0; o < OC; o++) {
      double s = b.empty() ? 0.0 : b[o];
      for (int k = 0; k < IC; k++)
        s += x[(size_t)i * IC + k] * w[(size_t)o * IC + k];
      y[(size_t)i * OC + o] = s;
    }
  return y;
}

Vec ref_gelu(const Vec &x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); i++)
    y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
  return y;
}

// softmax(q k^T / sqrt(HS)) v per sequence and head; probs in the ops.h layout.
Vec ref_attention(const Vec &qkv, const std::vector<int32_t> &cu, int C, int NH, Vec *probs) {
  int B = (int)cu.size() - 1, HS = C / NH, T = cu[B];
  Vec out((size_t)T * C, 0.0);
  if (probs)
    probs->clear();
  for (int b = 0; b < B; b++) {
    int t0 = cu[b], L = cu[b + 1] - t0;
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < L; i++) {
        Vec s(L);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < L; j++) {
          double d = 0;
          for (int e = 0; e < HS; e++)
            d += qkv[(size_t)(t0 + i) * 3 * C + h * HS + e] *
                 qkv[(size_t)(t0 + j) * 3 * C + C + h * HS + e];
          s[j] = d / std::sqrt((double)HS);
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j < L; j++)
          sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < L; j++) {
          double p = s[j] / sum;
          if (probs)
            probs->push_back(p);
          for (int e = 0; e < HS; e++)
            out[(size_t)(t0 + i) * C + h * HS + e] +=
                p * qkv[(size_t)(t0 + j) * 3 * C + 2 * C + h * HS + e];
        }
      }
  }
  return out;
}

Vec ref_mean_pool(const Vec &x, const std::vector<int32_t> &cu, int C) {
  int B = (int)cu.size() - 1;
  Vec y((size_t)B * C, 0.0);
  for (int b = 0; b < B; b++) {
    int L = cu[b + 1] - cu[b];
    for (int t = cu[b]; t < cu[b + 1]; t++)
      for (int c = 0; c < C; c++)
        y[(size_t)b * C + c] += x[(size_t)t * C + c] / L;
  }
  return y;
}

Vec ref_cls_pool(const Vec &x, const std::vector<int32_t> &cu, int C) {
  int B = (int)cu.size() - 1;
  Vec y((size_t)B * C);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      y[(size_t)b * C + c] = x[(size_t)cu[b] * C + c];
  return y;
}

Vec ref_l2norm(const Vec &x, int N, int C) {
  Vec y(x.size());
  for (int i = 0; i < N; i++) {
    double ss = 0;
    for (int c = 0; c < C; c++)
      ss += x[(size_t)i * C + c] * x[(size_t)i * C + c];
    double n = std::max(std::sqrt(ss), 1e-12);
    for (int c = 0; c < C; c++)
      y[(size_t)i * C + c] = x[(size_t)i * C + c] / n;
  }
  return y;
}

// The documented dropout mask: element i kept iff the 24-bit uniform from word
// i % 4 of Philox block i / 4 is below 1 - p.
std::vector<int> ref_dropout_mask(int64_t n, float p, uint64_t seed, uint64_t stream) {
  std::vector<int> keep(n);
  for (int64_t i = 0; i < n; i++) {
    uint32_t w[4];
    af_philox_block(seed, stream, (uint64_t)(i / 4), w);
    keep[i] = (double)(w[i % 4] >> 8) / 16777216.0 < 1.0 - (double)p;
  }
  return keep;
}

}  // namespace

// ---- the tests -------------------------------------------------------------------

TEST(Backward, Embedding) {
  Rng rng(1);
  const int V = 5, P = 6, TT = 2, C = 70, T = 9;  // C > 64: several column chunks
  std::vector<int32_t> ids{3, 1, 3, 0, 4, 3, 1, 2, 3}, pos{0, 1, 2, 3, 0, 1, 2, 0, 5},
      tt{0, 1, 1, 0, 0, 1, 0, 1, 1};
  for (int with_types = 0; with_types < 2; with_types++) {
    std::vector<int32_t> types = with_types ? tt : std::vector<int32_t>{};
    Vec wte = rng.uniform((size_t)V * C, -1, 1), wpe = rng.uniform((size_t)P * C, -1, 1),
        wtt = rng.uniform((size_t)TT * C, -1, 1), R = rng.uniform((size_t)T * C, -1, 1);
    auto loss = [&] { return dot(ref_embedding(wte, wpe, wtt, ids, pos, types, C), R); };
    Vec gte = finite_diff(loss, wte), gpe = finite_diff(loss, wpe), gtt = finite_diff(loss, wtt);

    af_device dev = cpu();
    FVec fwte = to_f(wte), fwpe = to_f(wpe), fwtt = to_f(wtt), out((size_t)T * C);
    const int32_t *tp = with_types ? types.data() : nullptr;
    EXPECT_EQ(af_op_embedding_forward(&dev, out.data(), ids.data(), pos.data(), tp, fwte.data(),
                                      fwpe.data(), fwtt.data(), T, C, nullptr),
              AF_OK);
    expect_fwd_near(out, ref_embedding(wte, wpe, wtt, ids, pos, types, C), "embedding forward");
    FVec dte(fwte.size(), 0.f), dpe(fwpe.size(), 0.f), dtt(fwtt.size(), 0.f), fR = to_f(R);
    EXPECT_EQ(af_op_embedding_backward(&dev, dte.data(), dpe.data(), dtt.data(), fR.data(),
                                       ids.data(), pos.data(), tp, T, C, nullptr, nullptr, nullptr),
              AF_OK);
    expect_grad_near(dte, gte, "dwte");
    expect_grad_near(dpe, gpe, "dwpe");
    expect_grad_near(dtt, gtt, "dwtt");
  }
}

TEST(Backward, LayerNorm) {
  Rng rng(2);
  const int N = 5, C = 70;
  const float eps = 1e-5f;
  Vec x = rng.uniform((size_t)N * C, 1.0, 3.0);  // a non-zero mean: centring matters
  Vec w = rng.uniform(C, 0.5, 1.5), b = rng.uniform(C, -0.5, 0.5),
      R = rng.uniform((size_t)N * C, -1, 1);
  auto loss = [&] { return dot(ref_layernorm(x, w, b, N, C, eps), R); };
  Vec gx = finite_diff(loss, x), gw = finite_diff(loss, w), gb = finite_diff(loss, b);

  af_device dev = cpu();
  FVec fx = to_f(x), fw = to_f(w), fb = to_f(b), fR = to_f(R), out(fx.size()), mean(N), rstd(N);
  EXPECT_EQ(af_op_layernorm_forward(&dev, out.data(), mean.data(), rstd.data(), fx.data(),
                                    fw.data(), fb.data(), N, C, eps, nullptr),
            AF_OK);
  expect_fwd_near(out, ref_layernorm(x, w, b, N, C, eps), "layernorm forward");
  FVec dx(fx.size(), 0.f), dw(C, 0.f), db(C, 0.f);
  EXPECT_EQ(af_op_layernorm_backward(&dev, dx.data(), dw.data(), db.data(), fR.data(), fx.data(),
                                     fw.data(), mean.data(), rstd.data(), N, C, nullptr),
            AF_OK);
  expect_grad_near(dx, gx, "layernorm dinp");
  expect_grad_near(dw, gw, "layernorm dw");
  expect_grad_near(db, gb, "layernorm db");
}

TEST(Backward, Linear) {
  Rng rng(3);
  const int N = 6, IC = 5, OC = 70;
  Vec x = rng.uniform((size_t)N * IC, -1, 1), w = rng.uniform((size_t)OC * IC, -1, 1),
      b = rng.uniform(OC, -1, 1), R = rng.uniform((size_t)N * OC, -1, 1);
  auto loss = [&] { return dot(ref_linear(x, w, b, N, IC, OC), R); };
  Vec gx = finite_diff(loss, x), gw = finite_diff(loss, w), gb = finite_diff(loss, b);

  af_device dev = cpu();
  FVec fx = to_f(x), fw = to_f(w), fb = to_f(b), fR = to_f(R), out((size_t)N * OC);
  EXPECT_EQ(
      af_op_linear_forward(&dev, out.data(), fx.data(), fw.data(), fb.data(), N, IC, OC, nullptr),
      AF_OK);
  expect_fwd_near(out, ref_linear(x, w, b, N, IC, OC), "linear forward");
  FVec dx(fx.size(), 0.f), dw(fw.size(), 0.f), db(OC, 0.f);
  EXPECT_EQ(af_op_linear_backward(&dev, dx.data(), dw.data(), db.data(), fR.data(), fx.data(),
                                  fw.data(), N, IC, OC, nullptr),
            AF_OK);
  expect_grad_near(dx, gx, "linear dinp");
  expect_grad_near(dw, gw, "linear dw");
  expect_grad_near(db, gb, "linear dbias");
  // NULL gradients are skipped; the others are unchanged by the skip.
  FVec dw2(fw.size(), 0.f);
  EXPECT_EQ(af_op_linear_backward(&dev, nullptr, dw2.data(), nullptr, fR.data(), fx.data(),
                                  fw.data(), N, IC, OC, nullptr),
            AF_OK);
  EXPECT_EQ(dw2, dw);
}

TEST(Backward, Gelu) {
  Rng rng(4);
  Vec x = rng.uniform(64, -4, 4), R = rng.uniform(64, -1, 1);
  auto loss = [&] { return dot(ref_gelu(x), R); };
  Vec gx = finite_diff(loss, x);
  af_device dev = cpu();
  FVec fx = to_f(x), fR = to_f(R), out(fx.size()), dx(fx.size(), 0.f);
  EXPECT_EQ(af_op_gelu_forward(&dev, out.data(), fx.data(), (int64_t)fx.size(), nullptr), AF_OK);
  expect_fwd_near(out, ref_gelu(x), "gelu forward");
  EXPECT_EQ(af_op_gelu_backward(&dev, dx.data(), fR.data(), fx.data(), (int64_t)fx.size(), nullptr),
            AF_OK);
  expect_grad_near(dx, gx, "gelu dinp");
}

TEST(Backward, ResidualAdd) {
  Rng rng(5);
  Vec a = rng.uniform(40, -1, 1), b = rng.uniform(40, -1, 1), R = rng.uniform(40, -1, 1);
  auto loss = [&] {
    Vec s(a.size());
    for (size_t i = 0; i < a.size(); i++)
      s[i] = a[i] + b[i];
    return dot(s, R);
  };
  Vec ga = finite_diff(loss, a), gb = finite_diff(loss, b);
  af_device dev = cpu();
  FVec fR = to_f(R), da(40, 0.f), db(40, 0.f);
  EXPECT_EQ(af_op_add_backward(&dev, da.data(), db.data(), fR.data(), 40, nullptr), AF_OK);
  expect_grad_near(da, ga, "add da");
  expect_grad_near(db, gb, "add db");
}

TEST(Backward, AttentionPackedSequences) {
  Rng rng(6);
  const int NH = 2, HS = 4, C = NH * HS;
  std::vector<int32_t> cu = cu_from_lens({1, 2, 7});  // packed: lengths 1, 2 and 7
  const int B = 3, T = cu[B];
  Vec qkv = rng.uniform((size_t)T * 3 * C, -1.5, 1.5), R = rng.uniform((size_t)T * C, -1, 1);
  auto loss = [&] { return dot(ref_attention(qkv, cu, C, NH, nullptr), R); };
  Vec gqkv = finite_diff(loss, qkv);

  af_device dev = cpu();
  int64_t np = af_attention_probs_size(cu.data(), B, NH);
  ASSERT_EQ(np, (int64_t)NH * (1 + 4 + 49));
  FVec fqkv = to_f(qkv), fR = to_f(R), out((size_t)T * C), probs(np);
  EXPECT_EQ(af_op_attention_forward(&dev, out.data(), probs.data(), fqkv.data(), cu.data(), B, C,
                                    NH, nullptr),
            AF_OK);
  Vec ref_probs;
  expect_fwd_near(out, ref_attention(qkv, cu, C, NH, &ref_probs), "attention forward");
  expect_fwd_near(probs, ref_probs, "attention probs");
  FVec dqkv(fqkv.size(), 0.f);
  EXPECT_EQ(af_op_attention_backward(&dev, dqkv.data(), fR.data(), fqkv.data(), probs.data(),
                                     cu.data(), B, C, NH, nullptr, nullptr),
            AF_OK);
  expect_grad_near(dqkv, gqkv, "attention dqkv");
  // Tokens attend within their own sequence only: the gradient of the single
  // token of sequence 0 w.r.t. its own q and k is exactly zero (softmax over one).
  for (int e = 0; e < 2 * C; e++)
    EXPECT_EQ(dqkv[e], 0.0f) << e;
}

TEST(Backward, MeanAndClsPooling) {
  Rng rng(7);
  const int C = 6;
  std::vector<int32_t> cu = cu_from_lens({1, 2, 7});
  const int B = 3, T = cu[B];
  Vec x = rng.uniform((size_t)T * C, -1, 1), R = rng.uniform((size_t)B * C, -1, 1);
  af_device dev = cpu();
  FVec fx = to_f(x), fR = to_f(R), out((size_t)B * C);
  {
    auto loss = [&] { return dot(ref_mean_pool(x, cu, C), R); };
    Vec gx = finite_diff(loss, x);
    EXPECT_EQ(af_op_mean_pool_forward(&dev, out.data(), fx.data(), cu.data(), B, C, nullptr),
              AF_OK);
    expect_fwd_near(out, ref_mean_pool(x, cu, C), "mean pool forward");
    FVec dx(fx.size(), 0.f);
    EXPECT_EQ(af_op_mean_pool_backward(&dev, dx.data(), fR.data(), cu.data(), B, C, nullptr),
              AF_OK);
    expect_grad_near(dx, gx, "mean pool dinp");
  }
  {
    auto loss = [&] { return dot(ref_cls_pool(x, cu, C), R); };
    Vec gx = finite_diff(loss, x);
    EXPECT_EQ(af_op_cls_pool_forward(&dev, out.data(), fx.data(), cu.data(), B, C, nullptr), AF_OK);
    expect_fwd_near(out, ref_cls_pool(x, cu, C), "cls pool forward");
    FVec dx(fx.size(), 0.f);
    EXPECT_EQ(af_op_cls_pool_backward(&dev, dx.data(), fR.data(), cu.data(), B, C, nullptr), AF_OK);
    expect_grad_near(dx, gx, "cls pool dinp");
  }
}

TEST(Backward, L2Norm) {
  Rng rng(8);
  const int N = 4, C = 6;
  Vec x = rng.uniform((size_t)N * C, -2, 2), R = rng.uniform((size_t)N * C, -1, 1);
  auto loss = [&] { return dot(ref_l2norm(x, N, C), R); };
  Vec gx = finite_diff(loss, x);
  af_device dev = cpu();
  FVec fx = to_f(x), fR = to_f(R), out(fx.size()), norms(N), dx(fx.size(), 0.f);
  EXPECT_EQ(af_op_l2norm_forward(&dev, out.data(), norms.data(), fx.data(), N, C, nullptr), AF_OK);
  expect_fwd_near(out, ref_l2norm(x, N, C), "l2norm forward");
  EXPECT_EQ(
      af_op_l2norm_backward(&dev, dx.data(), fR.data(), out.data(), norms.data(), N, C, nullptr),
      AF_OK);
  expect_grad_near(dx, gx, "l2norm dinp");
}

TEST(Backward, L2NormClampedRowIsLinear) {
  // A row whose norm is below the 1e-12 clamp: forward is y = x / 1e-12, a
  // linear map, so its derivative is 1e12 (FD cannot probe a 1e-14 region).
  const int C = 3;
  FVec x{1e-14f, -2e-14f, 0.f}, out(C), norms(1), dy{0.5f, -1.f, 2.f}, dx(C, 0.f);
  af_device dev = cpu();
  EXPECT_EQ(af_op_l2norm_forward(&dev, out.data(), norms.data(), x.data(), 1, C, nullptr), AF_OK);
  EXPECT_EQ(
      af_op_l2norm_backward(&dev, dx.data(), dy.data(), out.data(), norms.data(), 1, C, nullptr),
      AF_OK);
  for (int c = 0; c < C; c++)
    EXPECT_NEAR(dx[c], dy[c] * 1e12, 1e-6 * 1e12 * std::fabs(dy[c]));
}

TEST(Backward, Dropout) {
  Rng rng(9);
  const int64_t n = 1001;  // not a multiple of 4
  const float p = 0.1f;
  const uint64_t seed = 1234, stream = 77;
  std::vector<int> keep = ref_dropout_mask(n, p, seed, stream);
  Vec x = rng.uniform(n, -1, 1), R = rng.uniform(n, -1, 1);
  auto fwd = [&] {
    Vec y(n);
    for (int64_t i = 0; i < n; i++)
      y[i] = keep[i] ? x[i] / (1.0 - (double)p) : 0.0;
    return y;
  };
  auto loss = [&] { return dot(fwd(), R); };
  Vec gx = finite_diff(loss, x);
  af_device dev = cpu();
  FVec fx = to_f(x), fR = to_f(R), out(n), dx(n, 0.f);
  EXPECT_EQ(af_op_dropout_forward(&dev, out.data(), fx.data(), n, p, seed, stream, nullptr), AF_OK);
  expect_fwd_near(out, fwd(), "dropout forward");
  EXPECT_EQ(af_op_dropout_backward(&dev, dx.data(), fR.data(), n, p, seed, stream, nullptr), AF_OK);
  expect_grad_near(dx, gx, "dropout dinp");
  for (int64_t i = 0; i < n; i++)  // dropped elements get exactly zero gradient
    if (!keep[i]) {
      ASSERT_EQ(dx[i], 0.0f) << i;
    }
  // In place, and p = 0 is the identity.
  FVec y = fx;
  EXPECT_EQ(af_op_dropout_forward(&dev, y.data(), y.data(), n, p, seed, stream, nullptr), AF_OK);
  EXPECT_EQ(y, out);
  EXPECT_EQ(af_op_dropout_forward(&dev, y.data(), fx.data(), n, 0.0f, seed, stream, nullptr),
            AF_OK);
  EXPECT_EQ(y, fx);
}

TEST(Backward, DropoutKeepRateAndStreams) {
  // The kept fraction of 2e5 draws is 0.9 within 5 standard errors (6.7e-4 each).
  const int64_t n = 200000;
  FVec ones(n, 1.0f), a(n), b(n);
  af_device dev = cpu();
  EXPECT_EQ(af_op_dropout_forward(&dev, a.data(), ones.data(), n, 0.1f, 5, 0, nullptr), AF_OK);
  EXPECT_EQ(af_op_dropout_forward(&dev, b.data(), ones.data(), n, 0.1f, 5, 1, nullptr), AF_OK);
  int64_t kept = 0, both = 0;
  for (int64_t i = 0; i < n; i++) {
    kept += a[i] != 0.f;
    both += a[i] != 0.f && b[i] != 0.f;
    if (a[i] != 0.f) {
      ASSERT_EQ(a[i], 1.0f / 0.9f);
    }
  }
  EXPECT_NEAR((double)kept / n, 0.9, 5 * 6.7e-4);
  // Independent streams: P(kept in both) = 0.81.
  EXPECT_NEAR((double)both / n, 0.81, 5 * 8.8e-4);
}

// Two calls into the same buffers give twice one call. Not bit-exact: the
// second call adds its terms one by one onto the first call's sums, which
// rounds differently; 1e-5 of the largest gradient is ~100 float ulps, while
// an op that overwrote instead of adding would be off by 100%.
void expect_doubled(const FVec &once, const FVec &twice, const char *what) {
  double mx = 0;
  for (float v : once)
    mx = std::max(mx, (double)std::fabs(v));
  ASSERT_GT(mx, 0.0) << what;
  for (size_t i = 0; i < once.size(); i++)
    ASSERT_NEAR(twice[i], 2.0 * once[i], 1e-5 * mx) << what << " element " << i;
}

TEST(Backward, GradientsAccumulate) {
  Rng rng(10);
  const int NH = 2, C = 8;
  std::vector<int32_t> cu = cu_from_lens({3, 5});
  const int B = 2, T = cu[B];
  FVec qkv = to_f(rng.uniform((size_t)T * 3 * C, -1, 1)), dout = to_f(rng.uniform((size_t)T * C, -1, 1));
  af_device dev = cpu();
  FVec out((size_t)T * C), probs(af_attention_probs_size(cu.data(), B, NH));
  EXPECT_EQ(af_op_attention_forward(&dev, out.data(), probs.data(), qkv.data(), cu.data(), B, C, NH,
                                    nullptr),
            AF_OK);
  FVec once(qkv.size(), 0.f), twice(qkv.size(), 0.f);
  EXPECT_EQ(af_op_attention_backward(&dev, once.data(), dout.data(), qkv.data(), probs.data(),
                                     cu.data(), B, C, NH, nullptr, nullptr),
            AF_OK);
  for (int r = 0; r < 2; r++)
    EXPECT_EQ(af_op_attention_backward(&dev, twice.data(), dout.data(), qkv.data(), probs.data(),
                                       cu.data(), B, C, NH, nullptr, nullptr),
              AF_OK);
  expect_doubled(once, twice, "attention dqkv");

  FVec x = to_f(rng.uniform((size_t)T * C, -1, 1)), w = to_f(rng.uniform((size_t)C * C, -1, 1));
  FVec dx1(x.size(), 0.f), dw1(w.size(), 0.f), db1(C, 0.f), dx2(x.size(), 0.f),
      dw2(w.size(), 0.f), db2(C, 0.f);
  EXPECT_EQ(af_op_linear_backward(&dev, dx1.data(), dw1.data(), db1.data(), dout.data(), x.data(),
                                  w.data(), T, C, C, nullptr),
            AF_OK);
  for (int r = 0; r < 2; r++)
    EXPECT_EQ(af_op_linear_backward(&dev, dx2.data(), dw2.data(), db2.data(), dout.data(), x.data(),
                                    w.data(), T, C, C, nullptr),
              AF_OK);
  expect_doubled(dx1, dx2, "linear dinp");
  expect_doubled(dw1, dw2, "linear dw");
  expect_doubled(db1, db2, "linear dbias");
}

TEST(Backward, EmbeddingIsDeterministicAcrossThreadCounts) {
  // Many repeated ids: with racy scatter-adds the sums would vary run to run.
  Rng rng(11);
  const int V = 3, P = 4, C = 300, T = 2000;
  std::vector<int32_t> ids(T), pos(T);
  for (int t = 0; t < T; t++) {
    ids[t] = t % V;
    pos[t] = (t * 7) % P;
  }
  FVec dout = to_f(rng.uniform((size_t)T * C, -1, 1));
  FVec a((size_t)V * C, 0.f), b((size_t)V * C, 0.f), pa((size_t)P * C, 0.f),
      pb((size_t)P * C, 0.f), ta(C, 0.f), tb(C, 0.f);
  af_device one = af_device_cpu(1);
  EXPECT_EQ(af_op_embedding_backward(&one, a.data(), pa.data(), ta.data(), dout.data(), ids.data(),
                                     pos.data(), nullptr, T, C, nullptr, nullptr, nullptr),
            AF_OK);
  af_device two = af_device_cpu(2);
  EXPECT_EQ(af_op_embedding_backward(&two, b.data(), pb.data(), tb.data(), dout.data(), ids.data(),
                                     pos.data(), nullptr, T, C, nullptr, nullptr, nullptr),
            AF_OK);
  EXPECT_EQ(a, b);
  EXPECT_EQ(pa, pb);
  EXPECT_EQ(ta, tb);
  af_device_cpu(0);
}
