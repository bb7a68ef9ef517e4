#!/usr/bin/env python3
"""Association-rule mining: affinity vs pyfim (Borgelt's C arules) and mlxtend.

Same data, same thresholds, one thread each, rule counts checked equal.
  affinity: the CLI end to end as a subprocess (process start, CSV parse,
            FP-growth, rules, sort, CSV write) -- median of 5 runs.
  pyfim:    fim.arules on transactions already in Python lists (the call only;
            mode='o' so rule support = body & head, as ours), one-item
            consequents, so affinity runs with --max-consequent 1.
  mlxtend:  fpgrowth + association_rules on a one-hot DataFrame built before
            the clock starts (every split of an itemset, as affinity's default).
Ratios > 1 mean affinity is faster. Usage (repository root, after building):
  python3 bench/rules_bench.py [build/affinity] [../shared/datasets] [runs]
"""
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

import fim
import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder

CLI = sys.argv[1] if len(sys.argv) > 1 else "build/affinity"
SHARED = sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets"
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def median_time(fn, runs):
    ts, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def ours(args, runs):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.csv")

        def run():
            subprocess.run([CLI, "rules", *args, "--out", out], check=True, env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                return sum(1 for _ in f) - 1
        return median_time(run, runs)


def load(name):
    if name == "groceries":
        path = f"{SHARED}/groceries/groceries.csv"
        with open(path, newline="") as f:
            tx = [sorted({x.strip() for x in r if x.strip()}) for r in csv.reader(f)]
        return tx, ["--baskets", path, "--baskets-format", "lines"]
    path = f"{SHARED}/instacart/order_products__train_head.csv"
    b = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            b.setdefault(r["order_id"], set()).add(r["product_id"])
    return [sorted(v) for v in b.values()], ["--baskets", path]


def min_count(s, n):
    c = max(1, -(-int(s * n * 1e9) // int(1e9)))
    while c > 1 and (c - 1) / n >= s:
        c -= 1
    while c / n < s:
        c += 1
    return c


def bench(name, sup, conf, mlx_runs):
    tx, args = load(name)
    n = len(tx)
    mc = min_count(sup, n)
    thr = ["--min-support", repr(sup), "--min-confidence", repr(conf)]
    # pyfim: one-item consequents
    t_ours1, n_ours1 = ours(args + thr + ["--max-consequent", "1"], RUNS)
    t_fim, rules = median_time(lambda: fim.arules(tx, supp=-mc, conf=conf * 100, zmin=2,
                                                   mode="o", report="a"), RUNS)
    print(f"{name}: {n} baskets, support {sup} (count >= {mc}), confidence {conf}")
    print(f"  one-item consequents: affinity {t_ours1*1e3:.1f} ms, {n_ours1} rules; "
          f"pyfim arules {t_fim*1e3:.1f} ms, {len(rules)} rules; ratio pyfim/affinity "
          f"{t_fim/t_ours1:.2f}x  {'OK' if n_ours1 == len(rules) else 'COUNT MISMATCH'}")
    # mlxtend: every split
    te = TransactionEncoder()
    df = pd.DataFrame(te.fit(tx).transform(tx), columns=te.columns_)
    t_ours, n_ours = ours(args + thr, RUNS)

    def mlx():
        fi = fpgrowth(df, min_support=sup, use_colnames=True)
        return association_rules(fi, n, metric="confidence", min_threshold=conf)
    t_mlx, r = median_time(mlx, mlx_runs)
    print(f"  every split:          affinity {t_ours*1e3:.1f} ms, {n_ours} rules; "
          f"mlxtend {t_mlx*1e3:.1f} ms, {len(r)} rules; ratio mlxtend/affinity "
          f"{t_mlx/t_ours:.1f}x  {'OK' if n_ours == len(r) else 'COUNT MISMATCH'}")


if __name__ == "__main__":
    print(f"runs: median of {RUNS} (mlxtend: 3); OMP_NUM_THREADS=1 for affinity; "
          f"OPENBLAS_CORETYPE left as set ({os.environ.get('OPENBLAS_CORETYPE')})")
    bench("groceries", 0.001, 0.5, 3)
    bench("groceries", 0.0005, 0.3, 3)
    bench("instacart", 0.001, 0.15, 3)
    bench("instacart", 0.0005, 0.15, 3)
