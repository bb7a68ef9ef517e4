#!/usr/bin/env python3
"""All-pairs top-k on the GPU: ours (bench_topk_device: af_bf16_topk_device_ex,
the fused kernel at k = 50) against torch.mm + torch.topk in query tiles (bf16
inputs, the same random unit vectors, the same card, the same run) and against
the bf16 GEMM floor (2 N^2 d at the cuBLASLt bf16 rate our binary measures in
the same process). N = 200,000 and 1,000,000, d = 384, k = 50. Ours also
reports its recall and the rows identical to the CPU scorer on a 256-row sample.
Random vectors at d = 384 have tightly packed scores, so most rows stay
uncertified (the certificate is worst-case); recall and identity are measured.

Run by bench/gpu_check.sh (PATH holds the wrapped binaries), or
    AF_BENCH_TINY=1 PATH=build:$PATH python3 bench/score_gpu.py   (CPU, tiny: logic only)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_table import TINY, PeakMem, row, torch_peak_mib  # noqa: E402

D, K = 384, 50


def unit_rows(n, seed):
    rng = np.random.default_rng(seed)
    x = np.empty((n, D), np.float32)
    for i in range(0, n, 100000):  # in slabs: 1M x 384 fp64 would be 3 GB
        a = rng.standard_normal((min(100000, n - i), D), dtype=np.float32)
        x[i:i + len(a)] = a / np.linalg.norm(a, axis=1, keepdims=True)
    return x


def torch_topk(x, reps, dev):
    """mm + topk in query tiles of 2,048 rows, bf16 in; self excluded."""
    xt = torch.from_numpy(x).to(dev).to(torch.bfloat16)
    n, qt = xt.shape[0], 2048
    ts = []
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(reps):
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        idx = []
        for q0 in range(0, n, qt):
            s = xt[q0:q0 + qt] @ xt.T  # (qt, n) bf16 scores, fp32 accumulation
            r = torch.arange(q0, min(n, q0 + qt), device=dev)
            s[r - q0, r] = -float("inf")
            idx.append(torch.topk(s, K, dim=1).indices)
        if dev == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), torch_peak_mib(torch)


def main():
    dev = "cpu" if TINY else "cuda"
    sizes = [3000] if TINY else [200000, 1000000]
    tmp = tempfile.mkdtemp(prefix="score_gpu_")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (tiny check)"
    print(f"device: {gpu}; d = {D}, k = {K}, margin 16")
    for n in sizes:
        x = unit_rows(n, 1)
        raw = os.path.join(tmp, f"x{n}.raw")
        x.tofile(raw)
        reps = 2 if n >= 1000000 else 3
        with PeakMem() as pm:
            p = subprocess.run(["bench_topk_device", raw, str(n), str(D), str(K), str(reps),
                                "cpu" if TINY else "cuda"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("bench_topk_device failed: " + p.stderr)
        ours = json.loads(p.stdout.strip().splitlines()[-1])
        print(json.dumps(ours))
        os.remove(raw)
        t_pt, peak_pt = torch_topk(x, 1 if n >= 1000000 else reps, dev)
        t = ours["median_s"]
        row(f"all-pairs top-k N={n} d={D} k={K} ({ours['path']})", f"{t:.3f} s", f"{t_pt:.3f} s (torch mm+topk)",
            f"{t_pt / t:.2f}x",
            f"floor {ours['floor_s']:.3f} s at {ours['gemm_tflops']:.0f} TFLOP/s = {100 * ours['floor_s'] / t:.0f}% of it; "
            f"recall {ours['sample_recall']:.4f}, {ours['sample_rows_identical']}/{ours['sample_rows']} rows = CPU",
            f"{pm.peak} (plan {ours['plan_bytes'] / 2**20:.0f})", f"{peak_pt:.0f}")


if __name__ == "__main__":
    main()
