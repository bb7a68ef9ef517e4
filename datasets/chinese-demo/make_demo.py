#!/usr/bin/env python3
"""Builds datasets/chinese-demo/products.csv from ../shared/datasets/chinese/product_titles.txt.

One row per non-empty title line, in file order: product_id = cn-NNN (1-based line
number), product_name = the title with surrounding whitespace removed. No categories
and no baskets exist for these titles, so the demo is a text-only run.
Run from the repository root:  python3 datasets/chinese-demo/make_demo.py
"""
import csv
import os

src = os.path.join("..", "shared", "datasets", "chinese", "product_titles.txt")
dst = os.path.join("datasets", "chinese-demo", "products.csv")
with open(src, encoding="utf-8") as f:
    lines = [l.strip() for l in f]
with open(dst, "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["product_id", "product_name"])
    for i, t in enumerate(lines, 1):
        if t:
            w.writerow([f"cn-{i:03d}", t])
print(dst, sum(1 for l in lines if l), "titles")
