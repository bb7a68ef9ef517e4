// AdamW, the linear warm-up schedule and global-norm clipping (include/affinity.h)
// against torch.optim.AdamW (foreach=False), transformers'
// get_linear_schedule_with_warmup and torch.nn.utils.clip_grad_norm_, from
// tests/data/optim/adamw.json and tiny_model.json
// (tools/reference/make_optim_fixtures.py).
//
// Tolerances:
//  - learning rates: 1e-12 relative (the same double arithmetic as Python).
//  - gradient norm: 1e-6 relative (torch sums float32 squares, we sum doubles).
//  - parameters after 6 AdamW steps: |ours - torch| <= 1e-6 * max(1, |torch|):
//    the per-element arithmetic is torch's, operation by operation, in float;
//    what differs is a few ulps (6e-8 each) in the clip factor and in how the
//    accumulated gradient is summed. A wrong bias correction, decay or clip
//    moves parameters by >= 1e-3 of the learning rate times O(1).
//  - tiny model losses over 5 steps: 1e-5 * max(1, |loss|) (the brief's 1e-5):
//    the loss carries the float32 rounding of torch's cosine similarities
//    (~1e-6) and of the parameters (~1e-7 per step).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "affinity.h"
#include "train/loss.h"
#include "ops.h"
#include "ops_backward.h"
#include "test_util.h"

namespace {

std::vector<float> floats(const cJSON *arr) {
  std::vector<float> v;
  const cJSON *x;
  cJSON_ArrayForEach(x, arr) v.push_back((float)x->valuedouble);
  return v;
}
const cJSON *item(const cJSON *obj, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}
double num(const cJSON *obj, const char *key) { return item(obj, key)->valuedouble; }

struct Json {
  cJSON *root;
  explicit Json(const std::string &name)
      : root(cJSON_Parse(
            aft::read_file(aft::source_dir() + "/tests/data/optim/" + name).c_str())) {}
  ~Json() { cJSON_Delete(root); }
};

void expect_params_near(const std::vector<float> &ours, const std::vector<float> &ref, double tol,
                        const std::string &what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); i++)
    worst = std::max(worst, std::fabs(ours[i] - ref[i]) / std::max(1.0, (double)std::fabs(ref[i])));
  std::printf("  %-60s max error %.2e\n", what.c_str(), worst);
  for (size_t i = 0; i < ref.size(); i++)
    ASSERT_NEAR(ours[i], ref[i], tol * std::max(1.0, (double)std::fabs(ref[i])))
        << what << " element " << i;
}

}  // namespace

TEST(AdamW, DecayChosenByName) {
  EXPECT_EQ(af_param_decays("encoder.layer.0.attention.self.query.weight"), 1);
  EXPECT_EQ(af_param_decays("embeddings.word_embeddings.weight"), 1);
  EXPECT_EQ(af_param_decays("encoder.layer.0.intermediate.dense.bias"), 0);
  EXPECT_EQ(af_param_decays("embeddings.LayerNorm.weight"), 0);
  EXPECT_EQ(af_param_decays("encoder.layer.5.output.LayerNorm.bias"), 0);
  EXPECT_EQ(af_param_decays("bias"), 1);  // no ".bias" suffix: not a bias by name
  EXPECT_EQ(af_param_decays("pooler.dense.bias"), 0);
}

TEST(AdamW, ClipCoefficient) {
  EXPECT_EQ(af_clip_coef(0.5, 1.0), 1.0f);  // below the limit: unchanged
  EXPECT_FLOAT_EQ(af_clip_coef(4.0, 1.0), (float)(1.0 / (4.0 + 1e-6)));
  EXPECT_EQ(af_clip_coef(100.0, 0.0), 1.0f);  // max_norm 0: clipping off
}

TEST(AdamW, MatchesTorchWithScheduleClippingAndAccumulation) {
  Json j("adamw.json");
  ASSERT_NE(j.root, nullptr);
  std::vector<std::string> names;
  const cJSON *x;
  cJSON_ArrayForEach(x, item(j.root, "names")) names.push_back(x->valuestring);
  const size_t nt = names.size();
  std::vector<std::vector<float>> p, m, v, g;
  cJSON_ArrayForEach(x, item(j.root, "init")) p.push_back(floats(x));
  ASSERT_EQ(p.size(), nt);
  std::vector<int> decay;
  cJSON_ArrayForEach(x, item(j.root, "decay")) decay.push_back(x->valueint);
  for (size_t t = 0; t < nt; t++) {
    EXPECT_EQ(af_param_decays(names[t].c_str()), decay[t]) << names[t];
    m.emplace_back(p[t].size(), 0.f);
    v.emplace_back(p[t].size(), 0.f);
    g.emplace_back(p[t].size(), 0.f);
  }
  af_adamw_config cfg = af_adamw_defaults();
  cfg.beta1 = (float)num(j.root, "beta1");
  cfg.beta2 = (float)num(j.root, "beta2");
  cfg.eps = (float)num(j.root, "eps");
  cfg.weight_decay = (float)num(j.root, "weight_decay");
  const double base_lr = num(j.root, "lr"), max_norm = num(j.root, "max_norm");
  const int64_t warmup = (int64_t)num(j.root, "warmup"), total = (int64_t)num(j.root, "total");
  const int micro = (int)num(j.root, "micro");
  const float accum_scale = 1.0f / (float)micro;

  int64_t step = 0, clipped = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, item(j.root, "steps")) {
    // The caller sums micro-batch gradients; accum_scale makes them a mean.
    for (auto &gt : g)
      std::fill(gt.begin(), gt.end(), 0.f);
    const cJSON *mg;
    cJSON_ArrayForEach(mg, item(s, "micro_grads")) {
      size_t t = 0;
      const cJSON *gt;
      cJSON_ArrayForEach(gt, mg) {
        std::vector<float> gv = floats(gt);
        for (size_t i = 0; i < gv.size(); i++)
          g[t][i] += gv[i];
        t++;
      }
    }
    double ss = 0;
    for (auto &gt : g)
      ss += af_grad_sumsq(gt.data(), (int64_t)gt.size());
    double norm = accum_scale * std::sqrt(ss);
    EXPECT_NEAR(norm, num(s, "total_norm"), 1e-6 * num(s, "total_norm")) << "step " << step;
    float coef = af_clip_coef(norm, max_norm);
    clipped += coef < 1.0f;
    double lr = af_lr_linear_warmup(base_lr, step, warmup, total);
    EXPECT_NEAR(lr, num(s, "lr"), 1e-12 * base_lr) << "step " << step;
    for (size_t t = 0; t < nt; t++)
      af_adamw_update(p[t].data(), g[t].data(), m[t].data(), v[t].data(), (int64_t)p[t].size(), lr,
                      &cfg, af_param_decays(names[t].c_str()), step + 1, accum_scale * coef);
    step++;
    size_t t = 0;
    cJSON_ArrayForEach(x, item(s, "params")) {
      expect_params_near(p[t], floats(x), 1e-6, names[t] + " after step " + std::to_string(step));
      t++;
    }
  }
  EXPECT_EQ(step, total);
  EXPECT_GT(clipped, 0) << "the fixture should exercise clipping";
}

TEST(AdamW, ScheduleShape) {
  // transformers' formula, spelled out: 0, 1/2, 1 (peak) then linear to 0 and clamped.
  EXPECT_EQ(af_lr_linear_warmup(1.0, 0, 2, 6), 0.0);
  EXPECT_EQ(af_lr_linear_warmup(1.0, 1, 2, 6), 0.5);
  EXPECT_EQ(af_lr_linear_warmup(1.0, 2, 2, 6), 1.0);
  EXPECT_EQ(af_lr_linear_warmup(1.0, 5, 2, 6), 0.25);
  EXPECT_EQ(af_lr_linear_warmup(1.0, 9, 2, 6), 0.0);
  EXPECT_EQ(af_lr_linear_warmup(1.0, 0, 0, 4), 1.0);  // no warm-up
}

TEST(AdamW, GradSumsqIsIndependentOfThreads) {
  std::vector<float> gv(100003);
  for (size_t i = 0; i < gv.size(); i++)
    gv[i] = std::sin((double)i) * 1e-3f;
  af_device_cpu(1);
  double a = af_grad_sumsq(gv.data(), (int64_t)gv.size());
  af_device_cpu(2);
  double b = af_grad_sumsq(gv.data(), (int64_t)gv.size());
  af_device_cpu(0);
  EXPECT_EQ(a, b);
  double ref = 0;
  for (float x : gv)
    ref += (double)x * x;
  EXPECT_NEAR(a, ref, 1e-12 * ref);
}

TEST(AdamW, TinyModelTrainsLikeTorch) {
  // nn.Linear(IC -> OC) encodes anchors and positives; ranking loss; clip;
  // AdamW (decay on the weight only); warm-up schedule. 5 steps.
  Json j("tiny_model.json");
  ASSERT_NE(j.root, nullptr);
  const int IC = (int)num(j.root, "IC"), OC = (int)num(j.root, "OC"), B = (int)num(j.root, "B");
  const int64_t total = (int64_t)num(j.root, "total"), warmup = (int64_t)num(j.root, "warmup");
  std::vector<float> W = floats(item(j.root, "init_w")), b = floats(item(j.root, "init_b"));
  std::vector<float> mW(W.size(), 0.f), vW(W.size(), 0.f), mb(b.size(), 0.f), vb(b.size(), 0.f);
  af_adamw_config cfg = af_adamw_defaults();
  cfg.weight_decay = (float)num(j.root, "weight_decay");
  af_device dev = af_device_cpu(0);
  int64_t step = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, item(j.root, "steps")) {
    std::vector<float> XA = floats(item(s, "xa")), XP = floats(item(s, "xp"));
    std::vector<float> EA((size_t)B * OC), EP((size_t)B * OC), dEA(EA.size()), dEP(EP.size());
    af_op_linear_forward(&dev, EA.data(), XA.data(), W.data(), b.data(), B, IC, OC);
    af_op_linear_forward(&dev, EP.data(), XP.data(), W.data(), b.data(), B, IC, OC);
    float loss;
    af_error err{};
    ASSERT_EQ(af_mnr_loss(EA.data(), EP.data(), nullptr, B, 0, OC, (float)num(j.root, "scale"), 0,
                          &loss, dEA.data(), dEP.data(), nullptr, &err),
              AF_OK)
        << err.msg;
    double ref = num(s, "loss");
    std::printf("  tiny model step %d loss %.6f, error %.2e\n", (int)step, ref, std::fabs(loss - ref));
    EXPECT_NEAR(loss, ref, 1e-5 * std::max(1.0, std::fabs(ref))) << "loss at step " << step;
    std::vector<float> dW(W.size(), 0.f), db(b.size(), 0.f);
    af_op_linear_backward(&dev, nullptr, dW.data(), db.data(), dEA.data(), XA.data(), W.data(), B,
                          IC, OC);
    af_op_linear_backward(&dev, nullptr, dW.data(), db.data(), dEP.data(), XP.data(), W.data(), B,
                          IC, OC);
    double norm = std::sqrt(af_grad_sumsq(dW.data(), (int64_t)dW.size()) +
                            af_grad_sumsq(db.data(), (int64_t)db.size()));
    EXPECT_NEAR(norm, num(s, "total_norm"), 1e-5 * num(s, "total_norm")) << "step " << step;
    float coef = af_clip_coef(norm, num(j.root, "max_norm"));
    double lr = af_lr_linear_warmup(num(j.root, "lr"), step, warmup, total);
    af_adamw_update(W.data(), dW.data(), mW.data(), vW.data(), (int64_t)W.size(), lr, &cfg,
                    af_param_decays("dense.weight"), step + 1, coef);
    af_adamw_update(b.data(), db.data(), mb.data(), vb.data(), (int64_t)b.size(), lr, &cfg,
                    af_param_decays("dense.bias"), step + 1, coef);
    step++;
  }
  EXPECT_EQ(step, total);
  expect_params_near(W, floats(item(j.root, "final_w")), 1e-5, "final weight");
  expect_params_near(b, floats(item(j.root, "final_b")), 1e-5, "final bias");
}
