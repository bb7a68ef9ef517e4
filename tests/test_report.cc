// affinity report on a hand-made run folder: HTML escaping, self-containment,
// errors on malformed folders, the PNG exports, and the page opened in
// headless Chromium (loads without console errors; figure areas not blank).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#ifdef AF_HAVE_LIBPNG
#include <png.h>
#endif

#include "test_util.h"

namespace {

const char *kEvil = "Tom's \"Best\" <script>alert(1)</script> & Co";
const char *kChinese = "正版现货 水处理工程 给水排水标准图集";

// 24 products in 4 categories; complements inside and across categories,
// substitutes inside. Product 3 has HTML in its name, product 7 is Chinese.
void write_folder(const std::string &dir, bool with_assoc = true) {
  const char *cats[4] = {"dairy eggs", "produce", "snacks", "household"};
  std::string products = "product_id,product,category,baskets\n";
  for (int i = 0; i < 24; i++) {
    std::string name = "Product " + std::to_string(i) + " of " + cats[i % 4];
    if (i == 3) name = kEvil;
    if (i == 7) name = kChinese;
    std::string q;
    for (char c : name) {
      if (c == '"') q += '"';
      q += c;
    }
    products += std::to_string(100 + i) + ",\"" + q + "\"," + cats[i % 4] + "," +
                std::to_string(10 + i) + "\n";
  }
  aft::write_file(dir + "/products.csv", products);
  if (with_assoc) {
    std::string a = "product_id,product,related_id,related,type,score,count,lift,cosine\n";
    for (int i = 0; i < 24; i++)
      for (int d : {1, 2, 5}) {
        int j = (i + d) % 24;
        char row[256];
        snprintf(row, sizeof row, "%d,p,%d,q,complement,%.3f,%d,%.2f,%.3f\n", 100 + i, 100 + j,
                 0.2 + 0.03 * ((i * 7 + d) % 10), 2 + (i + d) % 9, 1.5 + d, 0.4);
        a += row;
      }
    for (int i = 0; i < 24; i++) {
      char row[256];
      snprintf(row, sizeof row, "%d,p,%d,q,substitute,%.3f,0,,0.8\n", 100 + i, 100 + (i + 4) % 24,
               0.7 + 0.01 * (i % 5));
      a += row;
    }
    aft::write_file(dir + "/associations.csv", a);
  }
  aft::write_file(dir + "/rules.csv",
                  "antecedent,consequent,support,confidence,lift,leverage,conviction,count\n"
                  "\"Tom's \"\"Best\"\" <script>alert(1)</script> & Co\",Product 1 of produce,0.1,"
                  "0.5,3.2,0.05,inf,12\n"
                  "Product 4 of dairy eggs | Product 8 of dairy eggs,Product 5 of produce,0.05,0.4,"
                  "2.5,0.02,1.5,6\n");
  aft::write_file(dir + "/run.json",
                  "{\"format\": \"affinity-run\", \"affinity_version\": \"test\", "
                  "\"finished_utc\": \"2026-01-01T00:00:00Z\", "
                  "\"data\": {\"catalog\": \"hand-made <catalog>.csv\", \"products\": 24, "
                  "\"baskets\": \"hand-made.csv\", \"n_baskets\": 50}, "
                  "\"model\": {\"path\": \"none.h5\"}, \"parameters\": {\"k\": 20}, "
                  "\"stages\": [{\"name\": \"embed\", \"seconds\": 1.5, \"skipped\": false}]}\n");
  // eval.json in the shape `affinity eval` writes (tools/cmd_eval.c).
  aft::write_file(dir + "/eval.json",
                  "{\"products\": 24, \"protocol\": {\"split\": \"random\", \"seed\": 42},\n"
                  " \"methods\": [{\"name\": \"popularity\", \"seconds\": 0.1, \"warm\": "
                  "{\"queries\": 40, \"recall@10\": 0.125, \"ndcg@10\": 0.05, \"mrr\": 0.07}, "
                  "\"cold\": {\"queries\": 3, \"recall@10\": 0, \"ndcg@10\": 0, \"mrr\": 0.01}},\n"
                  " {\"name\": \"fusion-<pretrained>\", \"seconds\": 2.5, \"warm\": {\"queries\": "
                  "40, \"recall@10\": 0.375, \"ndcg@10\": 0.2, \"mrr\": 0.25}, \"cold\": "
                  "{\"queries\": 3, \"recall@10\": 0.3333, \"ndcg@10\": 0.1, \"mrr\": 0.12}}]}\n");
}

std::string report_cmd(const std::string &dir, const std::string &extra = "") {
  return "'" + aft::cli() + "' report --run '" + dir + "' --out '" + dir + "/report.html' " + extra;
}

TEST(Report, EscapesEveryTextAndLoadsNothingFromTheNetwork) {
  std::string dir = aft::temp_dir("report-escape");
  write_folder(dir);
  std::string out, err;
  ASSERT_EQ(aft::run(report_cmd(dir), &out, &err), 0) << err;
  std::string html = aft::read_file(dir + "/report.html");
  // The only <script> is our own loader at the end; the product name's is escaped.
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"), std::string::npos);
  EXPECT_NE(html.find("hand-made &lt;catalog&gt;.csv"), std::string::npos);
  EXPECT_NE(html.find(kChinese), std::string::npos);  // UTF-8 kept as is
  // A product's complements are listed best first whatever the file order
  // (the hand-made file lists product 103's as 0.260, 0.290, 0.380).
  size_t h = html.find("<h3>Tom&#39;s");
  ASSERT_NE(h, std::string::npos);
  size_t s1 = html.find("<td class=\"n\">0.380</td>", h), s2 = html.find("<td class=\"n\">0.290</td>", h),
         s3 = html.find("<td class=\"n\">0.260</td>", h);
  EXPECT_LT(s1, s2);
  EXPECT_LT(s2, s3);
  // Self-contained: no external scripts, styles, images or fonts.
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  // Both figures are inline SVG; the evaluation table was rendered.
  EXPECT_NE(html.find("id=\"network-svg-box\""), std::string::npos);
  EXPECT_NE(html.find("id=\"heatmap-svg\""), std::string::npos);
  EXPECT_NE(html.find("<th>recall@10</th>"), std::string::npos);
  EXPECT_NE(html.find("<td>popularity</td><td>warm</td><td class=\"n\">40</td><td class=\"n\">0.1250</td>"),
            std::string::npos);
  EXPECT_NE(html.find("<td>fusion-&lt;pretrained&gt;</td><td>cold</td><td class=\"n\">3</td><td class=\"n\">0.3333</td>"),
            std::string::npos);
}

TEST(Report, MissingOrMalformedRunFolderIsAClearError) {
  std::string err;
  std::string dir = aft::temp_dir("report-bad");
  // no such folder
  EXPECT_NE(aft::run(report_cmd(dir + "/nope"), nullptr, &err), 0);
  EXPECT_NE(err.find("not a run folder"), std::string::npos) << err;
  // missing associations.csv
  write_folder(dir, false);
  EXPECT_NE(aft::run(report_cmd(dir), nullptr, &err), 0);
  EXPECT_NE(err.find("associations.csv"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/report.html"));
  // a malformed line names file and line
  write_folder(dir);
  std::string a = aft::read_file(dir + "/associations.csv");
  aft::write_file(dir + "/associations.csv", a + "100,p,101,q,complement,notanumber,1,1,1\n");
  EXPECT_NE(aft::run(report_cmd(dir), nullptr, &err), 0);
  EXPECT_NE(err.find("associations.csv:98"), std::string::npos) << err;
  EXPECT_NE(err.find("score"), std::string::npos) << err;
  // an id that is not a product
  aft::write_file(dir + "/associations.csv", a + "100,p,999,q,complement,0.5,1,1,1\n");
  EXPECT_NE(aft::run(report_cmd(dir), nullptr, &err), 0);
  EXPECT_NE(err.find("'999'"), std::string::npos) << err;
  // a bad type
  aft::write_file(dir + "/associations.csv", a + "100,p,101,q,friend,0.5,1,1,1\n");
  EXPECT_NE(aft::run(report_cmd(dir), nullptr, &err), 0);
  EXPECT_NE(err.find("friend"), std::string::npos) << err;
  // malformed run.json names the file
  aft::write_file(dir + "/associations.csv", a);
  aft::write_file(dir + "/run.json", "{\"data\": [1, 2,\n");
  EXPECT_NE(aft::run(report_cmd(dir), nullptr, &err), 0);
  EXPECT_NE(err.find("run.json"), std::string::npos) << err;
  EXPECT_FALSE(aft::file_exists(dir + "/report.html"));
}

#ifdef AF_HAVE_LIBPNG
struct Image {
  int w = 0, h = 0;
  std::vector<unsigned char> rgb;  // (h, w, 3)
};

bool read_png(const std::string &path, Image *img) {
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&pi, path.c_str())) return false;
  pi.format = PNG_FORMAT_RGB;
  img->rgb.resize(PNG_IMAGE_SIZE(pi));
  if (!png_image_finish_read(&pi, nullptr, img->rgb.data(), 0, nullptr)) return false;
  img->w = (int)pi.width;
  img->h = (int)pi.height;
  return true;
}

// Fraction of pixels in the box that are not (near) white, and how many
// distinct colours (quantised to 5 bits per channel) appear there.
void ink(const Image &img, int x, int y, int w, int h, double *frac, int *colors) {
  std::vector<char> seen(1 << 15, 0);
  long dark = 0, total = 0;
  *colors = 0;
  for (int r = y; r < y + h && r < img.h; r++)
    for (int c = x; c < x + w && c < img.w; c++) {
      const unsigned char *p = &img.rgb[((size_t)r * img.w + c) * 3];
      total++;
      if (p[0] < 235 || p[1] < 235 || p[2] < 235) dark++;
      int q = (p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3);
      if (!seen[q]) {
        seen[q] = 1;
        (*colors)++;
      }
    }
  *frac = total ? (double)dark / total : 0;
}

TEST(Report, PngExportsAreDrawn) {
  std::string dir = aft::temp_dir("report-png");
  write_folder(dir);
  std::string err;
  ASSERT_EQ(aft::run(report_cmd(dir, "--png-prefix '" + dir + "/fig'"), nullptr, &err), 0) << err;
  for (const char *name : {"/fig-network.png", "/fig-heatmap.png"}) {
    Image img;
    ASSERT_TRUE(read_png(dir + name, &img)) << name;
    EXPECT_GT(img.w, 200) << name;
    EXPECT_GT(img.h, 150) << name;
    double frac;
    int colors;
    ink(img, 0, 0, img.w, img.h, &frac, &colors);
    // Drawn figures: nodes/cells cover well over 3% of the image and use
    // many colours (4 category colours, 2 edge colours, a heat scale).
    EXPECT_GT(frac, 0.03) << name;
    EXPECT_GT(colors, 8) << name;
  }
}

bool have_chromium() { return aft::run("command -v chromium") == 0; }

std::string chromium(const std::string &args) {
  return "timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
         "--force-device-scale-factor=1 --window-size=1400,3000 " +
         args;
}

TEST(Report, OpensInHeadlessChromiumAndFiguresRender) {
  if (!have_chromium()) GTEST_SKIP() << "chromium is not installed";
  std::string dir = aft::temp_dir("report-chromium");
  write_folder(dir);
  std::string out, err;
  ASSERT_EQ(aft::run(report_cmd(dir), nullptr, &err), 0) << err;
  std::string url = "file://" + dir + "/report.html";
  // 1. The page loads and our load hook ran: it records the figure boxes.
  ASSERT_EQ(aft::run(chromium("--enable-logging=stderr --v=0 --dump-dom '" + url + "'"), &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("data-loaded=\"1\""), std::string::npos) << out.substr(0, 400);
  // No script error or failed resource on the console.
  EXPECT_EQ(err.find(":CONSOLE("), std::string::npos) << err;
  EXPECT_EQ(err.find("Uncaught"), std::string::npos) << err;
  std::smatch m;
  std::regex net_re("data-network-box=\"(\\d+),(\\d+),(\\d+),(\\d+)\"");
  std::regex heat_re("data-heatmap-box=\"(\\d+),(\\d+),(\\d+),(\\d+)\"");
  int boxes[2][4];
  ASSERT_TRUE(std::regex_search(out, m, net_re)) << out.substr(0, 400);
  for (int i = 0; i < 4; i++) boxes[0][i] = std::stoi(m[i + 1]);
  ASSERT_TRUE(std::regex_search(out, m, heat_re)) << out.substr(0, 400);
  for (int i = 0; i < 4; i++) boxes[1][i] = std::stoi(m[i + 1]);
  // 2. The screenshot's figure areas are drawn.
  std::string shot = dir + "/shot.png";
  ASSERT_EQ(aft::run(chromium("--screenshot='" + shot + "' '" + url + "'"), nullptr, &err), 0) << err;
  Image img;
  ASSERT_TRUE(read_png(shot, &img));
  ASSERT_EQ(img.w, 1400);
  for (int b = 0; b < 2; b++) {
    SCOPED_TRACE(b == 0 ? "network" : "heatmap");
    int *x = boxes[b];
    EXPECT_GT(x[2], 200);
    EXPECT_GT(x[3], 150);
    ASSERT_LE(x[1] + x[3], img.h) << "figure below the screenshot";
    double frac;
    int colors;
    ink(img, x[0], x[1], x[2], x[3], &frac, &colors);
    printf("figure %d: box %d,%d %dx%d, %.1f%% ink, %d colours\n", b, x[0], x[1], x[2], x[3],
           100 * frac, colors);
    EXPECT_GT(frac, 0.03);
    EXPECT_GT(colors, 8);
  }
  // Control: the page's left margin is background, and the same check calls it blank.
  double frac;
  int colors;
  ink(img, 0, boxes[0][1], 16, boxes[0][3], &frac, &colors);
  EXPECT_LT(frac, 0.001);
}
#endif

}  // namespace

namespace {

// The heatmaps split complements with direct evidence (bought together in >=
// the run's itemcf_min_count baskets) from those borrowed from text
// neighbours; the network draws the borrowed ones dotted.
TEST(Report, HeatmapsSplitDirectFromBorrowedEvidence) {
  std::string dir = aft::temp_dir("report-evidence");
  write_folder(dir);
  std::string run = aft::read_file(dir + "/run.json");
  run.replace(run.find("\"parameters\": {\"k\": 20}"), 23, "\"parameters\": {\"k\": 20, \"itemcf_min_count\": 5}");
  aft::write_file(dir + "/run.json", run);
  int direct = 0, borrowed = 0;  // the fixture's complement counts: 2 + (i + d) % 9
  for (int i = 0; i < 24; i++)
    for (int d : {1, 2, 5}) (2 + (i + d) % 9 >= 5 ? direct : borrowed)++;
  ASSERT_GT(direct, 0);
  ASSERT_GT(borrowed, 0);
  std::string out, err;
  ASSERT_EQ(aft::run(report_cmd(dir), &out, &err), 0) << err;
  std::string html = aft::read_file(dir + "/report.html");
  EXPECT_NE(html.find("at least 5 baskets (" + std::to_string(direct) + " associations). The " +
                      std::to_string(borrowed) + " whose"),
            std::string::npos);
  EXPECT_NE(html.find("id=\"heatmap-svg\""), std::string::npos);
  EXPECT_NE(html.find("id=\"heatmap-borrowed-svg\""), std::string::npos);
  // the cell counts of the two maps add up to the complement rows of each kind
  auto cell_sum = [&](const std::string &id) {
    size_t a = html.find("id=\"" + id + "\""), b = html.find("</svg>", a);
    double s = 0;
    for (size_t p = a; (p = html.find("</title></rect>", p)) != std::string::npos && p < b; p++) {
      size_t c = html.rfind(": ", p);
      s += std::stod(html.substr(c + 2, p - c - 2));
    }
    return s;
  };
  EXPECT_EQ(cell_sum("heatmap-svg"), direct);
  EXPECT_EQ(cell_sum("heatmap-borrowed-svg"), borrowed);
}

}  // namespace
