#!/usr/bin/env python3
"""CPU encode benchmark: our encoder (bench_encode_cpu) against sentence-transformers
`encode` on PyTorch CPU, same texts (all 49,688 Instacart product names), same
threads, same batch size (sentences per batch), in the same run. Prints
sentences/s, tokens/s and the ratio (median of REPS runs each).

    python3 bench/encode_cpu.py [build/bench_encode_cpu] [threads=2] [reps=3]

OpenBLAS core type: tests and CI run with OPENBLAS_CORETYPE=Haswell (this
machine's setting for old OpenBLAS builds). This script runs ours with the
environment's value (Haswell if unset) and, as a separate line, with
OPENBLAS_CORETYPE=Cooperlake (AVX-512 kernels, correct results, faster) --
reported as such; PyTorch uses its own oneDNN/MKL kernels either way.
"""
import csv
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCTS = os.path.join(ROOT, "..", "shared", "datasets", "instacart", "products.csv")
MODEL_H5 = os.path.join(ROOT, "weights", "all-MiniLM-L6-v2.h5")
MODEL_HF = os.path.join(ROOT, "weights", "hf", "all-MiniLM-L6-v2")


def ours(binary, threads, reps, batch, coretype):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_CORETYPE=coretype)
    p = subprocess.run([binary, MODEL_H5, PRODUCTS, "product_id", "product_name", str(batch), str(reps),
                        str(threads)], capture_output=True, text=True, env=env, check=True)
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return (statistics.median(r["seconds"] for r in rows), statistics.median(r["cpu_seconds"] for r in rows),
            rows[0]["tokens"], rows[0]["texts"])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench_encode_cpu")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    batch = 32
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    with open(PRODUCTS, newline="", encoding="utf-8") as f:
        names = [r["product_name"] for r in csv.DictReader(f)]
    st = SentenceTransformer(MODEL_HF, device="cpu")
    st.encode(names[:256], batch_size=batch)
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        st.encode(names, batch_size=batch)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    t_pt, c_pt = statistics.median(ts), statistics.median(cs)
    core = os.environ.get("OPENBLAS_CORETYPE", "Haswell")
    lines = []
    t_h, c_h, tokens, n = ours(binary, threads, reps, batch, core)
    lines.append((f"affinity, batch {batch} sentences, OpenBLAS {core}", t_h, c_h))
    t_tb, c_tb, _, _ = ours(binary, threads, reps, 0, core)
    lines.append((f"affinity, 8192-token packed batches, OpenBLAS {core}", t_tb, c_tb))
    t_c, c_c, _, _ = ours(binary, threads, reps, batch, "Cooperlake")
    lines.append((f"affinity, batch {batch}, OPENBLAS_CORETYPE=Cooperlake", t_c, c_c))
    print(f"{n} texts, {tokens} tokens (incl. [CLS]/[SEP]), {threads} threads, median of {reps}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':58s} {'wall s':>7s} {'texts/s':>8s} {'tokens/s':>9s} {'vs PT':>6s} {'CPU s':>7s} {'vs PT':>6s}")
    print(f"{'sentence-transformers encode (PyTorch ' + torch.__version__ + '), batch 32':58s} "
          f"{t_pt:7.2f} {n / t_pt:8.0f} {tokens / t_pt:9.0f} {1.0:5.2f}x {c_pt:7.2f} {1.0:5.2f}x")
    for name, t, c in lines:
        print(f"{name:58s} {t:7.2f} {n / t:8.0f} {tokens / t:9.0f} {t_pt / t:5.2f}x {c:7.2f} {c_pt / c:5.2f}x")


if __name__ == "__main__":
    main()
