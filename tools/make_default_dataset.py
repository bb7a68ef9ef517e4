#!/usr/bin/env python3
"""Builds the bundled default dataset (datasets/instacart-sample/) from the real
Instacart files in ../shared/datasets/instacart: the first ORDERS whole orders
of order_products__train_head.csv, the catalog rows of every product they
contain plus every product of two departments (so that cold-start products
without any sales are present too), and the aisle and department names.
Deterministic; standard library only.

    python3 tools/make_default_dataset.py            # writes datasets/instacart-sample/
"""
import csv
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "..", "shared", "datasets", "instacart")
DST = os.path.join(ROOT, "datasets", "instacart-sample")
ORDERS = 2500
EXTRA_DEPARTMENTS = {"11", "17"}  # personal care, household: many products, few sales


def main():
    os.makedirs(DST, exist_ok=True)
    orders, rows = [], []
    with open(os.path.join(SRC, "order_products__train_head.csv"), newline="") as f:
        r = csv.reader(f)
        header = next(r)
        for row in r:
            if not orders or orders[-1] != row[0]:
                if len(orders) == ORDERS:
                    break
                orders.append(row[0])
            rows.append(row)
    sold = {row[1] for row in rows}
    with open(os.path.join(DST, "order_products.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    aisles = dict(csv.reader(open(os.path.join(SRC, "aisles.csv"), newline="")))
    departments = dict(csv.reader(open(os.path.join(SRC, "departments.csv"), newline="")))
    kept = 0
    with open(os.path.join(SRC, "products.csv"), newline="", encoding="utf-8") as f, \
         open(os.path.join(DST, "products.csv"), "w", newline="", encoding="utf-8") as g:
        r = csv.reader(f)
        next(r)
        w = csv.writer(g, lineterminator="\n")
        w.writerow(["product_id", "product_name", "aisle", "department"])
        for pid, name, aisle_id, dept_id in r:
            if pid in sold or dept_id in EXTRA_DEPARTMENTS:
                w.writerow([pid, name, aisles[aisle_id], departments[dept_id]])
                kept += 1
    print(f"{len(orders)} orders, {len(rows)} order lines, {kept} products -> {DST}")


if __name__ == "__main__":
    main()
