// `affinity run` end to end on a tiny generated dataset (30 products, 40
// baskets) and the tiny model tests/data/tiny_bert_a, then recommend and
// groups on its run folder. References: brute-force counts over the baskets
// written here, and the independently tested `affinity rules` command.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "affinity.h"
#include "test_util.h"

namespace {

const char *kCats[3] = {"dairy eggs", "produce", "snacks"};
const char *kWords[10] = {"milk", "cheese", "apple", "banana", "chips",
                          "cookie", "organic", "yogurt", "salsa", "lemon"};

struct Data {
  std::string dir, products, orders, model, run;
  std::vector<std::string> ids, names, cats;
  std::vector<std::vector<int>> baskets;  // product indices, unique per basket
};

Data *g = nullptr;

std::string q(const std::string &s) { return "'" + s + "'"; }

std::string run_cmd(const std::string &out, const std::string &extra = "") {
  return q(aft::cli()) + " run --catalog " + q(g->products) + " --baskets " + q(g->orders) +
         " --model " + q(g->model) + " --out " + q(out) + " --min-support 0.05 " + extra;
}

class Run : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g = new Data;
    g->dir = aft::temp_dir("run");
    g->products = g->dir + "/products.csv";
    g->orders = g->dir + "/orders.csv";
    g->model = g->dir + "/tiny.h5";
    g->run = g->dir + "/run";
    std::string err;
    ASSERT_EQ(aft::run(q(aft::cli()) + " import-hf " +
                           q(aft::source_dir() + "/tests/data/tiny_bert_a") + " --out " + q(g->model),
                       nullptr, &err),
              0)
        << err;
    std::string p = "product_id,product_name,aisle,department\n";
    for (int i = 0; i < 30; i++) {
      g->ids.push_back(std::to_string(1000 + 7 * i));
      g->names.push_back(std::string(kWords[i % 10]) + " " + kWords[(i * 3 + 1) % 10] + " " +
                         std::to_string(i));
      g->cats.push_back(kCats[i / 10]);
      p += g->ids.back() + "," + g->names.back() + ",aisle," + g->cats.back() + "\n";
    }
    aft::write_file(g->products, p);
    // 40 baskets: a theme category, 2-5 of its products, sometimes one other.
    unsigned s = 12345;
    auto rnd = [&s](int n) {
      s = s * 1103515245u + 12345u;
      return (int)((s >> 16) % (unsigned)n);
    };
    std::string o = "order_id,product_id,add_to_cart_order,reordered\n";
    for (int b = 0; b < 40; b++) {
      std::set<int> items;
      int theme = rnd(3), k = 2 + rnd(4);
      while ((int)items.size() < k) items.insert(theme * 10 + rnd(10));
      if (rnd(2)) items.insert(rnd(30));
      g->baskets.emplace_back(items.begin(), items.end());
      int pos = 1;
      for (int i : items) o += std::to_string(500 + b) + "," + g->ids[i] + "," + std::to_string(pos++) + ",0\n";
    }
    aft::write_file(g->orders, o);
    ASSERT_EQ(aft::run(run_cmd(g->run), nullptr, &err), 0) << err;
  }
  static void TearDownTestSuite() {
    delete g;
    g = nullptr;
  }
  void SetUp() override { ASSERT_NE(g, nullptr); }
};

int idx(const std::string &id) {
  for (size_t i = 0; i < g->ids.size(); i++)
    if (g->ids[i] == id) return (int)i;
  return -1;
}
int idx_by_name(const std::string &name) {
  for (size_t i = 0; i < g->names.size(); i++)
    if (g->names[i] == name) return (int)i;
  return -1;
}

// Baskets holding every product of `items`.
int together(const std::vector<int> &items) {
  int n = 0;
  for (const auto &b : g->baskets) {
    bool all = true;
    for (int i : items) all = all && std::find(b.begin(), b.end(), i) != b.end();
    n += all;
  }
  return n;
}

std::vector<std::vector<std::string>> csv_rows(const std::string &path) {
  // Simple split: the generated names hold no commas or quotes.
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(aft::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : line) {
      if (c == ',') {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    f.push_back(cur);
    rows.push_back(f);
  }
  return rows;
}

long mtime_ns(const std::string &path) {
  struct stat sb;
  if (stat(path.c_str(), &sb) != 0) return -1;
  return sb.st_mtim.tv_sec * 1000000000L + sb.st_mtim.tv_nsec;
}

TEST_F(Run, WritesEveryOutput) {
  for (const char *f : {"products.csv", "embeddings.h5", "neighbors.h5", "rules.csv", "rules.jsonl",
                        "cooccur.csv", "itemcf.csv", "associations.csv", "report.html",
                        "network.png", "heatmap.png", "run.json", "manifest.json"})
    EXPECT_TRUE(aft::file_exists(g->run + "/" + f)) << f;
  std::string rj = aft::read_file(g->run + "/run.json");
  EXPECT_TRUE(aft::file_exists(g->run + "/eval.json"));
  // EASE's lambda is chosen on the validation split, as `affinity eval` does
  std::string ej = aft::read_file(g->run + "/eval.json");
  EXPECT_NE(ej.find("{\"method\": \"ease\", \"param\": \"lambda\", \"split\": \"validation\", "
                    "\"grid\": [10, 25, 50, 100, 250, 500, 1000, 2500]"),
            std::string::npos) << ej;
  EXPECT_NE(aft::read_file(g->run + "/report.html").find("<td>fusion</td><td>warm</td>"),
            std::string::npos);
  EXPECT_NE(rj.find("\"complete\":\ttrue"), std::string::npos) << rj;
  EXPECT_NE(rj.find("\"n_baskets\":\t40"), std::string::npos) << rj;
  // products.csv: every product once with its basket count (brute force).
  auto rows = csv_rows(g->run + "/products.csv");
  ASSERT_EQ(rows.size(), 31u);
  for (size_t r = 1; r < rows.size(); r++) {
    int i = idx(rows[r][0]);
    ASSERT_GE(i, 0);
    EXPECT_EQ(rows[r][1], g->names[i]);
    EXPECT_EQ(rows[r][2], g->cats[i]);
    EXPECT_EQ(std::stoi(rows[r][3]), together({i})) << rows[r][0];
  }
}

TEST_F(Run, CooccurrenceMatchesBruteForce) {
  auto rows = csv_rows(g->run + "/cooccur.csv");
  std::set<std::pair<int, int>> seen;
  for (size_t r = 1; r < rows.size(); r++) {
    int a = idx(rows[r][0]), b = idx(rows[r][1]);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    int n_ab = together({a, b}), n_a = together({a}), n_b = together({b});
    EXPECT_EQ(std::stoi(rows[r][2]), n_ab);
    // lift printed with %.10g: relative error below 1e-9.
    double lift = (double)n_ab * 40 / ((double)n_a * n_b);
    EXPECT_NEAR(std::stod(rows[r][6]), lift, 1e-9 * lift);
    seen.insert({std::min(a, b), std::max(a, b)});
  }
  // Every pair bought together in >= 2 baskets (the run's --min-count) is listed.
  for (int a = 0; a < 30; a++)
    for (int b = a + 1; b < 30; b++)
      if (together({a, b}) >= 2) {
        EXPECT_TRUE(seen.count({a, b})) << a << " " << b;
      }
}

TEST_F(Run, RulesEqualTheRulesCommand) {
  std::string out = g->dir + "/rules_cmd.csv", err;
  ASSERT_EQ(aft::run(q(aft::cli()) + " rules --baskets " + q(g->orders) + " --catalog " +
                         q(g->products) + " --min-support 0.05 --min-confidence 0.05 --max-len 3 "
                                          "--max-rules 10000 --out " +
                         q(out),
                     nullptr, &err),
            0)
      << err;
  auto a = csv_rows(out), b = csv_rows(g->run + "/rules.csv");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 5u);
  for (size_t r = 1; r < a.size(); r++)
    for (int c = 0; c < 8; c++) EXPECT_EQ(a[r][c], b[r][c]) << "row " << r << " col " << c;
}

// One writer per file (engine/assoc/assoc_files.c): the run's rules, co-occurrence
// and item-CF files are byte for byte what the commands write from the same
// baskets and catalog with the run's parameters (docs/architecture.md).
TEST_F(Run, AssociationFilesEqualTheCommandsFiles) {
  const std::string data = " --baskets " + q(g->orders) + " --catalog " + q(g->products);
  const struct {
    std::string cmd, file;
  } cases[] = {
      {"rules --min-support 0.05 --min-confidence 0.05 --max-len 3 --max-rules 10000", "rules.csv"},
      {"rules --min-support 0.05 --min-confidence 0.05 --max-len 3 --max-rules 10000", "rules.jsonl"},
      {"cooccur --min-count 2", "cooccur.csv"},
      {"itemcf --k 10 --min-count 2", "itemcf.csv"},
  };
  for (const auto &c : cases) {
    std::string out = g->dir + "/cmd_" + c.file, err;
    ASSERT_EQ(aft::run(q(aft::cli()) + " " + c.cmd + data + " --out " + q(out), nullptr, &err), 0)
        << c.cmd << ": " << err;
    std::string ours = aft::read_file(out), run = aft::read_file(g->run + "/" + c.file);
    EXPECT_GT(ours.size(), 100u) << c.file;
    EXPECT_EQ(ours, run) << c.file << ": the command and the run stage wrote different files";
  }
}

TEST_F(Run, AssociationsFollowTheirDefinitions) {
  af_embeddings e;
  af_error err;
  ASSERT_EQ(af_embeddings_read((g->run + "/embeddings.h5").c_str(), &e, &err), AF_OK) << err.msg;
  auto cosine = [&](int a, int b) {
    int ra = -1, rb = -1;
    for (int64_t i = 0; i < e.n; i++) {
      if (g->ids[a] == e.ids[i]) ra = (int)i;
      if (g->ids[b] == e.ids[i]) rb = (int)i;
    }
    double s = 0, na = 0, nb = 0;
    for (int j = 0; j < e.d; j++) {
      double x = e.emb[(int64_t)ra * e.d + j], y = e.emb[(int64_t)rb * e.d + j];
      s += x * y, na += x * x, nb += y * y;
    }
    return s / std::sqrt(na * nb);
  };
  // The fusion's scores are tested on their own (test_fuse); here: every row's
  // evidence columns against brute force, and the substitute rules.
  auto rows = csv_rows(g->run + "/associations.csv");
  int n_comp = 0, n_sub = 0;
  for (size_t r = 1; r < rows.size(); r++) {
    int a = idx(rows[r][0]), b = idx(rows[r][2]);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    int n_ab = together({a, b}), n_a = together({a}), n_b = together({b});
    double score = std::stod(rows[r][5]), cos = std::stod(rows[r][8]);
    EXPECT_EQ(std::stoi(rows[r][6]), n_ab);
    // values printed with %.6f: absolute error below 1e-6 (+ float32 embeddings: 1e-5)
    EXPECT_NEAR(cos, cosine(a, b), 1e-5);
    double lift = n_ab > 0 ? (double)n_ab * 40 / ((double)n_a * n_b) : NAN;
    if (n_ab > 0) {
      // printed with %g: relative error below 1e-5
      ASSERT_FALSE(rows[r][7].empty());
      EXPECT_NEAR(std::stod(rows[r][7]), lift, 1e-5 * lift);
    }
    if (rows[r][4] == "complement") {
      n_comp++;
      EXPECT_GT(score, 0);
    } else {
      ASSERT_EQ(rows[r][4], "substitute");
      n_sub++;
      EXPECT_EQ(g->cats[a], g->cats[b]);
      EXPECT_GE(cos, 0.6 - 1e-6);
      if (n_a > 0 && n_b > 0) {
        EXPECT_LE((double)n_ab * 40 / ((double)n_a * n_b), 1.0 + 1e-9);
      }
    }
  }
  EXPECT_GT(n_comp, 10);
  printf("associations: %d complements, %d substitutes\n", n_comp, n_sub);
  af_embeddings_free(&e);
}

TEST_F(Run, RerunSkipsUnchangedStagesAndRedoesChangedOnes) {
  std::string dir = g->dir + "/rerun", err;
  ASSERT_EQ(aft::run(run_cmd(dir), nullptr, &err), 0) << err;
  long emb_t = mtime_ns(dir + "/embeddings.h5"), assoc_t = mtime_ns(dir + "/associations.csv");
  // 1. unchanged: every stage skipped, no output rewritten
  ASSERT_EQ(aft::run(run_cmd(dir), nullptr, &err), 0) << err;
  EXPECT_EQ(err.find("running"), std::string::npos) << err;
  for (const char *s : {"load", "embed", "score", "rules", "cooccur", "itemcf", "associate", "report"})
    EXPECT_NE(err.find(std::string(s) + std::string(9 - strlen(s), ' ') + " skipped"),
              std::string::npos)
        << s << "\n" << err;
  EXPECT_EQ(mtime_ns(dir + "/embeddings.h5"), emb_t);
  EXPECT_EQ(mtime_ns(dir + "/associations.csv"), assoc_t);
  // 2. a parameter of score changes: score and everything after rerun, embed does not
  ASSERT_EQ(aft::run(run_cmd(dir, "--k 10"), nullptr, &err), 0) << err;
  EXPECT_NE(err.find("embed     skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("score     running"), std::string::npos) << err;
  EXPECT_NE(err.find("associate running"), std::string::npos) << err;
  // 3. a deleted output reruns its stage
  std::remove((dir + "/itemcf.csv").c_str());
  ASSERT_EQ(aft::run(run_cmd(dir, "--k 10"), nullptr, &err), 0) << err;
  EXPECT_NE(err.find("itemcf    running"), std::string::npos) << err;
  EXPECT_NE(err.find("rules     skipped"), std::string::npos) << err;
  EXPECT_TRUE(aft::file_exists(dir + "/itemcf.csv"));
  // 4. changed baskets: basket stages rerun, embed and score do not
  std::string orders2 = g->dir + "/orders2.csv";
  aft::write_file(orders2, aft::read_file(g->orders) + "999," + g->ids[0] + ",1,0\n999," +
                               g->ids[1] + ",2,0\n");
  std::string cmd = q(aft::cli()) + " run --catalog " + q(g->products) + " --baskets " + q(orders2) +
                    " --model " + q(g->model) + " --out " + q(dir) + " --min-support 0.05 --k 10";
  ASSERT_EQ(aft::run(cmd, nullptr, &err), 0) << err;
  EXPECT_NE(err.find("embed     skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("score     skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("cooccur   running"), std::string::npos) << err;
  EXPECT_NE(err.find("rules     running"), std::string::npos) << err;
  // 5. --force reruns everything
  ASSERT_EQ(aft::run(cmd + " --force", nullptr, &err), 0) << err;
  EXPECT_NE(err.find("embed     running"), std::string::npos) << err;
}

// A killed earlier run leaves "<output>.tmp.<pid>" files; the next run removes
// those whose process no longer exists (and says so), and keeps the others.
TEST_F(Run, RemovesTemporariesOfKilledRuns) {
  std::string dir = g->dir + "/stale", err;
  mkdir(dir.c_str(), 0755);
  pid_t p = fork();
  if (p == 0) _exit(0);
  int status;
  waitpid(p, &status, 0);  // p is now the pid of no process
  std::string dead = std::to_string(p);
  aft::write_file(dir + "/embeddings.h5.tmp." + dead, std::string(4096, 'x'));
  aft::write_file(dir + "/train-notes.tmp." + dead, "x");
  aft::write_file(dir + "/neighbors.h5.tmp.1", "x");  // pid 1 exists: kept
  ASSERT_EQ(aft::run(run_cmd(dir), nullptr, &err), 0) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/embeddings.h5.tmp." + dead));
  EXPECT_FALSE(aft::file_exists(dir + "/train-notes.tmp." + dead));
  EXPECT_TRUE(aft::file_exists(dir + "/neighbors.h5.tmp.1"));
  EXPECT_NE(err.find("removed 2 temporary files of killed runs"), std::string::npos) << err;
}

TEST_F(Run, TextOnlyRunSkipsBasketStages) {
  std::string dir = g->dir + "/textonly", err;
  ASSERT_EQ(aft::run(q(aft::cli()) + " run --catalog " + q(g->products) + " --model " + q(g->model) +
                         " --out " + q(dir) + " --substitute-cosine 0.3",
                     nullptr, &err),
            0)
      << err;
  EXPECT_FALSE(aft::file_exists(dir + "/rules.csv"));
  EXPECT_FALSE(aft::file_exists(dir + "/cooccur.csv"));
  EXPECT_TRUE(aft::file_exists(dir + "/report.html"));
  auto rows = csv_rows(dir + "/associations.csv");
  ASSERT_GT(rows.size(), 1u);
  for (size_t r = 1; r < rows.size(); r++) EXPECT_EQ(rows[r][4], "substitute");
  EXPECT_NE(aft::read_file(dir + "/report.html").find("No rules: this run had no baskets"),
            std::string::npos);
  // recommend works from title similarity alone
  std::string out;
  ASSERT_EQ(aft::run(q(aft::cli()) + " recommend --run " + q(dir) + " --basket " + g->ids[0] +
                         " --min-text-cosine 0.3",
                     &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("title similar to"), std::string::npos) << out;
}

TEST_F(Run, BadInputIsAClearErrorAndLeavesNoOutput) {
  std::string err, dir = g->dir + "/bad";
  // a missing catalog
  EXPECT_NE(aft::run(q(aft::cli()) + " run --catalog " + q(g->dir + "/nope.csv") + " --model " +
                         q(g->model) + " --out " + q(dir),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("nope.csv"), std::string::npos) << err;
  // a basket row with an unknown product names file and line
  std::string orders = g->dir + "/bad_orders.csv";
  aft::write_file(orders, "order_id,product_id\n1," + g->ids[0] + "\n2,424242\n");
  EXPECT_NE(aft::run(q(aft::cli()) + " run --catalog " + q(g->products) + " --baskets " + q(orders) +
                         " --model " + q(g->model) + " --out " + q(dir),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("bad_orders.csv:3"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/report.html"));
  // a model that is not a checkpoint
  aft::write_file(g->dir + "/bad.h5", "not hdf5");
  EXPECT_NE(aft::run(q(aft::cli()) + " run --catalog " + q(g->products) + " --model " +
                         q(g->dir + "/bad.h5") + " --out " + q(dir),
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("bad.h5"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/embeddings.h5"));
  // fine-tuning without baskets has nothing to learn from
  EXPECT_NE(aft::run(q(aft::cli()) + " run --catalog " + q(g->products) + " --model " + q(g->model) +
                         " --out " + q(dir) + " --fine-tune-steps 2",
                     nullptr, &err),
            0);
  EXPECT_NE(err.find("fine-tune"), std::string::npos) << err;
}

TEST_F(Run, FineTuneStepsTrainAndEmbedWithTheTunedModel) {
  std::string dir = g->dir + "/finetune", err;
  ASSERT_EQ(aft::run(run_cmd(dir, "--fine-tune-steps 3"), nullptr, &err), 0) << err;
  EXPECT_NE(err.find("finetune  running"), std::string::npos) << err;
  ASSERT_TRUE(aft::file_exists(dir + "/finetuned.h5"));
  af_embeddings a, b;
  af_error e;
  ASSERT_EQ(af_embeddings_read((dir + "/embeddings.h5").c_str(), &a, &e), AF_OK) << e.msg;
  ASSERT_EQ(af_embeddings_read((g->run + "/embeddings.h5").c_str(), &b, &e), AF_OK) << e.msg;
  ASSERT_EQ(a.n * a.d, b.n * b.d);
  double diff = 0;
  for (int64_t i = 0; i < a.n * a.d; i++) diff = std::max(diff, (double)std::fabs(a.emb[i] - b.emb[i]));
  EXPECT_GT(diff, 1e-4) << "3 AdamW steps at lr 2e-5 changed nothing";
  af_embeddings_free(&a);
  af_embeddings_free(&b);
  // unchanged: the finetune stage is skipped too
  ASSERT_EQ(aft::run(run_cmd(dir, "--fine-tune-steps 3"), nullptr, &err), 0) << err;
  EXPECT_NE(err.find("finetune  skipped"), std::string::npos) << err;
}

TEST_F(Run, RecommendEvidenceMatchesBruteForce) {
  std::vector<int> basket = {0, 1, 2};
  std::vector<std::string> ids;
  for (int i : basket) ids.push_back(g->ids[i]);
  std::vector<const char *> cids;
  for (auto &s : ids) cids.push_back(s.c_str());
  af_recommend_options o;
  af_recommend_default_options(&o);
  o.k = 8;
  af_recommendations r;
  af_error err;
  ASSERT_EQ(af_recommend(g->run.c_str(), cids.data(), (int)cids.size(), &o, &r, &err), AF_OK)
      << err.msg;
  ASSERT_GT(r.n, 0);
  for (int j = 0; j < r.n; j++) {
    const af_recommendation &x = r.recs[j];
    int c = idx(r.products.ids[x.product]);
    ASSERT_GE(c, 0);
    EXPECT_EQ(std::count(basket.begin(), basket.end(), c), 0) << "recommended a basket item";
    if (j > 0) {
      EXPECT_LE(x.score, r.recs[j - 1].score);
    }
    double expect = 0;
    if (x.cop_with >= 0) {
      int b = idx(r.products.ids[x.cop_with]);
      EXPECT_EQ(std::count(basket.begin(), basket.end(), b), 1);
      int n_bc = together({b, c});
      EXPECT_EQ(x.cop_count, n_bc);
      double cs = n_bc / std::sqrt((double)together({b}) * together({c}));
      EXPECT_NEAR(x.cop_cosine, cs, 1e-9);  // %.10g in cooccur.csv
      // it is the best basket item by co-purchase cosine
      for (int b2 : basket) {
        int n2 = together({b2, c});
        if (n2 >= 2) {
          EXPECT_LE(n2 / std::sqrt((double)together({b2}) * together({c})), cs + 1e-9);
        }
      }
      expect += x.cop_cosine;
    }
    if (x.rule_antecedent) {
      std::vector<int> ante;
      std::string s = x.rule_antecedent;
      size_t p = 0;
      while (true) {
        size_t e = s.find(" + ", p);
        ante.push_back(idx_by_name(s.substr(p, e == std::string::npos ? e : e - p)));
        if (e == std::string::npos) break;
        p = e + 3;
      }
      std::vector<int> all = ante;
      all.push_back(c);
      for (int a : ante) EXPECT_EQ(std::count(basket.begin(), basket.end(), a), 1);
      EXPECT_EQ(x.rule_count, together(all));
      EXPECT_NEAR(x.rule_confidence, (double)together(all) / together(ante), 1e-12);
      expect += x.rule_confidence;
    }
    if (x.text_with >= 0) expect += o.text_weight * x.text_cosine;
    EXPECT_NEAR(x.score, expect, 1e-12);
  }
  af_recommendations_free(&r);
  // unknown id
  const char *bad[2] = {g->ids[0].c_str(), "no-such-id"};
  EXPECT_EQ(af_recommend(g->run.c_str(), bad, 2, &o, &r, &err), AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("no-such-id"), std::string::npos) << err.msg;
  std::string e2;
  EXPECT_NE(aft::run(q(aft::cli()) + " recommend --run " + q(g->run) + " --basket 'x1,x2'", nullptr, &e2), 0);
  EXPECT_NE(e2.find("'x1'"), std::string::npos) << e2;
  // a run folder without its outputs
  EXPECT_NE(aft::run(q(aft::cli()) + " recommend --run " + q(g->dir) + " --basket " + g->ids[0], nullptr, &e2), 0);
  EXPECT_NE(e2.find("incomplete"), std::string::npos) << e2;
}

// Modularity Q = sum_c [ w_in(c)/m - (k(c)/2m)^2 ], brute force over the edge list.
double modularity(const std::map<std::pair<int, int>, double> &w, const std::map<int, int> &group) {
  double m = 0;
  std::map<int, double> k, in;
  for (auto &kv : w) {
    m += kv.second;
    k[group.at(kv.first.first)] += kv.second;
    k[group.at(kv.first.second)] += kv.second;
    if (group.at(kv.first.first) == group.at(kv.first.second)) in[group.at(kv.first.first)] += kv.second;
  }
  double q = 0;
  for (auto &kv : k) q += in[kv.first] / m - (kv.second / (2 * m)) * (kv.second / (2 * m));
  return q;
}

// Runs af_groups_compute on an edge list over n products; returns product -> group.
std::map<int, int> groups_of(int n, const std::vector<std::pair<std::pair<int, int>, double>> &edges,
                             af_groups_method method, double *q) {
  af_catalog p = {};
  p.n = n;
  std::vector<af_assoc> rows;
  for (auto &e : edges) rows.push_back(af_assoc{e.first.first, e.first.second, 0, e.second, 2.0, 0.5, 3});
  af_assoc_list as = {(int64_t)rows.size(), rows.data()};
  af_groups_options o;
  af_groups_default_options(&o);
  o.method = method;
  af_groups gr;
  af_error err;
  std::map<int, int> out;
  EXPECT_EQ(af_groups_compute(&p, &as, &o, &gr, &err), AF_OK) << err.msg;
  for (int64_t k = 0; k < gr.n_groups; k++)
    for (int64_t j = gr.offsets[k]; j < gr.offsets[k + 1]; j++) out[(int)gr.members[j]] = (int)k;
  *q = gr.modularity;
  af_groups_free(&gr);
  return out;
}

TEST(Groups, LouvainRecoversPlantedGroups) {
  // 4 groups of 6: complete inside (weight 1), a ring of weak links between groups (0.1).
  std::vector<std::pair<std::pair<int, int>, double>> edges;
  std::map<std::pair<int, int>, double> w;
  for (int g = 0; g < 4; g++)
    for (int a = 0; a < 6; a++)
      for (int b = a + 1; b < 6; b++) edges.push_back({{g * 6 + a, g * 6 + b}, 1.0});
  for (int g = 0; g < 4; g++) edges.push_back({{g * 6, ((g + 1) % 4) * 6 + 3}, 0.1});
  for (auto &e : edges) w[e.first] = e.second;
  double q;
  auto got = groups_of(24, edges, AF_GROUPS_LOUVAIN, &q);
  ASSERT_EQ(got.size(), 24u);
  for (int i = 0; i < 24; i++)
    for (int j = 0; j < 24; j++) EXPECT_EQ(got[i] == got[j], i / 6 == j / 6) << i << " " << j;
  EXPECT_NEAR(q, modularity(w, got), 1e-12);
}

TEST(Groups, LouvainOnZacharysKarateClub) {
  // Zachary (1977), 34 members, 78 ties, unweighted. The maximum modularity of
  // this graph is 0.4198 (Brandes et al. 2008, exact by integer programming);
  // Louvain is a heuristic, so we ask for at least 0.40 and at most the optimum.
  const int E[78][2] = {{0,1},{0,2},{0,3},{0,4},{0,5},{0,6},{0,7},{0,8},{0,10},{0,11},{0,12},{0,13},{0,17},{0,19},{0,21},{0,31},{1,2},{1,3},{1,7},{1,13},{1,17},{1,19},{1,21},{1,30},{2,3},{2,7},{2,8},{2,9},{2,13},{2,27},{2,28},{2,32},{3,7},{3,12},{3,13},{4,6},{4,10},{5,6},{5,10},{5,16},{6,16},{8,30},{8,32},{8,33},{9,33},{13,33},{14,32},{14,33},{15,32},{15,33},{18,32},{18,33},{19,33},{20,32},{20,33},{22,32},{22,33},{23,25},{23,27},{23,29},{23,32},{23,33},{24,25},{24,27},{24,31},{25,31},{26,29},{26,33},{27,33},{28,31},{28,33},{29,32},{29,33},{30,32},{30,33},{31,32},{31,33},{32,33}};
  std::vector<std::pair<std::pair<int, int>, double>> edges;
  std::map<std::pair<int, int>, double> w;
  for (auto &e : E) {
    edges.push_back({{e[0], e[1]}, 1.0});
    w[{e[0], e[1]}] = 1.0;
  }
  double q, q_lpa;
  auto got = groups_of(34, edges, AF_GROUPS_LOUVAIN, &q);
  ASSERT_EQ(got.size(), 34u);
  double brute = modularity(w, got);
  printf("karate: louvain %zu groups, Q = %.4f\n", std::set<int>([&] {
           std::set<int> s;
           for (auto &kv : got) s.insert(kv.second);
           return s;
         }()).size(), brute);
  EXPECT_NEAR(q, brute, 1e-12);
  EXPECT_GE(brute, 0.40);
  EXPECT_LE(brute, 0.4197896120973044 + 1e-12);
  auto lpa = groups_of(34, edges, AF_GROUPS_LPA, &q_lpa);
  EXPECT_NEAR(q_lpa, modularity(w, lpa), 1e-12);
}

// recommend --ranker learned: the learned ranker refitted on the run's
// baskets (read again as run.json says) and embeddings; the same ranking for
// 1 and 2 threads, no basket item, best first, and the CLI prints it.
TEST_F(Run, RecommendLearnedRanksByTheRanker) {
  std::vector<std::string> ids = {g->ids[0], g->ids[1]};
  std::vector<const char *> cids = {ids[0].c_str(), ids[1].c_str()};
  af_recommend_options o;
  af_recommend_default_options(&o);
  o.k = 6, o.learned = 1, o.threads = 1;
  af_recommendations r1, r2;
  af_error err;
  ASSERT_EQ(af_recommend(g->run.c_str(), cids.data(), 2, &o, &r1, &err), AF_OK) << err.msg;
  o.threads = 2;
  ASSERT_EQ(af_recommend(g->run.c_str(), cids.data(), 2, &o, &r2, &err), AF_OK) << err.msg;
  ASSERT_GT(r1.n, 0);
  ASSERT_EQ(r1.n, r2.n);
  for (int j = 0; j < r1.n; j++) {
    EXPECT_EQ(r1.recs[j].product, r2.recs[j].product);
    EXPECT_EQ(r1.recs[j].score, r2.recs[j].score);
    int c = idx(r1.products.ids[r1.recs[j].product]);
    EXPECT_NE(c, 0);
    EXPECT_NE(c, 1);
    if (j > 0) {
      EXPECT_LE(r1.recs[j].score, r1.recs[j - 1].score);
    }
  }
  // cold slots: one product of this run is never bought; with all 10 slots
  // it takes rank 1 and the ranker's order follows (the library test
  // EvalLearned.ColdSlotsHoldNeverBoughtProductsBelowTheRankersTop checks 3 slots at length)
  std::set<int> bought;
  for (const auto &b : g->baskets) bought.insert(b.begin(), b.end());
  ASSERT_EQ(bought.size() + 1, g->ids.size());
  int unsold = 0;
  while (bought.count(unsold)) unsold++;
  ASSERT_NE(unsold, 0);
  ASSERT_NE(unsold, 1);  // not in the basket
  af_recommendations_free(&r1);
  af_recommendations_free(&r2);
  o.k = 10;
  ASSERT_EQ(af_recommend(g->run.c_str(), cids.data(), 2, &o, &r1, &err), AF_OK) << err.msg;
  o.cold_slots = 10;
  ASSERT_EQ(af_recommend(g->run.c_str(), cids.data(), 2, &o, &r2, &err), AF_OK) << err.msg;
  std::vector<int> want, got;
  for (int j = 0; j < r1.n; j++) want.push_back(idx(r1.products.ids[r1.recs[j].product]));
  for (int j = 0; j < r2.n; j++) got.push_back(idx(r2.products.ids[r2.recs[j].product]));
  ASSERT_EQ(want.size(), 10u);
  ASSERT_NE(want[0], unsold);  // else the slots would change nothing here
  want.erase(std::remove(want.begin(), want.end(), unsold), want.end());
  want.insert(want.begin(), unsold);
  want.resize(10);
  EXPECT_EQ(got, want);
  af_recommendations_free(&r1);
  af_recommendations_free(&r2);
  std::string out, e;
  EXPECT_NE(aft::run(aft::cli() + " recommend --run " + g->run + " --basket " + ids[0] +
                     " --cold-slots 2", &out, &e), 0);
  EXPECT_NE(e.find("--cold-slots: a choice of the learned ranker"), std::string::npos) << e;
  ASSERT_EQ(aft::run(aft::cli() + " recommend --run " + g->run + " --basket " + ids[0] + "," +
                     ids[1] + " --ranker learned --k 3", &out, &e), 0) << e;
  EXPECT_NE(out.find(" 1. "), std::string::npos) << out;
  EXPECT_NE(aft::run(aft::cli() + " recommend --run " + g->run + " --basket " + ids[0] +
                     " --ranker best", &out, &e), 0);
  EXPECT_NE(e.find("--ranker: expected evidence or learned"), std::string::npos) << e;
}

TEST_F(Run, GroupsAreAStableLabelPropagationPartition) {
  std::string out = g->dir + "/groups.csv", err;
  ASSERT_EQ(aft::run(q(aft::cli()) + " groups --method lpa --run " + q(g->run) + " --out " + q(out),
                     nullptr, &err),
            0)
      << err;
  // The complement graph, brute force from associations.csv.
  std::map<std::pair<int, int>, double> w;
  auto assoc = csv_rows(g->run + "/associations.csv");
  for (size_t r = 1; r < assoc.size(); r++) {
    if (assoc[r][4] != "complement") continue;
    int a = idx(assoc[r][0]), b = idx(assoc[r][2]);
    auto key = std::make_pair(std::min(a, b), std::max(a, b));
    w[key] = std::max(w[key], std::stod(assoc[r][5]));
  }
  std::map<int, int> group;  // product -> group
  std::map<int, int> size;
  auto rows = csv_rows(out);
  for (size_t r = 1; r < rows.size(); r++) {
    int p = idx(rows[r][3]);
    ASSERT_GE(p, 0);
    EXPECT_EQ(group.count(p), 0u) << "product in two groups";
    group[p] = std::stoi(rows[r][0]);
    size[group[p]]++;
  }
  for (size_t r = 1; r < rows.size(); r++) EXPECT_EQ(std::stoi(rows[r][1]), size[std::stoi(rows[r][0])]);
  // every product with a complement link is in a group; no other product is
  std::set<int> linked;
  for (auto &kv : w) linked.insert(kv.first.first), linked.insert(kv.first.second);
  EXPECT_EQ(linked.size(), group.size());
  // fixed point: each product's group has the largest summed weight among its neighbours' groups
  for (int p : linked) {
    std::map<int, double> by;
    for (auto &kv : w)
      if (kv.first.first == p) by[group[kv.first.second]] += kv.second;
      else if (kv.first.second == p) by[group[kv.first.first]] += kv.second;
    double best = 0;
    for (auto &kv : by) best = std::max(best, kv.second);
    EXPECT_NEAR(by[group[p]], best, 1e-9) << "product " << p;
  }
  // groups are numbered by size
  for (size_t r = 2; r < rows.size(); r++)
    EXPECT_GE(std::stoi(rows[r - 1][1]), std::stoi(rows[r][1]));
}

}  // namespace

namespace {
TEST_F(Run, GroupsDefaultIsLouvainOverTheLinkedProducts) {
  std::string out = g->dir + "/groups_louvain.csv", err;
  ASSERT_EQ(aft::run(q(aft::cli()) + " groups --run " + q(g->run) + " --out " + q(out), nullptr, &err), 0)
      << err;
  EXPECT_NE(err.find("louvain"), std::string::npos) << err;
  std::set<int> linked, seen;
  auto assoc = csv_rows(g->run + "/associations.csv");
  for (size_t r = 1; r < assoc.size(); r++)
    if (assoc[r][4] == "complement" && std::stod(assoc[r][5]) > 0) {
      linked.insert(idx(assoc[r][0]));
      linked.insert(idx(assoc[r][2]));
    }
  auto rows = csv_rows(out);
  for (size_t r = 1; r < rows.size(); r++) {
    EXPECT_TRUE(seen.insert(idx(rows[r][3])).second) << "product in two groups";
    if (r > 1) {
      EXPECT_GE(std::stoi(rows[r - 1][1]), std::stoi(rows[r][1]));
    }
  }
  EXPECT_EQ(seen, linked);
}
}  // namespace
