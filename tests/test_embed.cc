// `affinity embed` and `affinity tokenize` end to end: output layout and order,
// equality with the library's in-memory path, several text columns, bad input,
// and memory bounded by the batch rather than the catalog.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
#include "io/h5util.h"
}

namespace {

std::string tiny_model(const std::string &dir) {
  std::string out = dir + "/tiny.h5";
  EXPECT_EQ(aft::run(aft::cli() + " import-hf '" + aft::source_dir() + "/tests/data/tiny_bert_a' --out '" + out + "'"), 0);
  return out;
}

std::string embed_cmd(const std::string &model, const std::string &catalog, const std::string &out,
                      const std::string &extra = "--text-column name") {
  return aft::cli() + " embed --model '" + model + "' --catalog '" + catalog + "' --id-column id " + extra +
         " --out '" + out + "'";
}

TEST(Embed, WritesIdsAndEmbeddingsInCatalogOrder) {
  std::string dir = aft::temp_dir("embed-basic"), model = tiny_model(dir);
  std::string csv = dir + "/cat.csv";
  aft::write_file(csv, "id,name,desc\r\n7,Organic Green Tea,loose leaf\r\n3,\"Milk, whole\",1 gal\r\nx9,中国 bread,\r\n\r\n42,,empty name\r\n");
  std::string out = dir + "/e.h5", err;
  ASSERT_EQ(aft::run(embed_cmd(model, csv, out), nullptr, &err), 0) << err;
  af_embeddings e;
  af_error ae{};
  ASSERT_EQ(af_embeddings_read(out.c_str(), &e, &ae), AF_OK) << ae.msg;
  ASSERT_EQ(e.n, 4);
  EXPECT_EQ(e.d, 64);
  EXPECT_STREQ(e.ids[0], "7");
  EXPECT_STREQ(e.ids[1], "3");
  EXPECT_STREQ(e.ids[2], "x9");
  EXPECT_STREQ(e.ids[3], "42");

  // The same texts through the library's in-memory path give the same rows.
  af_model m;
  ASSERT_EQ(af_model_load(model.c_str(), &m, &ae), AF_OK);
  af_device dev = af_device_cpu(0);
  af_encoder *enc;
  af_tokenizer *tok;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &ae), AF_OK);
  ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &ae), AF_OK);
  const char *texts[4] = {"Organic Green Tea", "Milk, whole", "中国 bread", ""};
  std::vector<float> ref(4 * 64);
  ASSERT_EQ(af_embed_texts(enc, tok, texts, 4, nullptr, ref.data(), &ae), AF_OK) << ae.msg;
  // Same model, texts and batch; the two processes' buffers differ in
  // alignment, which can change the BLAS kernel's edge handling and so the
  // last bits of a sum: 1e-6 is ~10 ulp of these O(0.1-1) values.
  for (int i = 0; i < 4 * 64; i++) ASSERT_NEAR(ref[i], e.emb[i], 1e-6) << i;
  // rows differ from each other (the texts differ)
  double d01 = 0;
  for (int c = 0; c < 64; c++) d01 += std::fabs(e.emb[c] - e.emb[64 + c]);
  EXPECT_GT(d01, 1e-3);

  // Two text columns are joined with one space.
  std::string out2 = dir + "/e2.h5";
  ASSERT_EQ(aft::run(embed_cmd(model, csv, out2, "--text-column name --text-column desc"), nullptr, &err), 0) << err;
  af_embeddings e2;
  ASSERT_EQ(af_embeddings_read(out2.c_str(), &e2, &ae), AF_OK);
  const char *joined[1] = {"Milk, whole 1 gal"};
  std::vector<float> r2(64);
  ASSERT_EQ(af_embed_texts(enc, tok, joined, 1, nullptr, r2.data(), &ae), AF_OK);
  for (int c = 0; c < 64; c++) ASSERT_NEAR(r2[c], e2.emb[64 + c], 1e-6);
  af_embeddings_free(&e);
  af_embeddings_free(&e2);
  af_tokenizer_free(tok);
  af_encoder_free(enc);
  af_model_free(&m);
}

void expect_fails(const std::string &cmd, const std::string &out, const std::vector<std::string> &mention) {
  std::string err;
  int rc = aft::run(cmd, nullptr, &err);
  EXPECT_NE(rc, 0) << err;
  EXPECT_LT(rc, 128) << "crashed: " << err;
  for (auto &m : mention) EXPECT_NE(err.find(m), std::string::npos) << "'" << m << "' not in: " << err;
  EXPECT_FALSE(aft::file_exists(out));
}

TEST(Embed, BadInputGivesClearErrorsAndNoOutput) {
  std::string dir = aft::temp_dir("embed-bad"), model = tiny_model(dir), out = dir + "/e.h5";
  std::string c1 = dir + "/dup.csv";
  aft::write_file(c1, "id,name\n1,a\n2,b\n1,c\n");
  expect_fails(embed_cmd(model, c1, out), out, {"dup.csv:4", "duplicate id '1'", "line 2"});
  std::string c2 = dir + "/cols.csv";
  aft::write_file(c2, "id,name\n1,a\n2,b,extra\n");
  expect_fails(embed_cmd(model, c2, out), out, {"cols.csv:3", "expected 2 fields, found 3"});
  std::string c3 = dir + "/nocol.csv";
  aft::write_file(c3, "id,title\n1,a\n");
  expect_fails(embed_cmd(model, c3, out), out, {"nocol.csv", "no column 'name'"});
  std::string c4 = dir + "/quote.csv";
  aft::write_file(c4, "id,name\n1,\"unterminated\n2,b\n");
  expect_fails(embed_cmd(model, c4, out), out, {"quote.csv:2"});
  std::string c5 = dir + "/utf8.csv";
  aft::write_file(c5, "id,name\n1,ok\n2,bad \xff\xfe byte\n");
  expect_fails(embed_cmd(model, c5, out), out, {"utf8.csv:3"});
  std::string c6 = dir + "/empty.csv";
  aft::write_file(c6, "id,name\n");
  expect_fails(embed_cmd(model, c6, out), out, {"empty.csv", "no rows"});
  std::string c7 = dir + "/emptyid.csv";
  aft::write_file(c7, "id,name\n,a\n");
  expect_fails(embed_cmd(model, c7, out), out, {"emptyid.csv:2", "empty id"});
  expect_fails(embed_cmd(dir + "/missing.h5", c1, out), out, {"missing.h5"});
  expect_fails(aft::cli() + " embed --model '" + model + "' --catalog '" + c1 + "' --id-column id --out '" + out + "'", out,
               {"--text-column"});
  for (auto &n : aft::list_dir(dir)) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
}

// Peak resident memory of a child running `cmd` via /bin/sh, in KiB.
long peak_rss_kib(const std::string &cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  return ru.ru_maxrss;
}

// A catalog 10x larger, with 2,000-character texts (36 MB more text), must not
// raise the peak memory by more than a small, catalog-independent amount: the
// texts are streamed, only the ids (part of the output) grow with N.
TEST(Embed, MemoryIsBoundedByTheBatchNotTheCatalog) {
  std::string dir = aft::temp_dir("embed-mem"), model = tiny_model(dir);
  std::string long_text;
  while (long_text.size() < 2000) long_text += "milk tea ";  // words of the tiny vocabulary
  auto make = [&](const std::string &path, int n) {
    std::string s = "id,name\n";
    s.reserve((size_t)n * 2010);
    for (int i = 0; i < n; i++) s += std::to_string(i) + "," + long_text + "\n";
    aft::write_file(path, s);
  };
  make(dir + "/small.csv", 2000);
  make(dir + "/large.csv", 20000);
  long small = peak_rss_kib(embed_cmd(model, dir + "/small.csv", dir + "/s.h5") + " 2>/dev/null");
  long large = peak_rss_kib(embed_cmd(model, dir + "/large.csv", dir + "/l.h5") + " 2>/dev/null");
  std::printf("peak RSS: 2,000 rows %ld KiB, 20,000 rows %ld KiB\n", small, large);
  // Holding the 18,000 extra texts alone would take 36 MB. What does grow is
  // the ids (output) and their duplicate check: ~130 bytes a row measured,
  // 2.3 MB here, far below the embeddings the output itself holds.
  EXPECT_LT(large - small, 16 * 1024) << "peak memory grew with the catalog";
}

// The pipelined catalog path (a second thread reads and tokenizes chunk c + 1
// while chunk c is encoded and written: the GPU default) writes the same
// file as the sequential one (the CPU default), bit for bit, across several
// chunks: 4,096-row chunks at the default batch, and 8,000-row chunks when the
// batch (16,000 tokens) would hold more than 4,096 rows (no 4,096-row cap;
// within 1e-6 of the 4,096-row run, whose batches are packed differently).
TEST(Embed, PipelinedCatalogEqualsSequential) {
  std::string dir = aft::temp_dir("embed-pipe"), model = tiny_model(dir);
  const char *words[] = {"milk", "tea", "bread", "green", "organic", "whole"};
  std::string s = "id,name\n";
  for (int i = 0; i < 8501; i++)
    s += std::to_string(i) + "," + words[i % 6] + " " + words[(i / 6) % 6] + (i % 7 ? " tea" : "") + "\n";
  aft::write_file(dir + "/cat.csv", s);
  af_model m;
  af_error ae{};
  ASSERT_EQ(af_model_load(model.c_str(), &m, &ae), AF_OK);
  af_device dev = af_device_cpu(0);
  const char *cols[1] = {"name"};
  af_catalog_source src = {(dir + "/cat.csv").c_str(), "id", cols, 1, ','};
  std::string p0 = dir + "/cat.csv";
  src.path = p0.c_str();
  std::vector<af_embeddings> got;
  for (int batch : {8192, 16000})
    for (int pipeline : {-1, 1}) {
      if (batch == 16000 && pipeline < 0) continue;
      af_embed_options o;
      af_embed_default_options(&o);
      o.pipeline = pipeline;
      o.batch_tokens = batch;
      std::string out = dir + "/e" + std::to_string(batch) + "_" + std::to_string(pipeline) + ".h5";
      int64_t n = 0;
      ASSERT_EQ(af_embed_catalog(&m, &dev, &src, &o, out.c_str(), &n, &ae), AF_OK) << ae.msg;
      EXPECT_EQ(n, 8501);
      got.emplace_back();
      ASSERT_EQ(af_embeddings_read(out.c_str(), &got.back(), &ae), AF_OK) << ae.msg;
    }
  for (size_t i = 1; i < got.size(); i++) {
    ASSERT_EQ(got[i].n, got[0].n);
    for (int64_t r = 0; r < got[0].n; r++) ASSERT_STREQ(got[i].ids[r], got[0].ids[r]);
    // same texts, same batches: bit-equal for one batch size (got[1]); a
    // different batch size (got[2]) packs rows differently, which can move the
    // last bits of the GEMM sums (1e-6: ~10 ulp of these O(0.1-1) values)
    for (int64_t j = 0; j < got[0].n * got[0].d; j++)
      ASSERT_NEAR(got[i].emb[j], got[0].emb[j], i == 1 ? 0.0 : 1e-6) << i << " " << j;
  }
  EXPECT_EQ(std::memcmp(got[1].emb, got[0].emb, sizeof(float) * got[0].n * got[0].d), 0);
  for (auto &e : got) af_embeddings_free(&e);
  // An error in a chunk the second thread prepares (a duplicate id in chunk 2)
  // is reported with its line, and no file is left.
  aft::write_file(dir + "/dup.csv", s + "5000,milk\n");
  std::string p1 = dir + "/dup.csv";
  src.path = p1.c_str();
  af_embed_options o;
  af_embed_default_options(&o);
  o.pipeline = 1;
  EXPECT_EQ(af_embed_catalog(&m, &dev, &src, &o, (dir + "/bad.h5").c_str(), nullptr, &ae),
            AF_ERR_FORMAT);
  EXPECT_NE(std::string(ae.msg).find("duplicate id '5000'"), std::string::npos) << ae.msg;
  EXPECT_FALSE(aft::file_exists(dir + "/bad.h5"));
  af_model_free(&m);
}

// The pipelined encode inside a chunk (pinned staging, every batch's uploads,
// kernels and download queued on the device's stream, one wait per chunk: the
// GPU default) against the plain one (synchronous copies per batch) on the
// CPU, where the async copies are memcpy: the same embeddings bit for bit
// (exact: the same kernels on the same packed batches; only the staging
// differs). 4,200 texts of 1..8 words in 512-token batches: two chunks (4,096
// rows, then 104), ~60 batches of varying B and T queued per chunk.
TEST(Embed, AsyncEncodeEqualsPlainBitForBit) {
  std::string dir = aft::temp_dir("embed-async"), model = tiny_model(dir);
  af_model m;
  af_error ae{};
  ASSERT_EQ(af_model_load(model.c_str(), &m, &ae), AF_OK);
  af_device dev = af_device_cpu(0);
  std::vector<std::string> store =
      aft::word_texts(4200, {"milk", "tea", "bread", "green", "organic", "whole", "中国"}, 8);
  std::vector<const char *> texts;
  for (auto &t : store) texts.push_back(t.c_str());
  const int N = (int)texts.size();
  std::vector<std::vector<float>> got;
  for (int pipeline : {-1, 1}) {
    af_encoder *enc;
    af_tokenizer *tok;
    ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &ae), AF_OK);
    ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &ae), AF_OK);
    af_embed_options o;
    af_embed_default_options(&o);
    o.pipeline = pipeline;
    o.batch_tokens = 512;
    got.emplace_back((size_t)N * 64, std::nanf(""));  // poisoned
    ASSERT_EQ(af_embed_texts(enc, tok, texts.data(), N, &o, got.back().data(), &ae), AF_OK) << ae.msg;
    af_tokenizer_free(tok);
    af_encoder_free(enc);
  }
  for (size_t j = 0; j < got[0].size(); j++) ASSERT_FALSE(std::isnan(got[1][j])) << j;
  EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), sizeof(float) * got[0].size()), 0);
  // rows differ (the comparison is not of constants)
  EXPECT_NE(std::memcmp(got[1].data(), got[1].data() + 64, sizeof(float) * 64), 0);

  // The encoder's async entry directly: the same bits as the plain forward;
  // a bad batch is refused before anything is queued.
  af_encoder *enc;
  ASSERT_EQ(af_encoder_create(&m, &dev, &enc, &ae), AF_OK);
  std::vector<int32_t> ids = {101, 7, 8, 102, 101, 9, 102}, cu = {0, 4, 7}, pos(7, -1);
  af_batch b = {2, 7, ids.data(), cu.data()};
  std::vector<float> a(2 * 64), p(2 * 64, std::nanf(""));
  ASSERT_EQ(af_encoder_forward(enc, &b, a.data(), nullptr, &ae), AF_OK) << ae.msg;
  ASSERT_EQ(af_encoder_forward_async(enc, &b, pos.data(), p.data(), &ae), AF_OK) << ae.msg;
  ASSERT_EQ(af_dev_sync(&dev, &ae), AF_OK);
  EXPECT_EQ(std::memcmp(a.data(), p.data(), sizeof(float) * a.size()), 0);
  EXPECT_EQ(pos, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2}));
  ids[2] = 1 << 30;
  EXPECT_EQ(af_encoder_forward_async(enc, &b, pos.data(), p.data(), &ae), AF_ERR_ARG);
  EXPECT_NE(std::string(ae.msg).find("out of range"), std::string::npos) << ae.msg;
  af_encoder_free(enc);
  af_model_free(&m);
}

TEST(Tokenize, PrintsIdsPerLine) {
  std::string dir = aft::temp_dir("tok-cli"), model = tiny_model(dir), out, err;
  aft::write_file(dir + "/in.txt", "chocolate milk\n\nOrganic GREEN tea\n");
  ASSERT_EQ(aft::run(aft::cli() + " tokenize --model '" + model + "' < '" + dir + "/in.txt'", &out, &err), 0) << err;
  // [CLS]=2, [SEP]=3 in the tiny vocabulary; an empty line is [CLS] [SEP]
  std::vector<std::string> lines;
  size_t p = 0, q;
  while ((q = out.find('\n', p)) != std::string::npos) { lines.push_back(out.substr(p, q - p)); p = q + 1; }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "2 3");
  EXPECT_EQ(lines[0].substr(0, 2), "2 ");
  EXPECT_EQ(lines[0].substr(lines[0].size() - 2), " 3");
  ASSERT_EQ(aft::run(aft::cli() + " tokenize --model '" + model + "' --max-len 4 < '" + dir + "/in.txt'", &out, &err), 0);
  EXPECT_EQ(std::count(out.begin(), out.begin() + out.find('\n'), ' '), 3);  // 4 ids
  aft::write_file(dir + "/bad.txt", "ok\nbad \xff\n");
  EXPECT_NE(aft::run(aft::cli() + " tokenize --model '" + model + "' < '" + dir + "/bad.txt'", &out, &err), 0);
  EXPECT_NE(err.find("line 2"), std::string::npos) << err;
}

}  // namespace
