// Each CUDA backward op (kernels/cuda/*_backward.cu) and the fused AdamW
// (kernels/cuda/adamw.cu) against its CPU twin, which is itself checked
// against PyTorch and finite differences (test_backward, test_train,
// test_adamw); and a one-rank NCCL smoke test of af_comm. Label: gpu.
//
// Tolerances:
//  - bitwise where the kernel does the CPU's operations in the CPU's order:
//    dropout (same Philox words, rounded multiply then add), embedding
//    backward (token buckets summed in token order), AdamW in fp32
//    (explicitly rounded intrinsics, no FMA), the gradient sum of squares
//    (double, the CPU's chunking), the residual add;
//  - ||gpu - cpu|| / ||cpu|| <= 1e-5 for the reductions whose order differs
//    (warp trees, cuBLAS blocking, two-stage column sums): fp32 rounding of
//    sums of up to a few thousand terms is ~1e-6 relative (as test_cuda_ops);
//    a wrong index or a missing term is 1e-2 or worse;
//  - determinism: the same call twice gives the same bits.
// Initial gradients are random (not zero), so an op that overwrites instead
// of accumulating fails. Without a GPU every test skips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "affinity.h"
#include "ops.h"
#include "ops_backward.h"
#ifdef AF_HAVE_CUDA
#include "cuda/cuda_ops_backward.h"
#endif
}
#include "cuda_fixture.h"

namespace {

double rel_err(const std::vector<float> &a, const std::vector<float> &b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return den == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num / den);
}

#define EXPECT_CLOSE(out, ref, what)                                         \
  do {                                                                       \
    ASSERT_EQ((out).size(), (ref).size());                                   \
    double e_ = rel_err((out), (ref));                                       \
    EXPECT_LE(e_, 1e-5) << what << ": relative error " << e_;               \
  } while (0)
#define EXPECT_BITS(out, ref, what)                                                      \
  do {                                                                                   \
    ASSERT_EQ((out).size(), (ref).size());                                               \
    EXPECT_EQ(std::memcmp((out).data(), (ref).data(), (out).size() * sizeof((out)[0])), 0) \
        << what << ": not bit-equal to the CPU";                                         \
  } while (0)

std::vector<float> randu(std::mt19937 &g, size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = u(g);
  return v;
}

std::vector<int32_t> cu_of(const std::vector<int> &lens) {
  std::vector<int32_t> cu(lens.size() + 1, 0);
  for (size_t i = 0; i < lens.size(); i++) cu[i + 1] = cu[i] + lens[i];
  return cu;
}

class CudaBackward : public CudaFixture {
 protected:
  std::mt19937 g{2024};
};

TEST_F(CudaBackward, DropoutIsBitEqual) {
  for (int64_t n : {1, 7, 1001, 300000}) {
    auto x = randu(g, n), d0 = randu(g, n), dy = randu(g, n);
    std::vector<float> ref(n), dref = d0;
    af_cpu_dropout_forward(ref.data(), x.data(), n, 0.1f, 42, 7);
    af_cpu_dropout_backward(dref.data(), dy.data(), n, 0.1f, 42, 7);
    float *out = up(std::vector<float>(n, NAN)), *dx = up(d0);
    ASSERT_EQ(af_op_dropout_forward(&dev, out, up(x), n, 0.1f, 42, 7, &err), AF_OK) << err.msg;
    ASSERT_EQ(af_op_dropout_backward(&dev, dx, up(dy), n, 0.1f, 42, 7, &err), AF_OK) << err.msg;
    EXPECT_BITS(down(out, n), ref, "dropout forward n=" + std::to_string(n));
    EXPECT_BITS(down(dx, n), dref, "dropout backward n=" + std::to_string(n));
  }
}

TEST_F(CudaBackward, EmbeddingIsBitEqual) {
  const int T = 5000, C = 384, V = 300, P = 64;
  std::uniform_int_distribution<int> uid(0, V - 1), upos(0, P - 1);
  std::vector<int32_t> ids(T), pos(T);
  for (int t = 0; t < T; t++) ids[t] = uid(g), pos[t] = upos(g);
  auto dy = randu(g, (size_t)T * C);
  auto wte = randu(g, (size_t)V * C), wpe = randu(g, (size_t)P * C), wtt = randu(g, 2 * C);
  auto rte = wte, rpe = wpe, rtt = wtt;
  af_cpu_embedding_backward(rte.data(), rpe.data(), rtt.data(), dy.data(), ids.data(), pos.data(),
                            nullptr, T, C);
  // the columns downloaded (host copies NULL), then from the host copies (no sync)
  for (int hosted = 0; hosted < 2; hosted++) {
    float *dte = up(wte), *dpe = up(wpe), *dtt = up(wtt);
    ASSERT_EQ(af_op_embedding_backward(&dev, dte, dpe, dtt, up(dy), up(ids), up(pos), nullptr, T,
                                       C, hosted ? ids.data() : nullptr,
                                       hosted ? pos.data() : nullptr, &err), AF_OK) << err.msg;
    EXPECT_BITS(down(dte, rte.size()), rte, "dwte");
    EXPECT_BITS(down(dpe, rpe.size()), rpe, "dwpe");
    EXPECT_BITS(down(dtt, rtt.size()), rtt, "dwtt");
  }
}

TEST_F(CudaBackward, LayerNormLinearGeluAdd) {
  const int N = 700, C = 384, F = 1536;
  auto x = randu(g, (size_t)N * C), w = randu(g, C), b = randu(g, C), dy = randu(g, (size_t)N * C);
  std::vector<float> y((size_t)N * C), mean(N), rstd(N);
  af_cpu_layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                           1e-12f);
  auto dx0 = randu(g, (size_t)N * C), dw0 = randu(g, C), db0 = randu(g, C);
  auto rdx = dx0, rdw = dw0, rdb = db0;
  af_cpu_layernorm_backward(rdx.data(), rdw.data(), rdb.data(), dy.data(), x.data(), w.data(),
                            mean.data(), rstd.data(), N, C);
  float *gdx = up(dx0), *gdw = up(dw0), *gdb = up(db0);
  ASSERT_EQ(af_op_layernorm_backward(&dev, gdx, gdw, gdb, up(dy), up(x), up(w), up(mean), up(rstd), N, C, &err), AF_OK) << err.msg;
  EXPECT_CLOSE(down(gdx, rdx.size()), rdx, "layernorm dinp");
  EXPECT_CLOSE(down(gdw, C), rdw, "layernorm dw");
  EXPECT_CLOSE(down(gdb, C), rdb, "layernorm db");

  auto lin = randu(g, (size_t)N * C), lw = randu(g, (size_t)F * C), ldy = randu(g, (size_t)N * F);
  auto ldx0 = randu(g, (size_t)N * C), ldw0 = randu(g, (size_t)F * C), ldb0 = randu(g, F);
  auto lrx = ldx0, lrw = ldw0, lrb = ldb0;
  af_cpu_linear_backward(lrx.data(), lrw.data(), lrb.data(), ldy.data(), lin.data(), lw.data(), N,
                         C, F);
  float *lgx = up(ldx0), *lgw = up(ldw0), *lgb = up(ldb0);
  ASSERT_EQ(af_op_linear_backward(&dev, lgx, lgw, lgb, up(ldy), up(lin), up(lw), N, C, F, &err), AF_OK) << err.msg;
  EXPECT_CLOSE(down(lgx, lrx.size()), lrx, "linear dinp");
  EXPECT_CLOSE(down(lgw, lrw.size()), lrw, "linear dw");
  EXPECT_CLOSE(down(lgb, lrb.size()), lrb, "linear dbias");

  const int64_t n = (int64_t)N * F;
  auto gx = randu(g, n, -4, 4), gdy = randu(g, n), gd0 = randu(g, n);
  auto gref = gd0;
  af_cpu_gelu_backward(gref.data(), gdy.data(), gx.data(), n);
  float *gd = up(gd0);
  ASSERT_EQ(af_op_gelu_backward(&dev, gd, up(gdy), up(gx), n, &err), AF_OK) << err.msg;
  EXPECT_CLOSE(down(gd, n), gref, "gelu");

  auto a0 = randu(g, n), b0 = randu(g, n), ra = a0, rb = b0;
  af_cpu_add_backward(ra.data(), rb.data(), gdy.data(), n);
  float *ga = up(a0), *gb = up(b0);
  ASSERT_EQ(af_op_add_backward(&dev, ga, gb, up(gdy), n, &err), AF_OK) << err.msg;
  EXPECT_BITS(down(ga, n), ra, "add da");
  EXPECT_BITS(down(gb, n), rb, "add db");
}

TEST_F(CudaBackward, AttentionHeadSizes32And64AndDeterminism) {
  for (int NH : {12, 6}) {  // C = 384: head size 32, then 64
    const int C = 384;
    std::vector<int> lens = {1, 7, 40, 200, 3};
    auto cu = cu_of(lens);
    const int T = cu.back(), B = (int)lens.size();
    auto qkv = randu(g, (size_t)T * 3 * C), dO = randu(g, (size_t)T * C);
    const int64_t np = af_attention_probs_size(cu.data(), B, NH);
    std::vector<float> out((size_t)T * C), probs(np);
    af_cpu_attention_forward(out.data(), probs.data(), qkv.data(), cu.data(), B, C, NH);
    auto d0 = randu(g, (size_t)T * 3 * C), ref = d0;
    af_cpu_attention_backward(ref.data(), dO.data(), qkv.data(), probs.data(), cu.data(), B, C,
                              NH);
    float *gq = up(qkv), *gdo = up(dO), *gp = up(probs);
    int32_t *gcu = up(cu);
    float *d1 = up(d0), *d2 = up(d0);
    // the lengths downloaded, then from the host copy of cu_seqlens (no sync): the same bits
    ASSERT_EQ(af_op_attention_backward(&dev, d1, gdo, gq, gp, gcu, B, C, NH, nullptr, &err), AF_OK)
        << err.msg;
    ASSERT_EQ(af_op_attention_backward(&dev, d2, gdo, gq, gp, gcu, B, C, NH, cu.data(), &err),
              AF_OK) << err.msg;
    auto h1 = down(d1, ref.size()), h2 = down(d2, ref.size());
    EXPECT_CLOSE(h1, ref, "attention dqkv, NH " + std::to_string(NH));
    EXPECT_BITS(h1, h2, "attention twice");
  }
}

TEST_F(CudaBackward, PoolingAndL2Norm) {
  const int C = 384;
  auto cu = cu_of({1, 9, 30, 2});
  const int T = cu.back(), B = 4;
  auto dy = randu(g, (size_t)B * C), d0 = randu(g, (size_t)T * C);
  auto rm = d0, rc = d0;
  af_cpu_mean_pool_backward(rm.data(), dy.data(), cu.data(), B, C);
  af_cpu_cls_pool_backward(rc.data(), dy.data(), cu.data(), B, C);
  int32_t *gcu = up(cu);
  float *gm = up(d0), *gc = up(d0), *gdy = up(dy);
  ASSERT_EQ(af_op_mean_pool_backward(&dev, gm, gdy, gcu, B, C, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_op_cls_pool_backward(&dev, gc, gdy, gcu, B, C, &err), AF_OK) << err.msg;
  EXPECT_BITS(down(gm, rm.size()), rm, "mean pool");
  EXPECT_BITS(down(gc, rc.size()), rc, "cls pool");
  auto x = randu(g, (size_t)B * C);
  std::vector<float> y((size_t)B * C), nrm(B);
  af_cpu_l2norm_forward(y.data(), nrm.data(), x.data(), B, C);
  auto ld0 = randu(g, (size_t)B * C), lr = ld0;
  af_cpu_l2norm_backward(lr.data(), dy.data(), y.data(), nrm.data(), B, C);
  float *gl = up(ld0);
  ASSERT_EQ(af_op_l2norm_backward(&dev, gl, gdy, up(y), up(nrm), B, C, &err), AF_OK) << err.msg;
  EXPECT_CLOSE(down(gl, lr.size()), lr, "l2norm");
}

#ifdef AF_HAVE_CUDA
TEST_F(CudaBackward, FusedAdamWIsBitEqualInFp32) {
  const int64_t na = 70001, nb = 513;  // a decaying tensor, then a bias
  const int64_t n = na + nb;
  auto p = randu(g, n), gr = randu(g, n, -3, 3), m = randu(g, n, -0.1f, 0.1f),
       v = randu(g, n, 0, 0.01f);
  af_adamw_config cfg = af_adamw_defaults();
  const double lr = 2e-3;
  const int64_t step = 5;
  const float gs = 0.37f;
  auto rp = p, rm = m, rv = v;
  af_adamw_update(rp.data(), gr.data(), rm.data(), rv.data(), na, lr, &cfg, 1, step, gs);
  af_adamw_update(rp.data() + na, gr.data() + na, rm.data() + na, rv.data() + na, nb, lr, &cfg, 0,
                  step, gs);
  af_adamw_scalars s = af_adamw_step_scalars(&cfg, lr, step);
  af_cuda_adamw_scalars cs = {s.keep_decay, s.w1, s.w2, s.fb2, s.step_size, s.bc2_sqrt, s.eps, gs};
  af_cuda_adamw_tensor table[2] = {{0, na, 1}, {na, nb, 0}};
  float *dp = up(p), *dm = up(m), *dv = up(v);
  uint16_t *work = up(std::vector<uint16_t>(n, 0));
  af_cuda_adamw_step((af_cuda_context *)dev.ctx, dp, up(gr), dm, dv, work, table, 2, &cs);
  auto hp = down(dp, n);
  EXPECT_BITS(hp, rp, "AdamW parameters");
  EXPECT_BITS(down(dm, n), rm, "AdamW m");
  EXPECT_BITS(down(dv, n), rv, "AdamW v");
  auto hw = down(work, n);
  size_t wrong = 0;
  for (int64_t i = 0; i < n; i++) {  // bf16 of the fp32 result, nearest even
    uint32_t u;
    std::memcpy(&u, &rp[i], 4);
    uint16_t want = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    wrong += hw[i] != want;
  }
  EXPECT_EQ(wrong, 0u) << "bf16 working copy";
}

TEST_F(CudaBackward, GradSumOfSquaresIsBitEqual) {
  for (int64_t n : {1, 4096, 4097, 1000003}) {
    auto gr = randu(g, n, -5, 5);
    double got = -1;
    ASSERT_EQ(af_cuda_grad_sumsq((af_cuda_context *)dev.ctx, up(gr), n, &got, &err), AF_OK)
        << err.msg;
    double want = af_grad_sumsq(gr.data(), n);
    EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << n << ": " << got << " vs " << want;
  }
}
#endif

#ifdef AF_HAVE_NCCL
// Without a GPU (or without libnccl) the nccl backend refuses with a clear
// error and no crash; libnccl is opened at run time, not linked.
TEST(CudaBackwardNoGpu, NcclBackendRefusesClearly) {
  if (af_cuda_available()) GTEST_SKIP() << "a GPU is present (NcclOneRankSmoke runs instead)";
  af_comm *c = nullptr;
  af_error err{};
  af_comm_options o = af_comm_default_options();
  o.backend = AF_COMM_NCCL;
  af_status st = af_comm_create(&o, &c, &err);
  EXPECT_NE(st, AF_OK);
  EXPECT_TRUE(st == AF_ERR_CUDA || st == AF_ERR_UNSUPPORTED) << af_status_name(st);
  EXPECT_EQ(c, nullptr);
  std::printf("nccl backend without a GPU: %s\n", err.msg);
  EXPECT_GT(std::strlen(err.msg), 10u);
}

TEST_F(CudaBackward, NcclOneRankSmoke) {
  af_comm *c = nullptr;
  af_comm_options o = af_comm_default_options();
  o.backend = AF_COMM_NCCL;
  o.timeout_s = 60;
  af_status st = af_comm_create(&o, &c, &err);
  if (st == AF_ERR_UNSUPPORTED)  // libnccl.so.2 is not on this machine (or AF_NCCL_LIBRARY)
    GTEST_SKIP() << err.msg;
  ASSERT_EQ(st, AF_OK) << err.msg;
  EXPECT_EQ(af_comm_size(c), 1);
  auto x = randu(g, 100003);
  auto h = x;
  ASSERT_EQ(af_comm_allreduce_sum_f32(c, h.data(), (int64_t)h.size(), &err), AF_OK) << err.msg;
  EXPECT_BITS(h, x, "one-rank all-reduce (host)");
  float *d = up(x);
  ASSERT_EQ(af_comm_allreduce_sum_f32_device(c, d, (int64_t)x.size(), &err), AF_OK) << err.msg;
  EXPECT_BITS(down(d, x.size()), x, "one-rank all-reduce (device)");
  char out[4] = {0};
  int64_t counts[1] = {3};
  ASSERT_EQ(af_comm_allgatherv(c, "xyz", out, counts, &err), AF_OK) << err.msg;
  EXPECT_STREQ(out, "xyz");
  EXPECT_EQ(af_comm_barrier(c, 0, &err), AF_OK) << err.msg;
  af_comm_free(c);
}
#endif

}  // namespace
