#!/usr/bin/env python3
"""CPU encode benchmark: our encoder (bench_encode_cpu) against sentence-transformers
`encode` on PyTorch CPU, same texts (all 49,688 Instacart product names), same
threads, same batch size (sentences per batch), in the same run. Prints
sentences/s, tokens/s and the ratio (median of REPS runs each).

    python3 bench/encode_cpu.py [build/bench_encode_cpu] [threads=2] [reps=3] [limit]

limit: only the first N names (the same N on both sides), for a quick run.
Ours runs fp32 (our own GEMM: OPENBLAS_CORETYPE plays no part) and, on CPUs
with AVX512_BF16, bf16 (8th argument of bench_encode_cpu). Parity is tested,
not printed here: fp32 vs Hugging Face <= 1e-4 (tests/test_encoder.cc), bf16
vs fp32 min cosine >= 0.999 (tests/test_bf16.cc). PyTorch uses its own
oneDNN/MKL kernels.
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


def ours(binary, threads, reps, batch, precision, products):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([binary, MODEL_H5, products, "product_id", "product_name", str(batch), str(reps),
                        str(threads), precision], capture_output=True, text=True, env=env, check=True)
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return (statistics.median(r["seconds"] for r in rows), statistics.median(r["cpu_seconds"] for r in rows),
            rows[0]["tokens"], rows[0]["texts"])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench_encode_cpu")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    batch = 32
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    with open(PRODUCTS, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if limit:
        rows = rows[:limit]
    names = [r["product_name"] for r in rows]
    products = PRODUCTS
    if limit:
        products = f"/tmp/encode_cpu_{limit}.csv"
        with open(products, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["product_id", "product_name"])
            for r in rows:
                w.writerow([r["product_id"], r["product_name"]])
    st = SentenceTransformer(MODEL_HF, device="cpu")
    st.encode(names[:256], batch_size=batch)
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        st.encode(names, batch_size=batch)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    t_pt, c_pt = statistics.median(ts), statistics.median(cs)
    lines = []
    t_h, c_h, tokens, n = ours(binary, threads, reps, batch, "fp32", products)
    lines.append((f"affinity fp32, batch {batch} sentences", t_h, c_h))
    t_tb, c_tb, _, _ = ours(binary, threads, reps, 0, "fp32", products)
    lines.append((f"affinity fp32, 8192-token packed batches", t_tb, c_tb))
    try:
        t_b, c_b, _, _ = ours(binary, threads, reps, 0, "bf16", products)
        lines.append((f"affinity bf16, 8192-token packed batches", t_b, c_b))
    except subprocess.CalledProcessError as e:
        print(f"bf16: not run ({e.stderr.strip()})")
    print(f"{n} texts, {tokens} tokens (incl. [CLS]/[SEP]), {threads} threads, median of {reps}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':58s} {'wall s':>7s} {'texts/s':>8s} {'tokens/s':>9s} {'vs PT':>6s} {'CPU s':>7s} {'vs PT':>6s}")
    print(f"{'sentence-transformers encode (PyTorch ' + torch.__version__ + '), batch 32':58s} "
          f"{t_pt:7.2f} {n / t_pt:8.0f} {tokens / t_pt:9.0f} {1.0:5.2f}x {c_pt:7.2f} {1.0:5.2f}x")
    for name, t, c in lines:
        print(f"{name:58s} {t:7.2f} {n / t:8.0f} {tokens / t:9.0f} {t_pt / t:5.2f}x {c:7.2f} {c_pt / c:5.2f}x")


if __name__ == "__main__":
    main()
