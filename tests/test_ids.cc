// The one id rule (docs/data-formats.md): every reader of catalog ids -- the
// catalog loader, the baskets loader, `affinity embed`, and the matching of an
// embeddings file to a catalog -- trims an id and collapses each inner run of
// ASCII whitespace to one space; everything else (quotes, which the CSV
// parser has already unquoted, and any non-ASCII byte, NBSP included) is kept
// byte for byte. Checked end to end: embed, then eval and associate on
// baskets that spell the ids with other spacing, and an embeddings file with
// verbatim ids (as an older `embed` wrote them).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
}

namespace {

std::string q(const std::string &s) { return "'" + s + "'"; }

// (raw CSV field, the id it must become)
const std::vector<std::pair<std::string, std::string>> kIds = {
    {"\"  lead\"", "lead"},
    {"\"trail  \"", "trail"},
    {"\"in \t  ner\"", "in ner"},
    {"Coffee granules ", "Coffee granules"},
    {"\"\"\"quoted\"\", id\"", "\"quoted\", id"},
    {"caf\xc3\xa9", "caf\xc3\xa9"},
    {"\"\xe6\x97\xa5\xe6\x9c\xac  \xe8\x8c\xb6 \"", "\xe6\x97\xa5\xe6\x9c\xac \xe8\x8c\xb6"},
    {"nb\xc2\xa0", "nb\xc2\xa0"},  // U+00A0 is not ASCII whitespace: kept
    {"nb", "nb"},                  // so this is another id
};

struct IdFiles {
  std::string dir, catalog, baskets, model;
  explicit IdFiles(const char *tag) : dir(aft::temp_dir(tag)) {
    catalog = dir + "/catalog.csv";
    baskets = dir + "/baskets.csv";
    std::string c = "product_id,product_name\n";
    for (size_t i = 0; i < kIds.size(); i++) c += kIds[i].first + ",item " + std::to_string(i) + "\n";
    aft::write_file(catalog, c);
    // baskets spell the ids normalised, or with other spacing
    std::string b = "order_id,product_id\n";
    for (int k = 0; k < 40; k++)
      for (size_t i = 0; i < kIds.size(); i++)
        if ((k + i) % 3 != 0)
          b += "o" + std::to_string(k) + "," + (i == 0 ? "\" lead \"" : kIds[i].first) + "\n";
    aft::write_file(baskets, b);
    af_model m{};
    af_error err{};
    EXPECT_EQ(af_model_import_hf((aft::source_dir() + "/tests/data/tiny_bert_a").c_str(), &m, &err), AF_OK);
    model = dir + "/tiny.h5";
    EXPECT_EQ(af_model_save(model.c_str(), &m, &err), AF_OK) << err.msg;
    af_model_free(&m);
  }
  std::string input(const std::string &cmd) const {
    return aft::cli() + " " + cmd + " --catalog " + q(catalog) +
           " --id-column product_id --text-column product_name --baskets " + q(baskets);
  }
};

TEST(IdRule, CatalogLoaderNormalises) {
  IdFiles f("ids-catalog");
  const char *text[1] = {"product_name"};
  af_catalog_options o = {"product_id", text, 1, nullptr, ',', nullptr};
  af_catalog c{};
  af_error err{};
  ASSERT_EQ(af_catalog_load(f.catalog.c_str(), &o, &c, &err), AF_OK) << err.msg;
  ASSERT_EQ(c.n, (int64_t)kIds.size());
  for (size_t i = 0; i < kIds.size(); i++) EXPECT_EQ(std::string(c.ids[i]), kIds[i].second) << i;
  af_catalog_free(&c);
}

TEST(IdRule, EmbedWritesTheCatalogsIdsAndEvalAndAssociateMatchThem) {
  IdFiles f("ids-embed");
  std::string emb = f.dir + "/e.h5", se;
  ASSERT_EQ(aft::run(aft::cli() + " embed --model " + q(f.model) + " --catalog " + q(f.catalog) +
                         " --id-column product_id --text-column product_name --out " + q(emb),
                     nullptr, &se), 0) << se;
  af_embeddings e{};
  af_error err{};
  ASSERT_EQ(af_embeddings_read(emb.c_str(), &e, &err), AF_OK) << err.msg;
  ASSERT_EQ(e.n, (int64_t)kIds.size());
  for (size_t i = 0; i < kIds.size(); i++) EXPECT_EQ(std::string(e.ids[i]), kIds[i].second) << i;
  std::string out = f.dir + "/eval.json";
  EXPECT_EQ(aft::run(f.input("eval") + " --methods popularity,text --embeddings " + q(emb) +
                         " --bootstrap 0 --out " + q(out), nullptr, &se), 0) << se;
  // an embeddings file with the ids verbatim (as `embed` wrote them before the rule)
  std::vector<std::string> raw = {"  lead", "trail  ", "in \t  ner", "Coffee granules ",
                                   "\"quoted\", id", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac  \xe8\x8c\xb6 ",
                                   "nb\xc2\xa0", "nb"};
  std::vector<char *> rp;
  for (auto &s : raw) rp.push_back(const_cast<char *>(s.c_str()));
  char **orig = e.ids;
  e.ids = rp.data();  // the vectors stay; only the ids change
  std::string old = f.dir + "/old.h5";
  af_status wst = af_embeddings_write(old.c_str(), &e, &err);
  e.ids = orig;
  ASSERT_EQ(wst, AF_OK) << err.msg;
  std::string assoc = f.dir + "/a.csv";
  EXPECT_EQ(aft::run(f.input("associate") + " --embeddings " + q(old) + " --out " + q(assoc),
                     nullptr, &se), 0) << se;
  EXPECT_NE(aft::read_file(assoc).find("\"\"\"quoted\"\", id\""), std::string::npos);
  EXPECT_EQ(aft::run(f.input("eval") + " --methods fusion --embeddings " + q(old) +
                         " --bootstrap 0 --out " + q(out), nullptr, &se), 0) << se;
  af_embeddings_free(&e);
}

TEST(IdRule, IdsEqualAfterNormalisationAreDuplicates) {
  std::string dir = aft::temp_dir("ids-dup"), cat = dir + "/c.csv", se;
  aft::write_file(cat, "product_id,product_name\na b,x\n\" a  b \",y\n");
  const char *text[1] = {"product_name"};
  af_catalog_options o = {"product_id", text, 1, nullptr, ',', nullptr};
  af_catalog c{};
  af_error err{};
  EXPECT_NE(af_catalog_load(cat.c_str(), &o, &c, &err), AF_OK);
  EXPECT_NE(std::string(err.msg).find("duplicate id 'a b'"), std::string::npos) << err.msg;
  IdFiles f("ids-dup-model");
  EXPECT_NE(aft::run(aft::cli() + " embed --model " + q(f.model) + " --catalog " + q(cat) +
                         " --id-column product_id --text-column product_name --out " + q(dir + "/e.h5"),
                     nullptr, &se), 0);
  EXPECT_NE(se.find("duplicate id 'a b'"), std::string::npos) << se;
  EXPECT_FALSE(aft::file_exists(dir + "/e.h5"));
}

}  // namespace
