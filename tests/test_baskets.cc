// Catalog and basket loading: cleaning rules on hand-written inputs (expected
// baskets read off the input text), the real Instacart and Groceries files
// against a naive std::map parse and the dataset README's published counts.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
}

namespace {
std::vector<std::set<std::string>> as_sets(const af_baskets &b) {
  std::vector<std::set<std::string>> v;
  for (int64_t k = 0; k < b.n_baskets; k++) {
    std::set<std::string> s;
    for (int64_t j = b.offsets[k]; j < b.offsets[k + 1]; j++) {
      if (j > b.offsets[k]) {
        EXPECT_LT(b.items[j - 1], b.items[j]) << "basket not sorted/unique";
      }
      s.insert(b.item_ids[b.items[j]]);
    }
    v.push_back(s);
  }
  return v;
}

TEST(Baskets, LongFormatCleaning) {
  std::string dir = aft::temp_dir("baskets-long");
  std::string p = dir + "/b.csv";
  aft::write_file(p,
                  "order_id,product_id,add_to_cart_order\r\n"
                  "o1, 10 ,1\r\n"
                  "o2,20,1\r\n"
                  "o1,11,2\r\n"
                  "o1,10,1\r\n"     // exact duplicate of line 2 (after trimming)
                  "o1,10,3\r\n"     // same item again, different row
                  " o2 ,,2\r\n"     // empty item
                  "\r\n"            // blank line
                  "\"o3\",\"3 0\",1\r\n");
  af_baskets b{};
  af_baskets_report rep{};
  af_error err{};
  af_baskets_options o{"long", nullptr, nullptr, 0, 0};
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, &rep, &err), AF_OK) << err.msg;
  ASSERT_EQ(b.n_baskets, 3);
  EXPECT_STREQ(b.basket_ids[0], "o1");
  EXPECT_STREQ(b.basket_ids[1], "o2");
  EXPECT_STREQ(b.basket_ids[2], "o3");
  auto s = as_sets(b);
  EXPECT_EQ(s[0], (std::set<std::string>{"10", "11"}));
  EXPECT_EQ(s[1], (std::set<std::string>{"20"}));
  EXPECT_EQ(s[2], (std::set<std::string>{"3 0"}));
  EXPECT_EQ(b.n_items, 4);
  EXPECT_EQ(rep.rows_read, 8);
  EXPECT_EQ(rep.dropped_duplicate, 1);
  EXPECT_EQ(rep.items_repeated_in_basket, 1);
  EXPECT_EQ(rep.dropped_empty, 2);
  EXPECT_EQ(rep.rows_kept, 4);
  af_baskets_free(&b);
}

TEST(Baskets, LinesFormat) {
  std::string dir = aft::temp_dir("baskets-lines");
  std::string p = dir + "/g.csv";
  aft::write_file(p, "milk,bread\n\n  whole   milk ,milk,milk,\n,\nbread\n");
  af_baskets b{};
  af_baskets_report rep{};
  af_error err{};
  af_baskets_options o{"lines", nullptr, nullptr, 0, 0};
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, &rep, &err), AF_OK) << err.msg;
  ASSERT_EQ(b.n_baskets, 3);
  auto s = as_sets(b);
  EXPECT_EQ(s[0], (std::set<std::string>{"milk", "bread"}));
  EXPECT_EQ(s[1], (std::set<std::string>{"whole milk", "milk"}));
  EXPECT_EQ(s[2], (std::set<std::string>{"bread"}));
  EXPECT_STREQ(b.basket_ids[1], "line 3");
  EXPECT_EQ(rep.dropped_empty, 2);
  EXPECT_EQ(rep.items_repeated_in_basket, 1);
  af_baskets_free(&b);
}

af_catalog load_products() {
  af_catalog c{};
  const char *text[] = {"product_name"};
  af_catalog_options o{"product_id", text, 1, "department_id", ',', nullptr};
  af_error err{};
  std::string p = aft::shared_dir() + "/instacart/products.csv";
  EXPECT_EQ(af_catalog_load(p.c_str(), &o, &c, &err), AF_OK) << err.msg;
  return c;
}

TEST(Catalog, InstacartProducts) {
  af_catalog c = load_products();
  ASSERT_EQ(c.n, 49688);
  int64_t r = af_catalog_find(&c, "30");
  ASSERT_GE(r, 0);
  EXPECT_STREQ(c.names[r], "Three Cheese Ziti, Marinara with Meatballs");
  EXPECT_STREQ(c.categories[r], "1");
  EXPECT_EQ(af_catalog_find(&c, "49689"), -1);
  EXPECT_EQ(af_catalog_find(&c, "1"), 0);
  af_catalog_free(&c);
}

TEST(Catalog, TextColumnsJoinedAndErrors) {
  std::string dir = aft::temp_dir("catalog");
  std::string p = dir + "/c.csv";
  aft::write_file(p, "sku,title,brand\nA1, Oat  milk ,Oatly\nB2,Rye bread,\n");
  const char *text[] = {"title", "brand"};
  af_catalog_options o{"sku", text, 2, nullptr, 0, nullptr};
  af_catalog c{};
  af_error err{};
  ASSERT_EQ(af_catalog_load(p.c_str(), &o, &c, &err), AF_OK) << err.msg;
  EXPECT_STREQ(c.texts[0], "Oat milk Oatly");
  EXPECT_STREQ(c.texts[1], "Rye bread");
  EXPECT_STREQ(c.names[0], "Oat milk");
  EXPECT_EQ(c.categories, nullptr);
  af_catalog_free(&c);
  const char *bad_text[] = {"name"};
  af_catalog_options bad{"sku", bad_text, 1, nullptr, 0, nullptr};
  EXPECT_EQ(af_catalog_load(p.c_str(), &bad, &c, &err), AF_ERR_FORMAT);
  EXPECT_NE(std::string(err.msg).find("no column 'name' (columns: sku, title, brand)"), std::string::npos) << err.msg;
  aft::write_file(p, "sku,title\nA1,x\n,y\n");
  const char *t1[] = {"title"};
  af_catalog_options o1{"sku", t1, 1, nullptr, 0, nullptr};
  EXPECT_EQ(af_catalog_load(p.c_str(), &o1, &c, &err), AF_ERR_FORMAT);
  EXPECT_NE(std::string(err.msg).find(":3: empty id"), std::string::npos) << err.msg;
}

TEST(Baskets, CatalogMappingAndUnknownIds) {
  af_catalog c = load_products();
  std::string dir = aft::temp_dir("baskets-cat");
  std::string p = dir + "/b.csv";
  aft::write_file(p, "order_id,product_id\n1,30\n1,1\n2,123456789\n2,2\n");
  af_baskets b{};
  af_baskets_report rep{};
  af_error err{};
  af_baskets_options strict{"long", nullptr, nullptr, 0, 0};
  EXPECT_EQ(af_baskets_load(p.c_str(), &strict, &c, &b, &rep, &err), AF_ERR_FORMAT);
  EXPECT_NE(std::string(err.msg).find("b.csv:4: unknown product id '123456789'"), std::string::npos) << err.msg;
  af_baskets_options lax{"long", nullptr, nullptr, 0, 1};
  ASSERT_EQ(af_baskets_load(p.c_str(), &lax, &c, &b, &rep, &err), AF_OK) << err.msg;
  EXPECT_EQ(rep.dropped_unknown_item, 1);
  EXPECT_EQ(b.n_items, 49688);
  EXPECT_EQ(b.items[b.offsets[0]], 0);                          // product 1 is row 0
  EXPECT_EQ(b.items[b.offsets[0] + 1], af_catalog_find(&c, "30"));
  EXPECT_STREQ(b.item_ids[b.items[b.offsets[1]]], "2");
  af_baskets_free(&b);
  af_catalog_free(&c);
}

// Naive parse: the order file has no quotes, so split on ',' into a std::map.
TEST(Baskets, InstacartTrainMatchesNaiveParse) {
  std::string p = aft::shared_dir() + "/instacart/order_products__train_head.csv";
  std::ifstream f(p);
  std::string line;
  std::getline(f, line);
  std::map<std::string, std::set<std::string>> ref;
  std::vector<std::string> order;
  int64_t rows = 0;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::stringstream ss(line);
    std::string o, it;
    std::getline(ss, o, ',');
    std::getline(ss, it, ',');
    if (!ref.count(o)) order.push_back(o);
    ref[o].insert(it);
    rows++;
  }
  af_catalog c = load_products();
  af_baskets b{};
  af_baskets_report rep{};
  af_error err{};
  af_baskets_options o{"long", "order_id", "product_id", ',', 0};
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, &c, &b, &rep, &err), AF_OK) << err.msg;
  ASSERT_EQ(b.n_baskets, (int64_t)ref.size());
  EXPECT_EQ(rep.rows_read, rows);
  auto s = as_sets(b);
  for (int64_t k = 0; k < b.n_baskets; k++) {
    ASSERT_EQ(b.basket_ids[k], order[k]);
    ASSERT_EQ(s[k], ref[order[k]]) << "order " << order[k];
  }
  af_baskets_free(&b);
  af_catalog_free(&c);
}

// The dataset README: 9,835 baskets, 169 distinct items, 43,367 occurrences.
TEST(Baskets, GroceriesPublishedCounts) {
  std::string p = aft::shared_dir() + "/groceries/groceries.csv";
  af_baskets b{};
  af_baskets_report rep{};
  af_error err{};
  af_baskets_options o{"lines", nullptr, nullptr, ',', 0};
  ASSERT_EQ(af_baskets_load(p.c_str(), &o, nullptr, &b, &rep, &err), AF_OK) << err.msg;
  EXPECT_EQ(b.n_baskets, 9835);
  EXPECT_EQ(b.n_items, 169);
  EXPECT_EQ(b.offsets[b.n_baskets], 43367);
  EXPECT_EQ(rep.items_repeated_in_basket, 0);
  af_baskets_free(&b);
}
}  // namespace
