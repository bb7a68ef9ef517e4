// CSV reader and string map: RFC 4180 cases written out by hand (the expected
// fields are read off the input text, not produced by the reader), error
// messages with file and line, and the real Instacart catalog.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "io/csv.h"
#include "base/strmap.h"
}

namespace {
using Rows = std::vector<std::vector<std::string>>;

// Reads every record of `data` (written to a temp file); returns the status of
// the first failure (message in *msg) or AF_OK.
af_status read_all(const std::string &data, Rows *rows, std::string *msg, char delim = ',',
                   std::vector<int64_t> *lines = nullptr) {
  static int counter = 0;
  std::string dir = aft::temp_dir("csv" + std::to_string(counter++));
  std::string path = dir + "/in.csv";
  aft::write_file(path, data);
  af_error err{};
  af_csv *r = nullptr;
  af_status st = af_csv_open(path.c_str(), delim, &r, &err);
  if (st != AF_OK) {
    *msg = err.msg;
    return st;
  }
  for (;;) {
    char **f;
    int nf, eof;
    st = af_csv_next(r, &f, &nf, &eof, &err);
    if (st != AF_OK) {
      *msg = err.msg;
      break;
    }
    if (eof) {
      EXPECT_EQ(nf, 0);
      break;
    }
    rows->emplace_back(f, f + nf);
    if (lines) lines->push_back(af_csv_record_line(r));
  }
  af_csv_close(r);
  return st;
}

TEST(Csv, QuotedFieldsEscapesNewlinesAndCrlf) {
  Rows rows;
  std::string msg;
  std::vector<int64_t> lines;
  ASSERT_EQ(read_all("a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n2,\"two\nlines\",\r\n3,,\"\"\n",
                     &rows, &msg, ',', &lines),
            AF_OK)
      << msg;
  Rows want = {{"a", "b", "c"}, {"1", "x, y", "say \"hi\""}, {"2", "two\nlines", ""}, {"3", "", ""}};
  EXPECT_EQ(rows, want);
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2, 3, 5}));
}

TEST(Csv, BomSkippedNoFinalNewlineAndTabDelimiter) {
  Rows rows;
  std::string msg;
  ASSERT_EQ(read_all("\xEF\xBB\xBFid\tname\n7\tcaf\xC3\xA9", &rows, &msg, '\t'), AF_OK) << msg;
  Rows want = {{"id", "name"}, {"7", "caf\xC3\xA9"}};
  EXPECT_EQ(rows, want);
}

TEST(Csv, BlankLineIsOneEmptyField) {
  Rows rows;
  std::string msg;
  ASSERT_EQ(read_all("a\n\nb\n", &rows, &msg), AF_OK);
  Rows want = {{"a"}, {""}, {"b"}};
  EXPECT_EQ(rows, want);
}

TEST(Csv, EmptyFileIsImmediateEof) {
  Rows rows;
  std::string msg;
  ASSERT_EQ(read_all("", &rows, &msg), AF_OK);
  EXPECT_TRUE(rows.empty());
}

TEST(Csv, UnterminatedQuoteNamesRecordStartLine) {
  Rows rows;
  std::string msg;
  EXPECT_EQ(read_all("a,b\n1,2\n3,\"open\nmore\nstill\n", &rows, &msg), AF_ERR_FORMAT);
  EXPECT_NE(msg.find("in.csv:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unterminated"), std::string::npos) << msg;
}

TEST(Csv, InvalidUtf8NamesLine) {
  Rows rows;
  std::string msg;
  EXPECT_EQ(read_all("a,b\n1,ok\n2,bad\xC3(\n", &rows, &msg), AF_ERR_FORMAT);
  EXPECT_NE(msg.find("in.csv:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  // Inside a multi-line quoted field the line of the bad byte is named.
  rows.clear();
  EXPECT_EQ(read_all("a\n\"x\ny\xFF\"\n", &rows, &msg), AF_ERR_FORMAT);
  EXPECT_NE(msg.find("in.csv:3:"), std::string::npos) << msg;
}

TEST(Csv, Utf8Validator) {
  EXPECT_TRUE(af_utf8_valid("plain ascii text, long enough for the fast path", 47));
  EXPECT_TRUE(af_utf8_valid("\xE4\xB8\xAD\xE6\x96\x87", 6));       // 中文
  EXPECT_TRUE(af_utf8_valid("\xF0\x9F\x98\x80", 4));               // U+1F600
  EXPECT_FALSE(af_utf8_valid("\xC0\xAF", 2));                      // overlong '/'
  EXPECT_FALSE(af_utf8_valid("\xED\xA0\x80", 3));                  // surrogate
  EXPECT_FALSE(af_utf8_valid("\xF4\x90\x80\x80", 4));              // above U+10FFFF
  EXPECT_FALSE(af_utf8_valid("\xE4\xB8", 2));                      // truncated
}

TEST(Csv, TextAfterClosingQuoteIsAnError) {
  Rows rows;
  std::string msg;
  EXPECT_EQ(read_all("a,b\n\"x\"y,2\n", &rows, &msg), AF_ERR_FORMAT);
  EXPECT_NE(msg.find("in.csv:2:"), std::string::npos) << msg;
}

TEST(Csv, MissingFileIsIoError) {
  af_csv *r = nullptr;
  af_error err{};
  EXPECT_EQ(af_csv_open("/nonexistent/x.csv", ',', &r, &err), AF_ERR_IO);
  EXPECT_NE(std::string(err.msg).find("/nonexistent/x.csv"), std::string::npos);
  EXPECT_EQ(r, nullptr);
}

TEST(Csv, ColumnLookupListsColumns) {
  char a[] = "order_id", b[] = "product_id";
  char *hdr[] = {a, b};
  int idx = -1;
  af_error err{};
  EXPECT_EQ(af_csv_column(hdr, 2, "product_id", "f.csv", &idx, &err), AF_OK);
  EXPECT_EQ(idx, 1);
  EXPECT_EQ(af_csv_column(hdr, 2, "item", "f.csv", &idx, &err), AF_ERR_FORMAT);
  EXPECT_STREQ(err.msg, "f.csv: no column 'item' (columns: order_id, product_id)");
}

TEST(Csv, NormalizeWhitespace) {
  char s[] = "  a \t b\r\n  c  ";
  EXPECT_EQ(af_normalize_ws(s), 5u);
  EXPECT_STREQ(s, "a b c");
  char e[] = " \t ";
  EXPECT_EQ(af_normalize_ws(e), 0u);
}

// The real catalog: CRLF line ends, quoted names with commas. Row counts and
// sample rows are read off the file itself (grep), not from this reader.
TEST(Csv, InstacartProducts) {
  std::string path = aft::shared_dir() + "/instacart/products.csv";
  af_csv *r = nullptr;
  af_error err{};
  ASSERT_EQ(af_csv_open(path.c_str(), ',', &r, &err), AF_OK) << err.msg;
  int64_t n = 0;
  std::map<std::string, std::string> seen;
  for (;;) {
    char **f;
    int nf, eof;
    ASSERT_EQ(af_csv_next(r, &f, &nf, &eof, &err), AF_OK) << err.msg;
    if (eof) break;
    ASSERT_EQ(nf, 4) << "line " << af_csv_record_line(r);
    if (n > 0 && (std::string(f[0]) == "30" || std::string(f[0]) == "1")) seen[f[0]] = f[1];
    n++;
  }
  af_csv_close(r);
  EXPECT_EQ(n, 49689);  // header + 49,688 products
  EXPECT_EQ(seen["30"], "Three Cheese Ziti, Marinara with Meatballs");
  EXPECT_EQ(seen["1"], "Chocolate Sandwich Cookies");
}

TEST(StrMap, AgreesWithStdMapOnManyKeys) {
  af_strmap *m = nullptr;
  af_error err{};
  ASSERT_EQ(af_strmap_create(4, &m, &err), AF_OK);
  std::map<std::string, int64_t> ref;
  for (int i = 0; i < 50000; i++) {
    std::string k = "key-" + std::to_string((i * 7919) % 30011);
    int64_t existing;
    const char *stored;
    ASSERT_EQ(af_strmap_put(m, k.data(), k.size(), i, &existing, &stored, &err), AF_OK);
    auto it = ref.find(k);
    if (it == ref.end()) {
      EXPECT_EQ(existing, -1);
      ref[k] = i;
    } else {
      EXPECT_EQ(existing, it->second);
    }
    EXPECT_EQ(std::string(stored), k);
  }
  EXPECT_EQ(af_strmap_size(m), ref.size());
  for (auto &kv : ref) EXPECT_EQ(af_strmap_get(m, kv.first.data(), kv.first.size()), kv.second);
  EXPECT_EQ(af_strmap_get(m, "absent", 6), -1);
  EXPECT_EQ(af_strmap_get(m, "key-1", 4), -1);  // a prefix of a key is not the key
  af_strmap_free(m);
}
}  // namespace
