#!/usr/bin/env python3
"""Reference association rules for tests/test_rules.cc, from peers nobody here wrote.

  mlxtend (fpgrowth + association_rules, every split of an itemset):
    tests/data/rules_groceries_mlxtend.csv   Groceries, min_support 0.005, min_confidence 0.3
    tests/data/rules_instacart_mlxtend.csv   Instacart train head (item = product_id),
                                             min_support 0.003, min_confidence 0.1
  pyfim (Borgelt's C arules, one-item consequents, mode='o': rule support = body & head):
    tests/data/rules_groceries_pyfim.csv     Groceries, absolute support 10 (= 0.001 * 9835
                                             rounded up), confidence 50%: arules' 5,668 rules

Columns: antecedent, consequent (items sorted, joined with '|'), count, support,
confidence, lift, leverage, conviction ('inf' when confidence is 1; pyfim: only
count, confidence, lift).

Regenerate (from the repository root; needs mlxtend, pandas, pyfim):
  python3 tools/reference/rules_reference.py ../shared/datasets tests/data
"""
import csv
import math
import sys

import fim
import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder


def groceries(shared):
    with open(f"{shared}/groceries/groceries.csv", newline="") as f:
        return [sorted({x.strip() for x in row if x.strip()}) for row in csv.reader(f)]


def instacart(shared):
    baskets = {}
    with open(f"{shared}/instacart/order_products__train_head.csv", newline="") as f:
        for row in csv.DictReader(f):
            baskets.setdefault(row["order_id"], set()).add(row["product_id"].strip())
    return [sorted(b) for b in baskets.values()]


def mlxtend_rules(tx, min_support, min_conf, path):
    te = TransactionEncoder()
    df = pd.DataFrame(te.fit(tx).transform(tx), columns=te.columns_)
    fi = fpgrowth(df, min_support=min_support, use_colnames=True)
    rules = association_rules(fi, len(tx), metric="confidence", min_threshold=min_conf)
    n = len(tx)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["antecedent", "consequent", "count", "support", "confidence", "lift",
                    "leverage", "conviction"])
        rows = []
        for _, r in rules.iterrows():
            conv = r["conviction"]
            rows.append(["|".join(sorted(r["antecedents"])), "|".join(sorted(r["consequents"])),
                         int(round(r["support"] * n)), repr(float(r["support"])),
                         repr(float(r["confidence"])), repr(float(r["lift"])),
                         repr(float(r["leverage"])),
                         "inf" if math.isinf(conv) else repr(float(conv))])
        rows.sort()
        w.writerows(rows)
    print(f"{path}: {len(rules)} rules from {len(fi)} itemsets, {n} baskets")


def pyfim_rules(tx, abs_support, conf_pct, path):
    rules = fim.arules(tx, supp=-abs_support, conf=conf_pct, zmin=2, mode="o", report="acl")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["antecedent", "consequent", "count", "confidence", "lift"])
        rows = [["|".join(sorted(body)), head, cnt, repr(conf), repr(lift)]
                for head, body, cnt, conf, lift in rules]
        rows.sort()
        w.writerows(rows)
    print(f"{path}: {len(rules)} rules")


def main():
    shared, out = sys.argv[1], sys.argv[2]
    g = groceries(shared)
    mlxtend_rules(g, 0.005, 0.3, f"{out}/rules_groceries_mlxtend.csv")
    pyfim_rules(g, 10, 50, f"{out}/rules_groceries_pyfim.csv")
    mlxtend_rules(instacart(shared), 0.003, 0.1, f"{out}/rules_instacart_mlxtend.csv")


if __name__ == "__main__":
    main()
