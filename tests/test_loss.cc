// Multiple-negatives ranking loss (engine/train/loss.h) against sentence-transformers:
// tests/data/optim/mnr_loss.json holds inputs, loss and autograd gradients of
// MultipleNegativesRankingLoss.compute_loss_from_embeddings (float32), plain
// and symmetric (directions query_to_doc + doc_to_query, per_direction), with
// and without hard negatives. Regenerate: tools/reference/make_optim_fixtures.py.
//
// Tolerances: loss |ours - ref| <= 1e-5 * max(1, |ref|); gradients
// max |ours - ref| <= 1e-4 * max |ref|. The reference runs in float32: its
// scaled similarities (|S| <= 20) carry ~20 * 6e-8 ~ 1e-6 absolute error,
// which bounds the loss error near 1e-6 and the gradients' near 1e-5 of their
// scale; ours is double inside. Errors of a wrong formula are O(1).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "train/loss.h"
#include "test_util.h"

namespace {

std::vector<float> floats(const cJSON *obj, const char *key) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  std::vector<float> v;
  const cJSON *x;
  cJSON_ArrayForEach(x, arr) v.push_back((float)x->valuedouble);
  return v;
}

double num(const cJSON *obj, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble;
}

struct Json {
  cJSON *root;
  explicit Json(const std::string &path)
      : root(cJSON_Parse(aft::read_file(path).c_str())) {}
  ~Json() { cJSON_Delete(root); }
};

std::string fixture(const char *name) {
  return aft::source_dir() + "/tests/data/optim/" + name;
}

void expect_grad_near(const std::vector<float> &ours, const std::vector<float> &ref,
                      const std::string &what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double mx = 0, err = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    mx = std::max(mx, (double)std::fabs(ref[i]));
    err = std::max(err, (double)std::fabs(ours[i] - ref[i]));
  }
  std::printf("  %-40s max abs error %.2e, relative %.2e\n", what.c_str(), err,
              mx > 0 ? err / mx : 0.0);
  if (mx == 0)  // e.g. a batch of one: the loss is identically 0
    EXPECT_LE(err, 1e-6) << what;
  else
    EXPECT_LE(err / mx, 1e-4) << what;
}

}  // namespace

TEST(MnrLoss, MatchesSentenceTransformers) {
  Json j(fixture("mnr_loss.json"));
  ASSERT_NE(j.root, nullptr) << "cannot parse mnr_loss.json";
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(j.root, "cases");
  int n_cases = 0, n_sym = 0, n_neg = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    int B = (int)num(c, "B"), M = (int)num(c, "M"), C = (int)num(c, "C");
    int sym = (int)num(c, "symmetric");
    std::string what = "case " + std::to_string(n_cases) + " (B=" + std::to_string(B) +
                       " M=" + std::to_string(M) + " sym=" + std::to_string(sym) + ")";
    std::vector<float> A = floats(c, "anchors"), P = floats(c, "positives"),
                       N = floats(c, "negatives");
    std::vector<float> dA(A.size()), dP(P.size()), dN(N.size());
    float loss = -1;
    af_error err{};
    ASSERT_EQ(af_mnr_loss(A.data(), P.data(), M ? N.data() : nullptr, B, M, C,
                          (float)num(c, "scale"), sym, &loss, dA.data(), dP.data(),
                          M ? dN.data() : nullptr, &err),
              AF_OK)
        << err.msg;
    double ref = num(c, "loss");
    std::printf("  %-40s loss %.6f, error %.2e\n", what.c_str(), ref, std::fabs(loss - ref));
    EXPECT_NEAR(loss, ref, 1e-5 * std::max(1.0, std::fabs(ref))) << what;
    expect_grad_near(dA, floats(c, "d_anchors"), what + " d_anchors");
    expect_grad_near(dP, floats(c, "d_positives"), what + " d_positives");
    if (M)
      expect_grad_near(dN, floats(c, "d_negatives"), what + " d_negatives");
    // Forward only: the same loss.
    float loss2 = -1;
    ASSERT_EQ(af_mnr_loss(A.data(), P.data(), M ? N.data() : nullptr, B, M, C,
                          (float)num(c, "scale"), sym, &loss2, nullptr, nullptr, nullptr, &err),
              AF_OK);
    EXPECT_EQ(loss2, loss);
    n_cases++;
    n_sym += sym;
    n_neg += M > 0;
  }
  EXPECT_GE(n_cases, 5);
  EXPECT_GE(n_sym, 2);
  EXPECT_GE(n_neg, 2);
}

TEST(MnrLoss, RejectsBadArguments) {
  float A[4] = {1, 0, 0, 1}, loss;
  af_error err{};
  EXPECT_EQ(af_mnr_loss(A, A, nullptr, 0, 0, 2, 20.f, 0, &loss, nullptr, nullptr, nullptr, &err),
            AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("mnr loss"), std::string::npos) << err.msg;
  EXPECT_EQ(af_mnr_loss(A, A, nullptr, 2, 0, 2, 0.f, 0, &loss, nullptr, nullptr, nullptr, &err),
            AF_ERR_ARG);
  EXPECT_EQ(af_mnr_loss(A, A, nullptr, 2, 1, 2, 20.f, 0, &loss, nullptr, nullptr, nullptr, &err),
            AF_ERR_ARG);  // M = 1 but no negatives given
}
