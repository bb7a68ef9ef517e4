// The basket-completion objective (engine/train/basket.c, basket_loss.c;
// docs/training.md "Basket-completion objective"):
//  - the loss and its gradient against float64 central finite differences
//    (plain, symmetric, log q correction, in-basket mask);
//  - the loss against a direct evaluation of its formula written here, the
//    log q term included, and against af_mnr_loss (checked against
//    sentence-transformers in test_loss) when there is no mask and no log q;
//  - examples and their seeded queries against their definition;
//  - one micro-batch through the tiny BERT: parameter gradients against
//    finite differences of the loss, and a token that only occurs in a query
//    item gets its gradient (the loss reaches every query item's sequence);
//  - the CLI: a tiny run, bit-exact resume, and flag errors.
//
// Tolerances (stated at each check): float64 finite differences 1e-7
// absolute (h = 1e-6: truncation ~h^2 scale^3 ~ 1e-10, rounding ~1e-16/h);
// the formula 1e-12; af_mnr_loss (float32 outputs) 1e-5; the model's float32
// finite differences 2e-2 relative, as test_train (h = 1e-2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
#include "train/basket_loss.h"
#include "train/loss.h"
}

namespace {

struct Case {
  int B = 5, C = 7;
  std::vector<double> U, P, logq;
  std::vector<unsigned char> mask;
  explicit Case(unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<double> n(0, 1);
    U.resize(B * C), P.resize(B * C), logq.resize(B), mask.assign(B * B, 0);
    for (auto &v : U) v = n(g);
    for (auto &v : P) v = n(g);
    for (auto &v : logq) v = -3 + n(g);
    mask[0 * B + 2] = mask[3 * B + 1] = mask[4 * B + 0] = 1;
  }
};

double loss_of(const Case &c, const std::vector<double> &U, const std::vector<double> &P,
               bool logq, bool mask, double scale, int sym) {
  double l = 0;
  af_error err{};
  EXPECT_EQ(af_basket_loss(U.data(), P.data(), logq ? c.logq.data() : nullptr,
                           mask ? c.mask.data() : nullptr, c.B, c.C, scale, sym, &l, nullptr,
                           nullptr, &err),
            AF_OK)
      << err.msg;
  return l;
}

// The formula of basket_loss.h evaluated directly.
double formula(const Case &c, bool logq, bool mask, double scale, int sym) {
  const int B = c.B, C = c.C;
  auto unit = [&](const std::vector<double> &X, int i) {
    std::vector<double> y(C);
    double s = 0;
    for (int k = 0; k < C; k++) s += X[i * C + k] * X[i * C + k];
    for (int k = 0; k < C; k++) y[k] = X[i * C + k] / std::sqrt(s);
    return y;
  };
  std::vector<std::vector<double>> S(B, std::vector<double>(B));
  std::vector<std::vector<bool>> on(B, std::vector<bool>(B, true));
  for (int i = 0; i < B; i++)
    for (int j = 0; j < B; j++) {
      auto u = unit(c.U, i), p = unit(c.P, j);
      double d = 0;
      for (int k = 0; k < C; k++) d += u[k] * p[k];
      S[i][j] = scale * d - (logq ? c.logq[j] : 0);
      on[i][j] = i == j || !mask || !c.mask[i * B + j];
    }
  double total = 0;
  for (int i = 0; i < B; i++) {
    double r = 0, col = 0;
    for (int j = 0; j < B; j++)
      if (on[i][j]) r += std::exp(S[i][j]);
    for (int k = 0; k < B; k++)
      if (on[k][i]) col += std::exp(S[k][i]);
    total += sym ? 0.5 * std::log(r) + 0.5 * std::log(col) - S[i][i] : std::log(r) - S[i][i];
  }
  return total / B;
}

TEST(BasketLoss, GradientMatchesFiniteDifferencesInFloat64) {
  for (int sym = 0; sym < 2; sym++)
    for (int variant = 0; variant < 3; variant++) {
      const bool logq = variant >= 1, mask = variant == 2;
      Case c(11 + variant + 3 * sym);
      const double scale = 5;
      std::vector<double> dU(c.B * c.C), dP(c.B * c.C);
      double l = 0;
      af_error err{};
      ASSERT_EQ(af_basket_loss(c.U.data(), c.P.data(), logq ? c.logq.data() : nullptr,
                               mask ? c.mask.data() : nullptr, c.B, c.C, scale, sym, &l,
                               dU.data(), dP.data(), &err),
                AF_OK)
          << err.msg;
      double worst = 0;
      const double h = 1e-6;
      for (int which = 0; which < 2; which++)
        for (int k = 0; k < c.B * c.C; k++) {
          std::vector<double> U = c.U, P = c.P;
          auto &X = which ? P : U;
          const double x0 = X[k];
          X[k] = x0 + h;
          double lp = loss_of(c, U, P, logq, mask, scale, sym);
          X[k] = x0 - h;
          double lm = loss_of(c, U, P, logq, mask, scale, sym);
          double fd = (lp - lm) / (2 * h), an = which ? dP[k] : dU[k];
          worst = std::max(worst, std::fabs(fd - an));
          EXPECT_NEAR(an, fd, 1e-7) << (which ? "dP" : "dU") << "[" << k << "] sym " << sym
                                    << " logq " << logq << " mask " << mask;
        }
      std::printf("  sym %d logq %d mask %d: loss %.6f, worst |analytic - fd| %.2e\n", sym, logq,
                  mask, l, worst);
    }
}

TEST(BasketLoss, EqualsItsFormulaIncludingLogQ) {
  for (int sym = 0; sym < 2; sym++)
    for (int variant = 0; variant < 4; variant++) {
      const bool logq = variant & 1, mask = variant & 2;
      Case c(5 + variant);
      // tolerance 1e-12: the same double arithmetic in another order
      EXPECT_NEAR(loss_of(c, c.U, c.P, logq, mask, 7, sym), formula(c, logq, mask, 7, sym), 1e-12)
          << "sym " << sym << " logq " << logq << " mask " << mask;
    }
  // the correction matters (it is not a constant shift) ...
  Case c(3);
  EXPECT_GT(std::fabs(loss_of(c, c.U, c.P, true, false, 7, 0) -
                      loss_of(c, c.U, c.P, false, false, 7, 0)), 1e-3);
  // ... unless every q is the same: then the row softmax is unchanged
  for (auto &v : c.logq) v = -4.2;
  EXPECT_NEAR(loss_of(c, c.U, c.P, true, false, 7, 0), loss_of(c, c.U, c.P, false, false, 7, 0),
              1e-12);
  // in the symmetric loss the column direction does not see log q: with one
  // row the row softmax is trivial, so the loss is independent of log q
  double l1 = 0, l2 = 0, u[3] = {1, 2, 3}, p[3] = {0.5, -1, 2}, q1 = -1, q2 = -9;
  af_error err{};
  ASSERT_EQ(af_basket_loss(u, p, &q1, nullptr, 1, 3, 5, 1, &l1, nullptr, nullptr, &err), AF_OK);
  ASSERT_EQ(af_basket_loss(u, p, &q2, nullptr, 1, 3, 5, 1, &l2, nullptr, nullptr, &err), AF_OK);
  EXPECT_NEAR(l1, 0.0, 1e-12);
  EXPECT_NEAR(l2, 0.0, 1e-12);
}

TEST(BasketLoss, WithoutMaskAndLogQIsTheMnrLoss) {
  // A one-item query is an anchor: the loss is sentence-transformers' MNR loss
  // (af_mnr_loss, test_loss). Tolerance 1e-5: af_mnr_loss returns float32.
  for (int sym = 0; sym < 2; sym++) {
    Case c(21 + sym);
    std::vector<float> a(c.U.begin(), c.U.end()), p(c.P.begin(), c.P.end());
    std::vector<float> da(a.size()), dp(p.size());
    std::vector<double> dU(a.size()), dP(p.size());
    float ref = 0;
    double l = 0;
    af_error err{};
    ASSERT_EQ(af_mnr_loss(a.data(), p.data(), nullptr, c.B, 0, c.C, 20, sym, &ref, da.data(),
                          dp.data(), nullptr, &err), AF_OK);
    ASSERT_EQ(af_basket_loss(c.U.data(), c.P.data(), nullptr, nullptr, c.B, c.C, 20, sym, &l,
                             dU.data(), dP.data(), &err), AF_OK);
    EXPECT_NEAR(l, ref, 1e-5 * std::max(1.0, std::fabs(l)));
    for (size_t k = 0; k < a.size(); k++) {
      EXPECT_NEAR(dU[k], da[k], 1e-5);
      EXPECT_NEAR(dP[k], dp[k], 1e-5);
    }
  }
  double l = 0, x = 1;
  af_error err{};
  EXPECT_EQ(af_basket_loss(&x, &x, nullptr, nullptr, 0, 1, 1, 0, &l, nullptr, nullptr, &err),
            AF_ERR_ARG);
  double bad = NAN;
  EXPECT_EQ(af_basket_loss(&x, &x, &bad, nullptr, 1, 1, 1, 0, &l, nullptr, nullptr, &err),
            AF_ERR_ARG);
}

// ---- examples -------------------------------------------------------------------

struct Baskets {
  std::vector<int64_t> off{0};
  std::vector<int32_t> items;
  std::vector<std::string> names;
  std::vector<const char *> texts;
  af_baskets b{};
  Baskets(int n_baskets, int n_items, unsigned seed, int max_size) {
    std::mt19937 g(seed);
    for (int k = 0; k < n_baskets; k++) {
      std::set<int32_t> s;
      int size = 1 + (int)(g() % max_size);
      while ((int)s.size() < size) s.insert((int32_t)((g() % n_items) * (g() % n_items) / n_items));
      items.insert(items.end(), s.begin(), s.end());
      off.push_back((int64_t)items.size());
    }
    const char *words[] = {"milk", "organic", "cheese", "bread", "apple", "juice", "chocolate",
                           "green", "tea", "water"};
    for (int i = 0; i < n_items; i++)
      names.push_back(i == 3 ? "" : std::string(words[i % 10]) + " " + std::to_string(i % 10));
    for (auto &s : names) texts.push_back(s.c_str());
    b.n_baskets = n_baskets;
    b.n_items = n_items;
    b.offsets = off.data();
    b.items = items.data();
  }
};

TEST(BasketExamples, MatchTheirDefinition) {
  Baskets d(200, 30, 4, 14);  // item 3 has no text
  af_basket_examples ex{};
  af_error err{};
  ASSERT_EQ(af_basket_examples_build(&d.b, d.texts.data(), 4, 1, 0, 9, &ex, &err), AF_OK)
      << err.msg;
  // every (basket, item with text) of a basket with >= 2 such items, in order
  std::vector<std::pair<int64_t, int32_t>> want;
  for (int64_t k = 0; k < d.b.n_baskets; k++) {
    std::vector<int32_t> v;
    for (int64_t p = d.off[k]; p < d.off[k + 1]; p++)
      if (d.items[p] != 3) v.push_back(d.items[p]);
    if (v.size() >= 2)
      for (int32_t i : v) want.push_back({k, i});
  }
  ASSERT_EQ(ex.n, (int64_t)want.size());
  int capped = 0;
  for (int64_t e = 0; e < ex.n; e++) {
    ASSERT_EQ(ex.basket[e], want[e].first);
    ASSERT_EQ(ex.held[e], want[e].second);
    int32_t q[AF_BASKET_MAX_QUERY], q2[AF_BASKET_MAX_QUERY];
    int n = af_basket_query(&ex, e, q);
    ASSERT_EQ(af_basket_query(&ex, e, q2), n);  // deterministic
    std::set<int32_t> others;
    for (int64_t p = d.off[ex.basket[e]]; p < d.off[ex.basket[e] + 1]; p++)
      if (d.items[p] != 3 && d.items[p] != ex.held[e]) others.insert(d.items[p]);
    ASSERT_EQ(n, std::min<int>(4, (int)others.size()));
    capped += (int)others.size() > 4;
    for (int x = 0; x < n; x++) {
      EXPECT_EQ(q[x], q2[x]);
      EXPECT_TRUE(others.count(q[x])) << "query item outside the basket or the held-out item";
      if (x) {
        EXPECT_LT(q[x - 1], q[x]);  // distinct, ascending
      }
    }
  }
  EXPECT_GT(capped, 50);
  // q: shares of the item occurrences
  double total = 0;
  for (int32_t i = 0; i < d.b.n_items; i++) {
    int64_t cnt = std::count(d.items.begin(), d.items.end(), i);
    if (cnt) total += std::exp(ex.log_q[i]);
    EXPECT_NEAR(ex.log_q[i], std::log((cnt ? cnt : 0.5) / (double)d.items.size()), 1e-12);
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  // a seeded sample keeps that many, a subset in order, the same for the seed
  af_basket_examples s1{}, s2{}, s3{};
  ASSERT_EQ(af_basket_examples_build(&d.b, d.texts.data(), 4, 1, 100, 9, &s1, &err), AF_OK);
  ASSERT_EQ(af_basket_examples_build(&d.b, d.texts.data(), 4, 1, 100, 9, &s2, &err), AF_OK);
  ASSERT_EQ(af_basket_examples_build(&d.b, d.texts.data(), 4, 1, 100, 10, &s3, &err), AF_OK);
  ASSERT_EQ(s1.n, 100);
  EXPECT_EQ(af_basket_examples_fingerprint(&s1), af_basket_examples_fingerprint(&s2));
  EXPECT_NE(af_basket_examples_fingerprint(&s1), af_basket_examples_fingerprint(&s3));
  for (int64_t e = 1, j = 0; e < s1.n; e++) {
    auto key = [](const af_basket_examples &x, int64_t i) {
      return std::make_pair(x.basket[i], x.held[i]);
    };
    EXPECT_LT(key(s1, e - 1), key(s1, e));
    while (j < ex.n && key(ex, j) != key(s1, e)) j++;
    EXPECT_LT(j, ex.n) << "sampled example not in the full set";
  }
  af_basket_examples bad{};  // a fresh one: build starts by clearing its output
  EXPECT_EQ(af_basket_examples_build(&d.b, d.texts.data(), 0, 1, 0, 9, &bad, &err), AF_ERR_ARG);
  af_basket_examples_free(&bad);
  af_basket_examples_free(&ex);
  af_basket_examples_free(&s1);
  af_basket_examples_free(&s2);
  af_basket_examples_free(&s3);
}

// ---- through the encoder --------------------------------------------------------

std::string data(const std::string &rel) { return aft::source_dir() + "/tests/data/" + rel; }

TEST(BasketTrain, GradientsMatchFiniteDifferencesAndReachQueryItems) {
  af_model m{};
  af_error err{};
  ASSERT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
  af_tokenizer *tok = nullptr;
  ASSERT_EQ(af_model_tokenizer(&m, 12, &tok, &err), AF_OK) << err.msg;
  // 4 baskets over 8 items; item 7 ("water 9", the only text with '9') is
  // only ever a query item, never held out in the batch
  std::vector<std::string> names = {"milk 0",  "organic tea 1", "cheese 2", "bread 3",
                                    "apple 4", "juice 5",       "green 6",  "water 9"};
  std::vector<const char *> texts;
  for (auto &s : names) texts.push_back(s.c_str());
  std::vector<int64_t> off = {0, 3, 6, 9, 11};
  std::vector<int32_t> items = {0, 1, 7, 2, 3, 4, 0, 5, 6, 2, 5};
  af_baskets b{};
  b.n_baskets = 4, b.n_items = 8, b.offsets = off.data(), b.items = items.data();
  af_basket_examples ex{};
  ASSERT_EQ(af_basket_examples_build(&b, texts.data(), 2, 1, 0, 3, &ex, &err), AF_OK);
  // examples: one per basket, not holding out item 7 (basket 0 holds out item 0)
  std::vector<int64_t> idx;
  for (int64_t k = 0; k < 4; k++)
    for (int64_t e = 0; e < ex.n; e++)
      if (ex.basket[e] == k && ex.held[e] != 7) {
        idx.push_back(e);
        break;
      }
  ASSERT_EQ(idx.size(), 4u);
  int32_t q[AF_BASKET_MAX_QUERY];
  ASSERT_EQ(af_basket_query(&ex, idx[0], q), 2);  // basket 0 minus item 0: items 1 and 7
  EXPECT_EQ(q[1], 7);
  af_device dev = af_device_cpu(0);
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.dropout = cfg.attn_dropout = 0;
  cfg.scale = 5;
  af_trainer *t = nullptr;
  ASSERT_EQ(af_trainer_create(&m, &dev, &cfg, &t, &err), AF_OK) << err.msg;
  float loss = 0;
  int64_t tokens = 0;
  ASSERT_EQ(af_trainer_accumulate_basket(t, tok, &ex, idx.data(), 4, 0, &loss, &tokens, &err),
            AF_OK) << err.msg;
  EXPECT_GT(tokens, 0);
  std::vector<float> g(af_trainer_grad(t), af_trainer_grad(t) + m.n_floats);
  auto loss_now = [&]() {
    float l = 0;
    int64_t tk = 0;
    EXPECT_EQ(af_trainer_accumulate_basket(t, tok, &ex, idx.data(), 4, 0, &l, &tk, &err), AF_OK);
    return (double)l;
  };
  struct Coord {
    std::string name;
    int64_t k;  // -1: the largest gradient
  };
  int32_t nine = -1, n = 0, ids[12];
  ASSERT_EQ(af_tokenizer_encode(tok, "9", 1, ids, 12, &n, &err), AF_OK);
  nine = ids[1];  // [CLS] 9 [SEP]
  const int C = m.cfg.hidden_size;
  std::vector<Coord> coords = {{"encoder.layer.1.output.dense.weight", -1},
                               {"encoder.layer.0.attention.self.query.weight", -1},
                               {"embeddings.LayerNorm.weight", -1},
                               {"embeddings.word_embeddings.weight", -2}};
  for (auto &cd : coords) {
    const af_param_info *p = af_model_param(&m, cd.name.c_str());
    ASSERT_NE(p, nullptr) << cd.name;
    int64_t lo = 0, hi = p->numel, best = 0;
    if (cd.k == -2) lo = (int64_t)nine * C, hi = lo + C;  // the row of token '9'
    best = lo;
    for (int64_t k = lo; k < hi; k++)
      if (std::fabs(g[p->offset + k]) > std::fabs(g[p->offset + best])) best = k;
    float *w = m.data + p->offset + best, w0 = *w, h = 1e-2f;
    *w = w0 + h;
    double lp = loss_now();
    *w = w0 - h;
    double lm = loss_now();
    *w = w0;
    double fd = (lp - lm) / (2.0 * h), an = g[p->offset + best];
    std::printf("  %s[%lld]: analytic %.6f, finite difference %.6f\n", cd.name.c_str(),
                (long long)best, an, fd);
    // tolerance 2e-2 relative (float32 loss at h = 1e-2, as test_train)
    EXPECT_NEAR(an, fd, 2e-2 * std::max(std::fabs(an), 1e-2)) << cd.name;
    if (cd.k == -2) {
      EXPECT_GT(std::fabs(an), 1e-4) << "no gradient reached the query item";
    }
  }
  af_trainer_free(t);
  af_basket_examples_free(&ex);
  af_tokenizer_free(tok);
  af_model_free(&m);
}

// ---- the CLI --------------------------------------------------------------------

struct Files {
  std::string dir, model, catalog, baskets;
  Files() {
    dir = aft::temp_dir("basket-cli");
    model = dir + "/tiny.h5";
    af_model m{};
    af_error err{};
    EXPECT_EQ(af_model_import_hf(data("tiny_bert_a").c_str(), &m, &err), AF_OK) << err.msg;
    EXPECT_EQ(af_model_save(model.c_str(), &m, &err), AF_OK) << err.msg;
    af_model_free(&m);
    const char *words[] = {"milk", "organic", "cheese", "bread", "apple", "juice", "chocolate",
                           "green", "tea", "water"};
    std::string c = "product_id,product_name\n", o = "order_id,product_id\n";
    for (int i = 0; i < 40; i++)
      c += std::to_string(i) + "," + words[i % 10] + " " + words[(i / 10) % 10] + "\n";
    std::mt19937 g(5);
    for (int k = 0; k < 300; k++) {
      std::set<int> s;
      int size = 2 + (int)(g() % 6);
      while ((int)s.size() < size) s.insert((int)(g() % 40));
      for (int i : s) o += std::to_string(k) + "," + std::to_string(i) + "\n";
    }
    catalog = dir + "/catalog.csv";
    baskets = dir + "/orders.csv";
    aft::write_file(catalog, c);
    aft::write_file(baskets, o);
  }
  std::string cmd(const std::string &out, const std::string &extra) const {
    return aft::cli() + " train --objective basket --catalog " + catalog + " --baskets " +
           baskets + " --batch 8 --max-len 10 --lr 1e-3 --warmup 1 --threads 2 --seed 7 "
           "--split-seed 42 --split-validate --out " + dir + "/" + out + " " + extra;
  }
};

TEST(BasketCli, TrainsResumesBitExactlyAndRejectsBadFlags) {
  Files f;
  std::string e;
  ASSERT_EQ(aft::run(f.cmd("full", "--model " + f.model + " --steps 4"), nullptr, &e), 0) << e;
  EXPECT_NE(e.find("basket examples"), std::string::npos) << e;
  EXPECT_NE(e.find("validation split (seed 43)"), std::string::npos) << e;
  ASSERT_TRUE(aft::file_exists(f.dir + "/full/final.h5"));
  std::string log = aft::read_file(f.dir + "/full/log.jsonl");
  size_t losses = 0, p = 0;
  while ((p = log.find("\"loss\": ", p)) != std::string::npos) losses++, p++;
  EXPECT_EQ(losses, 4u);
  ASSERT_EQ(aft::run(f.cmd("half", "--model " + f.model + " --steps 4 --stop-after 2"), nullptr,
                     &e), 0) << e;
  ASSERT_EQ(aft::run(f.cmd("half", "--resume " + f.dir + "/half/step-0000002.h5"), nullptr, &e),
            0) << e;
  // same parameters after 2 + 2 steps as after 4 (same threads)
  af_model a{}, b{};
  af_error err{};
  ASSERT_EQ(af_model_load((f.dir + "/full/final.h5").c_str(), &a, &err), AF_OK) << err.msg;
  ASSERT_EQ(af_model_load((f.dir + "/half/final.h5").c_str(), &b, &err), AF_OK) << err.msg;
  ASSERT_EQ(a.n_floats, b.n_floats);
  EXPECT_TRUE(std::equal(a.data, a.data + a.n_floats, b.data)) << "resume is not bit-exact";
  af_model_free(&a);
  af_model_free(&b);
  // other data flags on resume; basket flags without the objective; --pairs
  EXPECT_NE(aft::run(f.cmd("half", "--resume " + f.dir + "/half/step-0000002.h5 --max-query 2"),
                     nullptr, &e), 0);
  EXPECT_NE(e.find("differ from the checkpoint"), std::string::npos) << e;
  EXPECT_NE(aft::run(aft::cli() + " train --model " + f.model + " --baskets " + f.baskets +
                     " --catalog " + f.catalog + " --max-query 3 --out " + f.dir + "/x",
                     nullptr, &e), 0);
  EXPECT_NE(e.find("--max-query needs --objective basket"), std::string::npos) << e;
  EXPECT_NE(aft::run(aft::cli() + " train --objective basket --model " + f.model + " --pairs " +
                     f.catalog + " --out " + f.dir + "/x", nullptr, &e), 0);
  EXPECT_NE(e.find("--objective basket trains on --baskets"), std::string::npos) << e;
  EXPECT_FALSE(aft::file_exists(f.dir + "/x"));
}

}  // namespace
