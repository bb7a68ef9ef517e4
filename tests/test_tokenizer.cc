// The BERT WordPiece tokenizer against Hugging Face's BertTokenizerFast.
//
// Every expected id sequence here comes from transformers/tokenizers via
// tools/reference/make_tokenizer_fixtures.py (fixtures in tests/data/tokenizer/);
// the texts are read at test time from ../shared/datasets exactly as the script
// read them. Comparisons are exact: tokenization has no tolerance.
#include <gtest/gtest.h>

#include <cJSON.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "affinity.h"
#include "nn/unicode_bert.h"
}
#include "test_util.h"

namespace {

std::string fixture_dir() { return aft::source_dir() + "/tests/data/tokenizer"; }

struct TokDeleter {
  void operator()(af_tokenizer *t) const { af_tokenizer_free(t); }
};
using TokPtr = std::unique_ptr<af_tokenizer, TokDeleter>;

std::string vocab_path(const std::string &name) {
  if (name == "marks") return fixture_dir() + "/marks_vocab.txt";  // written by the fixture script
  return aft::shared_dir() + "/vocab/bert-base-" + name + "/vocab.txt";
}

TokPtr load(const std::string &vocab, int lowercase, int strip, int chinese, int max_len = 512) {
  af_tokenizer_options o;
  af_tokenizer_default_options(&o);
  o.lowercase = lowercase;
  o.strip_accents = strip;
  o.tokenize_chinese_chars = chinese;
  o.max_len = max_len;
  af_tokenizer *t = nullptr;
  af_error err;
  af_status st = af_tokenizer_from_vocab_file(vocab_path(vocab).c_str(), &o, &t, &err);
  EXPECT_EQ(st, AF_OK) << err.msg;
  return TokPtr(t);
}

// The configurations of the fixture script (its CONFIGS).
struct Config {
  std::string vocab;
  int lowercase, strip, chinese;
};
const std::map<std::string, Config> &configs() {
  static const std::map<std::string, Config> c = {
      {"uncased", {"uncased", 1, -1, 1}},        {"uncased_nolower", {"uncased", 0, -1, 1}},
      {"uncased_keepaccents", {"uncased", 1, 0, 1}}, {"uncased_nochinese", {"uncased", 1, -1, 0}},
      {"chinese", {"chinese", 0, -1, 1}},        {"chinese_lower", {"chinese", 1, -1, 1}},
      {"marks", {"marks", 0, 1, 1}},
  };
  return c;
}

std::vector<int32_t> encode(const af_tokenizer *t, const std::string &text, int cap = 4096) {
  std::vector<int32_t> ids(cap);
  int n = 0;
  af_error err;
  af_status st = af_tokenizer_encode(t, text.data(), text.size(), ids.data(), cap, &n, &err);
  EXPECT_EQ(st, AF_OK) << err.msg << " for text: " << text;
  ids.resize(st == AF_OK ? n : 0);
  return ids;
}

uint64_t fnv1a64(const void *p, size_t n, uint64_t h = 0xCBF29CE484222325ULL) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
  return h;
}

// Low 32 bits of FNV-1a-64 over (n, ids...) as int32 LE (the script's ids_hash32).
uint32_t ids_hash32(const std::vector<int32_t> &ids) {
  int32_t n = static_cast<int32_t>(ids.size());
  uint64_t h = fnv1a64(&n, 4);
  h = fnv1a64(ids.data(), ids.size() * 4, h);
  return static_cast<uint32_t>(h);
}

// Lines split on \n, one trailing \r removed, no empty piece after a final \n.
std::vector<std::string> read_lines(const std::string &path) {
  std::string data = aft::read_file(path);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    size_t end = nl == std::string::npos ? data.size() : nl;
    std::string line = data.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

// Column `col` of a CSV file with a header row (RFC 4180 quoting, CRLF records).
std::vector<std::string> csv_column(const std::string &path, size_t col) {
  std::string data = aft::read_file(path);
  std::vector<std::string> out, row;
  std::string field;
  bool quoted = false, header = true;
  auto end_row = [&] {
    row.push_back(field);
    field.clear();
    if (!header) out.push_back(row.size() > col ? row[col] : std::string());
    header = false;
    row.clear();
  };
  for (size_t i = 0; i < data.size(); i++) {
    char c = data[i];
    if (quoted) {
      if (c == '"' && i + 1 < data.size() && data[i + 1] == '"') {
        field += '"';
        i++;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
      // the \n ends the row
    } else if (c == '\n') {
      end_row();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !row.empty()) end_row();
  return out;
}

std::vector<std::string> corpus(const std::string &name) {
  std::string ch = aft::shared_dir() + "/chinese/";
  if (name == "instacart") return csv_column(aft::shared_dir() + "/instacart/products.csv", 1);
  if (name == "titles") return read_lines(ch + "product_titles.txt");
  if (name == "taxonomy") return read_lines(ch + "category_taxonomy.txt");
  if (name == "jd") {
    std::vector<std::string> out;
    for (const std::string &line : read_lines(ch + "jd_fashion_descriptions.txt")) {
      size_t a = line.find('\t'), b = line.find('\t', a + 1), c = line.find('\t', b + 1);
      out.push_back(line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1));
    }
    return out;
  }
  ADD_FAILURE() << "unknown corpus " << name;
  return {};
}

std::string hex_decode(const std::string &hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string ids_str(const std::vector<int32_t> &ids) {
  std::ostringstream s;
  for (int32_t id : ids) s << id << ' ';
  return s.str();
}

// ---- exhaustive per-code-point check ---------------------------------------------

// Every code point alone through BertNormalizer, each output tagged with
// BertPreTokenizer's class, hashed per 4096-code-point block as the script does.
TEST(Tokenizer, UnicodeBlocksMatchHuggingFace) {
  std::vector<std::string> lines = read_lines(fixture_dir() + "/unicode_blocks.txt");
  int checked = 0, bad = 0;
  for (const std::string &line : lines) {
    if (line.empty() || line[0] == '#') continue;
    int lower, strip, chinese, block;
    unsigned long long want;
    ASSERT_EQ(sscanf(line.c_str(), "%d %d %d %d %llx", &lower, &strip, &chinese, &block, &want), 5) << line;
    uint64_t h = 0xCBF29CE484222325ULL;
    for (int32_t cp = block * 4096; cp < (block + 1) * 4096; cp++) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      int32_t out[AF_BERT_NORM_MAX];
      int n = af_bert_normalize_cp(cp, lower, strip, chinese, out);
      uint32_t words[AF_BERT_NORM_MAX + 1];
      for (int i = 0; i < n; i++)
        words[i] = static_cast<uint32_t>(out[i]) | (static_cast<uint32_t>(af_bert_char_class(out[i])) << 24);
      words[n] = 0xFFFFFFFFu;
      h = fnv1a64(words, (n + 1) * 4, h);
    }
    checked++;
    if (h != want && ++bad <= 10)
      ADD_FAILURE() << "code points U+" << std::hex << block * 4096 << "..U+" << (block + 1) * 4096 - 1
                    << std::dec << " differ (lowercase " << lower << " strip " << strip << " chinese " << chinese
                    << ")";
  }
  EXPECT_EQ(checked, 5 * 272);  // 5 normalizer configs x 0x110000 / 4096 blocks
  EXPECT_EQ(bad, 0);
}

// A few single code points spelled out, so a table regression reads plainly.
// Expected values are from the reference (see edge_cases.json, unicode_blocks.txt).
TEST(Tokenizer, UnicodeSpotChecks) {
  int32_t out[AF_BERT_NORM_MAX];
  ASSERT_EQ(af_bert_normalize_cp(0x130, 1, 0, 1, out), 2);  // İ -> i + U+0307
  EXPECT_EQ(out[0], 'i');
  EXPECT_EQ(out[1], 0x307);
  EXPECT_EQ(af_bert_normalize_cp(0x200D, 1, 1, 1, out), 0);  // ZWJ (Cf) dropped
  EXPECT_EQ(af_bert_normalize_cp(0x4E2D, 0, 0, 1, out), 3);  // 中 padded with spaces
  EXPECT_EQ(af_bert_normalize_cp(0x2B820, 0, 0, 1, out), 1);  // not in the crate's CJK ranges
  EXPECT_EQ(af_bert_char_class(0xFF0C), AF_BERT_PUNCT);      // full-width comma
  EXPECT_EQ(af_bert_char_class(0x1F355), AF_BERT_OTHER);     // emoji (So)
  EXPECT_EQ(af_bert_char_class(0x2E43), AF_BERT_OTHER);      // Po since Unicode 9: not in the crate's tables
}

// ---- whole texts ------------------------------------------------------------------

TEST(Tokenizer, EdgeCasesMatchHuggingFace) {
  std::string json = aft::read_file(fixture_dir() + "/edge_cases.json");
  cJSON *root = cJSON_Parse(json.c_str());
  ASSERT_NE(root, nullptr);
  cJSON *cases = cJSON_GetObjectItem(root, "cases");
  ASSERT_TRUE(cJSON_IsArray(cases));
  int n_cases = 0, n_checked = 0;
  std::map<std::string, TokPtr> toks;
  cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    n_cases++;
    std::string name = cJSON_GetObjectItem(c, "name")->valuestring;
    std::string text = hex_decode(cJSON_GetObjectItem(c, "hex")->valuestring);
    int max_len = cJSON_GetObjectItem(c, "max_len")->valueint;
    cJSON *per = cJSON_GetObjectItem(c, "ids");
    for (const auto &[cname, cfg] : configs()) {
      cJSON *want_json = cJSON_GetObjectItem(per, cname.c_str());
      ASSERT_NE(want_json, nullptr) << cname;
      std::vector<int32_t> want;
      cJSON *v;
      cJSON_ArrayForEach(v, want_json) want.push_back(v->valueint);
      std::string key = cname + "/" + std::to_string(max_len);
      if (!toks.count(key)) toks[key] = load(cfg.vocab, cfg.lowercase, cfg.strip, cfg.chinese, max_len);
      std::vector<int32_t> got = encode(toks[key].get(), text, max_len);
      EXPECT_EQ(got, want) << "case '" << name << "' config " << cname << "\n  got  " << ids_str(got)
                           << "\n  want " << ids_str(want);
      n_checked++;
    }
  }
  cJSON_Delete(root);
  EXPECT_GE(n_cases, 50);
  EXPECT_EQ(n_checked, n_cases * static_cast<int>(configs().size()));
}

// Every text of every corpus, hashed; >= 51,000 texts per configuration.
TEST(Tokenizer, CorporaMatchHuggingFace) {
  int files = 0;
  long texts = 0;
  for (const char *cname : {"instacart", "titles", "jd", "taxonomy"}) {
    std::vector<std::string> items = corpus(cname);
    for (const auto &[config, cfg] : configs()) {
      std::string path = fixture_dir() + "/texts." + cname + "." + config + ".h32";
      if (!aft::file_exists(path)) continue;
      std::string data = aft::read_file(path);
      ASSERT_GE(data.size(), 8u);
      ASSERT_EQ(data.substr(0, 4), "AFH1") << path;
      uint32_t count;
      memcpy(&count, data.data() + 4, 4);
      ASSERT_EQ(count, items.size()) << path << ": the corpus was read differently";
      ASSERT_EQ(data.size(), 8 + 4 * static_cast<size_t>(count)) << path;
      TokPtr tok = load(cfg.vocab, cfg.lowercase, cfg.strip, cfg.chinese);
      int bad = 0;
      for (size_t i = 0; i < items.size(); i++) {
        uint32_t want;
        memcpy(&want, data.data() + 8 + 4 * i, 4);
        std::vector<int32_t> got = encode(tok.get(), items[i]);
        if (ids_hash32(got) != want && ++bad <= 5)
          ADD_FAILURE() << cname << "/" << config << " text " << i << " '" << items[i] << "' -> " << ids_str(got);
      }
      EXPECT_EQ(bad, 0) << cname << "/" << config;
      files++;
      texts += static_cast<long>(items.size());
    }
  }
  EXPECT_GE(files, 12);
  EXPECT_GE(texts, 3 * 49688);
}

// Full id sequences for a few hundred texts (all non-ASCII Instacart names).
TEST(Tokenizer, FullIdsMatchHuggingFace) {
  std::map<std::string, std::vector<std::string>> corpora;
  std::map<std::string, TokPtr> toks;
  int n = 0;
  for (const std::string &line : read_lines(fixture_dir() + "/full_ids.txt")) {
    std::istringstream s(line);
    std::string config, cname;
    size_t index, count;
    s >> config >> cname >> index >> count;
    std::vector<int32_t> want(count);
    for (auto &id : want) s >> id;
    ASSERT_TRUE(s) << line;
    if (!corpora.count(cname)) corpora[cname] = corpus(cname);
    const Config &cfg = configs().at(config);
    if (!toks.count(config)) toks[config] = load(cfg.vocab, cfg.lowercase, cfg.strip, cfg.chinese);
    ASSERT_LT(index, corpora[cname].size());
    const std::string &text = corpora[cname][index];
    std::vector<int32_t> got = encode(toks[config].get(), text);
    EXPECT_EQ(got, want) << config << " " << cname << " " << index << " '" << text << "'";
    n++;
  }
  EXPECT_GE(n, 300);
}

// ---- errors and API ---------------------------------------------------------------

TEST(Tokenizer, InvalidUtf8IsFormatError) {
  TokPtr tok = load("uncased", 1, -1, 1, 8);
  const std::vector<std::string> bad = {
      "\xff",         "abc\x80",        "\xc3",               "\xc0\xaf",  // stray, truncated, overlong '/'
      "\xe0\x80\xaf", "\xed\xa0\x80",   "\xf4\x90\x80\x80",   "\xf8\x88\x80\x80\x80",
      "ok \xe4\xb8",  // truncated 3-byte sequence at the end
      // invalid after the truncation point (max_len 8) must still be reported
      "one two three four five six seven eight nine \xfe",
  };
  for (const std::string &text : bad) {
    int32_t ids[16];
    int n = -1;
    af_error err;
    EXPECT_EQ(af_tokenizer_encode(tok.get(), text.data(), text.size(), ids, 16, &n, &err), AF_ERR_FORMAT)
        << "text of " << text.size() << " bytes";
    EXPECT_NE(strstr(err.msg, "UTF-8"), nullptr) << err.msg;
  }
}

TEST(Tokenizer, VocabErrorsNameTheProblem) {
  std::string dir = aft::temp_dir("tokenizer_vocab");
  af_tokenizer *t = nullptr;
  af_error err;
  std::string no_unk = dir + "/no_unk.txt";
  aft::write_file(no_unk, "[PAD]\n[CLS]\n[SEP]\nhello\n");
  EXPECT_EQ(af_tokenizer_from_vocab_file(no_unk.c_str(), nullptr, &t, &err), AF_ERR_FORMAT);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(strstr(err.msg, "[UNK]"), nullptr) << err.msg;
  EXPECT_NE(strstr(err.msg, "no_unk.txt"), nullptr) << err.msg;

  std::string bad_utf8 = dir + "/bad.txt";
  aft::write_file(bad_utf8, "[PAD]\n[UNK]\nbad\xc3(\n[CLS]\n[SEP]\n");
  EXPECT_EQ(af_tokenizer_from_vocab_file(bad_utf8.c_str(), nullptr, &t, &err), AF_ERR_FORMAT);
  EXPECT_NE(strstr(err.msg, "bad.txt:3:"), nullptr) << err.msg;

  EXPECT_EQ(af_tokenizer_from_vocab_file((dir + "/missing.txt").c_str(), nullptr, &t, &err), AF_ERR_IO);
  EXPECT_NE(strstr(err.msg, "missing.txt"), nullptr) << err.msg;

  const char *vocab[] = {"[CLS]", "[SEP]", "x"};
  EXPECT_EQ(af_tokenizer_create(vocab, 3, nullptr, &t, &err), AF_ERR_FORMAT);
  EXPECT_NE(strstr(err.msg, "[UNK]"), nullptr) << err.msg;

  af_tokenizer_options o;
  af_tokenizer_default_options(&o);
  o.max_len = 1;
  const char *ok[] = {"[CLS]", "[SEP]", "[UNK]"};
  EXPECT_EQ(af_tokenizer_create(ok, 3, &o, &t, &err), AF_ERR_ARG);
}

// Line endings as Python's universal newlines read them; later duplicates win
// the token -> id lookup (load_vocab builds a dict).
TEST(Tokenizer, VocabFileLinesAndDuplicates) {
  std::string path = aft::temp_dir("tokenizer_lines") + "/v.txt";
  aft::write_file(path, "[PAD]\r\n[UNK]\r[CLS]\n[SEP]\r\nhello\nworld\nhello\n\nlast");
  af_tokenizer *t = nullptr;
  af_error err;
  ASSERT_EQ(af_tokenizer_from_vocab_file(path.c_str(), nullptr, &t, &err), AF_OK) << err.msg;
  TokPtr tok(t);
  EXPECT_EQ(af_tokenizer_vocab_size(t), 9);
  EXPECT_STREQ(af_tokenizer_token(t, 2), "[CLS]");
  EXPECT_STREQ(af_tokenizer_token(t, 7), "");
  EXPECT_STREQ(af_tokenizer_token(t, 8), "last");
  EXPECT_EQ(af_tokenizer_token(t, 9), nullptr);
  EXPECT_EQ(af_tokenizer_token(t, -1), nullptr);
  EXPECT_EQ(af_tokenizer_token_id(t, "hello"), 6);
  EXPECT_EQ(af_tokenizer_token_id(t, "nope"), -1);
  EXPECT_EQ(af_tokenizer_cls_id(t), 2);
  EXPECT_EQ(af_tokenizer_sep_id(t), 3);
  EXPECT_EQ(af_tokenizer_unk_id(t), 1);
  EXPECT_EQ(af_tokenizer_pad_id(t), 0);
  EXPECT_EQ(encode(t, "hello world"), (std::vector<int32_t>{2, 6, 5, 3}));
}

TEST(Tokenizer, AccessorsOnBertVocab) {
  TokPtr tok = load("uncased", 1, -1, 1);
  const af_tokenizer *t = tok.get();
  EXPECT_EQ(af_tokenizer_vocab_size(t), 30522);
  // Ids of bert-base-uncased's special tokens, as its config.json and HF give them.
  EXPECT_EQ(af_tokenizer_pad_id(t), 0);
  EXPECT_EQ(af_tokenizer_unk_id(t), 100);
  EXPECT_EQ(af_tokenizer_cls_id(t), 101);
  EXPECT_EQ(af_tokenizer_sep_id(t), 102);
  EXPECT_EQ(af_tokenizer_token_id(t, "##ing"), 2075);
  EXPECT_STREQ(af_tokenizer_token(t, 2075), "##ing");
  const af_tokenizer_options *o = af_tokenizer_options_of(t);
  EXPECT_EQ(o->strip_accents, -1);
  EXPECT_EQ(o->max_len, 512);
}

TEST(Tokenizer, SmallCapacityIsAnError) {
  TokPtr tok = load("uncased", 1, -1, 1, 512);
  std::string text = "one two three four";
  int32_t ids[6];
  int n = 0;
  af_error err;
  EXPECT_EQ(af_tokenizer_encode(tok.get(), text.data(), text.size(), ids, 5, &n, &err), AF_ERR_ARG);
  EXPECT_EQ(n, 0);
  ASSERT_EQ(af_tokenizer_encode(tok.get(), text.data(), text.size(), ids, 6, &n, &err), AF_OK) << err.msg;
  EXPECT_EQ(n, 6);
  // Not NUL-terminated: only len bytes are read.
  ASSERT_EQ(af_tokenizer_encode(tok.get(), text.data(), 3, ids, 6, &n, &err), AF_OK);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(ids[1], af_tokenizer_token_id(tok.get(), "one"));
}

// encode is reentrant: two threads over the catalog give the single-thread ids.
TEST(Tokenizer, ConcurrentEncodeIsDeterministic) {
  TokPtr tok = load("uncased", 1, -1, 1);
  std::vector<std::string> items = corpus("instacart");
  items.resize(std::min<size_t>(items.size(), 20000));
  std::vector<uint32_t> serial(items.size()), parallel(items.size());
  for (size_t i = 0; i < items.size(); i++) serial[i] = ids_hash32(encode(tok.get(), items[i]));
  auto work = [&](size_t begin, size_t step) {
    std::vector<int32_t> ids(512);
    for (size_t i = begin; i < items.size(); i += step) {
      int n = 0;
      af_tokenizer_encode(tok.get(), items[i].data(), items[i].size(), ids.data(), 512, &n, nullptr);
      ids.resize(n);
      parallel[i] = ids_hash32(ids);
      ids.resize(512);
    }
  };
  std::thread a(work, 0, 2), b(work, 1, 2);
  a.join();
  b.join();
  EXPECT_EQ(serial, parallel);
}

}  // namespace
