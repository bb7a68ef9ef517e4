#!/usr/bin/env python3
"""Association-rule mining: affinity vs pyfim (Borgelt's C arules) and mlxtend.

Same data, same thresholds, one thread each, rule counts checked equal. Every
timing is reported as wall time AND CPU time (user + sys): the dev VM is
shared (load average printed), so CPU time is the steadier comparison.
  affinity CLI:   `affinity rules` end to end as a subprocess (process start
                  with its dynamic loading, CSV parse, FP-growth, rules, sort,
                  CSV write + fsync); CPU from the child's rusage.
  affinity lib:   bench/rules_inproc.c (build/bench_rules_inproc): the library
                  calls af_fpgrowth + af_rules_generate in-process on baskets
                  already loaded -- the like-for-like peer of pyfim's call.
  pyfim call:     fim.arules on transactions already in Python lists (the call
                  only, in-process; mode='o' so rule support = body & head, as
                  ours), one-item consequents: affinity runs --max-consequent 1.
  pyfim script:   a python3 subprocess that imports fim, reads the same CSV,
                  mines and writes a CSV: the end-to-end peer of our CLI.
  mlxtend:        fpgrowth + association_rules on a one-hot DataFrame built
                  before the clock starts (every split of an itemset, as
                  affinity's default); call only, in-process.
mlxtend's association_rules is called with num_itemsets=1: in mlxtend 0.25 a
num_itemsets of n makes confidence sAC*n/(sA*n), which differs in the last bit
from sAC/sA (mlxtend's classic formula, its default, and ours) and drops rules
whose confidence is exactly the threshold (48/320 = 0.15 on Instacart).
Ratios > 1 mean affinity is faster. Usage (repository root, after building):
  python3 bench/rules_bench.py [build] [../shared/datasets] [runs]
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

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
if BUILD.endswith("/affinity"):
    BUILD = os.path.dirname(BUILD)
CLI = os.path.join(BUILD, "affinity")
INPROC = os.path.join(BUILD, "bench_rules_inproc")
SHARED = sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets"
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
ENV = dict(os.environ, OMP_NUM_THREADS="1")

PYFIM_SCRIPT = r'''
import csv, sys, fim
path, fmt, mc, conf, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
if fmt == "lines":
    with open(path, newline="") as f:
        tx = [sorted({x.strip() for x in r if x.strip()}) for r in csv.reader(f)]
else:
    b = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            b.setdefault(r["order_id"], set()).add(r["product_id"])
    tx = [sorted(v) for v in b.values()]
rules = fim.arules(tx, supp=-mc, conf=conf * 100, zmin=2, mode="o", report="a")
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["antecedent", "consequent", "count"])
    for head, body, n in rules:
        w.writerow([" | ".join(body), head, n])
'''


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def med(xs):
    return statistics.median(xs)


def child(cmd):
    """Runs cmd; returns (wall s, cpu s = child user + sys)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}: {err}")
    return wall, ru.ru_utime + ru.ru_stime


def count_lines(path):
    with open(path) as f:
        return sum(1 for _ in f) - 1


def cli(args, runs):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.csv")
        ws, cs = [], []
        for _ in range(runs):
            w, c = child([CLI, "rules", *args, "--out", out])
            ws.append(w)
            cs.append(c)
        return med(ws), med(cs), count_lines(out)


def inproc(path, fmt, sup, conf, max_cons, runs):
    r = subprocess.run([INPROC, path, fmt, repr(sup), repr(conf), str(max_cons), str(runs)],
                       check=True, capture_output=True, text=True, env=ENV).stdout
    kv = dict(x.split("=") for x in r.split())
    return float(kv["total_ms"]) / 1e3, float(kv["total_cpu_ms"]) / 1e3, int(kv["rules"])


def pyfim_script(path, fmt, mc, conf, runs):
    with tempfile.TemporaryDirectory() as d:
        script, out = os.path.join(d, "p.py"), os.path.join(d, "r.csv")
        with open(script, "w") as f:
            f.write(PYFIM_SCRIPT)
        ws, cs = [], []
        for _ in range(runs):
            w, c = child([sys.executable, script, path, fmt, str(mc), repr(conf), out])
            ws.append(w)
            cs.append(c)
        return med(ws), med(cs), count_lines(out)


def in_python(fn, runs):
    ws, cs, out = [], [], None
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        ws.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return med(ws), med(cs), out


def load(name):
    if name == "groceries":
        path = f"{SHARED}/groceries/groceries.csv"
        with open(path, newline="") as f:
            tx = [sorted({x.strip() for x in r if x.strip()}) for r in csv.reader(f)]
        return tx, path, "lines", ["--baskets", path, "--baskets-format", "lines"]
    path = f"{SHARED}/instacart/order_products__train_head.csv"
    b = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            b.setdefault(r["order_id"], set()).add(r["product_id"])
    return [sorted(v) for v in b.values()], path, "long", ["--baskets", path]


def min_count(s, n):
    c = max(1, -(-int(s * n * 1e9) // int(1e9)))
    while c > 1 and (c - 1) / n >= s:
        c -= 1
    while c / n < s:
        c += 1
    return c


def ms(x):
    return f"{x * 1e3:.1f}"


def line(label, w, c, n):
    print(f"    {label:<14} wall {ms(w):>7} ms  cpu {ms(c):>7} ms  {n} rules")


def bench(name, sup, conf, mlx_runs):
    tx, path, fmt, args = load(name)
    n = len(tx)
    mc = min_count(sup, n)
    thr = ["--min-support", repr(sup), "--min-confidence", repr(conf)]
    print(f"{name}: {n} baskets, support {sup} (count >= {mc}), confidence {conf}; load {load_avg()}")
    # one-item consequents: pyfim
    a_cli = cli(args + thr + ["--max-consequent", "1"], RUNS)
    a_lib = inproc(path, fmt, sup, conf, 1, RUNS)
    p_call = in_python(lambda: fim.arules(tx, supp=-mc, conf=conf * 100, zmin=2, mode="o",
                                          report="a"), RUNS)
    p_call = (p_call[0], p_call[1], len(p_call[2]))
    p_scr = pyfim_script(path, fmt, mc, conf, RUNS)
    counts = {a_cli[2], a_lib[2], p_call[2], p_scr[2]}
    print(f"  one-item consequents (pyfim): {'OK' if len(counts) == 1 else 'COUNT MISMATCH'}")
    line("affinity CLI", *a_cli)
    line("affinity lib", *a_lib)
    line("pyfim call", *p_call)
    line("pyfim script", *p_scr)
    print(f"    ratio pyfim/affinity: lib vs call cpu {p_call[1] / a_lib[1]:.2f}x wall "
          f"{p_call[0] / a_lib[0]:.2f}x; CLI vs call cpu {p_call[1] / a_cli[1]:.2f}x wall "
          f"{p_call[0] / a_cli[0]:.2f}x; CLI vs script cpu {p_scr[1] / a_cli[1]:.2f}x wall "
          f"{p_scr[0] / a_cli[0]:.2f}x")
    # every split: mlxtend
    te = TransactionEncoder()
    df = pd.DataFrame(te.fit(tx).transform(tx), columns=te.columns_)
    a_cli = cli(args + thr, RUNS)
    a_lib = inproc(path, fmt, sup, conf, 0, RUNS)

    def mlx():
        fi = fpgrowth(df, min_support=sup, use_colnames=True)
        return association_rules(fi, 1, metric="confidence", min_threshold=conf)
    m = in_python(mlx, mlx_runs)
    m = (m[0], m[1], len(m[2]))
    counts = {a_cli[2], a_lib[2], m[2]}
    print(f"  every split (mlxtend): {'OK' if len(counts) == 1 else 'COUNT MISMATCH'}")
    line("affinity CLI", *a_cli)
    line("affinity lib", *a_lib)
    line("mlxtend call", *m)
    print(f"    ratio mlxtend/affinity: CLI cpu {m[1] / a_cli[1]:.1f}x wall {m[0] / a_cli[0]:.1f}x; "
          f"lib cpu {m[1] / a_lib[1]:.1f}x wall {m[0] / a_lib[0]:.1f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} load {load_avg()}; median of {RUNS} runs "
          f"(mlxtend: 3); OMP_NUM_THREADS=1; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (both unset: the CLI re-executes "
          f"itself once to set them, see tools/affinity.c)")
    sv = [child([CLI, "--version"]) for _ in range(RUNS)]
    print(f"affinity --version: wall {ms(med([w for w, _ in sv]))} ms cpu {ms(med([c for _, c in sv]))} ms")
    sv = [child([sys.executable, "-c", "import fim"]) for _ in range(RUNS)]
    print(f"python3 -c 'import fim': wall {ms(med([w for w, _ in sv]))} ms cpu "
          f"{ms(med([c for _, c in sv]))} ms")
    bench("groceries", 0.001, 0.5, 3)
    bench("groceries", 0.0005, 0.3, 3)
    bench("instacart", 0.001, 0.15, 3)
    bench("instacart", 0.0005, 0.15, 3)
    print(f"end load {load_avg()}")
