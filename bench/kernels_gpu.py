#!/usr/bin/env python3
"""Per-kernel GPU table: runs bench_cuda_kernels (our ops, median of 20 after 3
warm-ups, MiniLM shapes) and times the peers on the same shapes in the same run:
  - attention: PyTorch SDPA with the cuDNN backend
    (torch.nn.attention.sdpa_kernel(SDPBackend.CUDNN_ATTENTION); cuDNN's fused
    attention) and with the flash backend, bf16, (B, 12, L, 32) with B = 8192 / L,
    the same tokens our packed kernel gets (B sequences of length L);
  - GEMM: torch.mm bf16 (cuBLAS) on the linear layers' shapes.
Rows go to the one table (bench/gpu_table.py). FLOPs: attention 4 C B L^2
(QK^T and PV), GEMM 2 M K N.
    AF_BENCH_TINY=1 PATH=build:$PATH python3 bench/kernels_gpu.py   (CPU: logic only)
"""
import os
import re
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_table import TINY, row  # noqa: E402

T, C, NH = 8192, 384, 12


def timed(fn, dev, runs=3 if TINY else 20):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(runs):
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def ours():
    """{(op, shape): (us, rate)} parsed from bench_cuda_kernels."""
    p = subprocess.run(["bench_cuda_kernels"], capture_output=True, text=True)
    print(p.stdout, p.stderr, sep="")
    res = {}
    for line in p.stdout.splitlines():
        m = re.match(r"(.+?)\s{2,}(\S+(?: L=\d+ HS=\d+)?)\s+([0-9.]+)\s+([0-9.]+) (TFLOP/s|GB/s)", line)
        if m:
            res[(m.group(1).strip(), m.group(2))] = (float(m.group(3)), float(m.group(4)))
    return res


def main():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    dev = "cpu" if TINY else "cuda"
    mine = ours()
    scale = 1 if not TINY else 16  # tiny: 512 tokens
    for L in (9, 128, 512):
        B = max(1, T // scale // L)
        q, k, v = (torch.randn(B, NH, L, C // NH, device=dev, dtype=torch.bfloat16) for _ in range(3))
        flop = 4.0 * C * B * L * L
        peers = {}
        for name, be in (("cuDNN SDPA", SDPBackend.CUDNN_ATTENTION), ("flash SDPA", SDPBackend.FLASH_ATTENTION)):
            if TINY:
                be = SDPBackend.MATH
            try:
                with sdpa_kernel(be):
                    peers[name] = timed(lambda: F.scaled_dot_product_attention(q, k, v), dev)
            except RuntimeError as e:
                print(f"{name} L={L}: not available ({str(e).splitlines()[0][:80]})")
        o = mine.get(("attention bf16 (mma)", f"T={B * L} L={L} HS=32"))
        for name, t in peers.items():
            row(f"attention bf16 L={L} B={B} vs {name}", f"{o[0]:.1f} us" if o else "n/a",
                f"{t * 1e6:.1f} us", f"{t * 1e6 / o[0]:.2f}x" if o else "n/a",
                f"ours {o[1]:.0f} / peer {flop / t / 1e12:.0f} TFLOP/s" if o else f"peer {flop / t / 1e12:.1f} TFLOP/s",
                "", "")
    for ic, oc in ((384, 1152), (384, 1536), (1536, 384)):
        M = T // scale
        a = torch.randn(M, ic, device=dev, dtype=torch.bfloat16)
        w = torch.randn(oc, ic, device=dev, dtype=torch.bfloat16)
        t = timed(lambda: a @ w.T, dev)
        f32 = mine.get(("linear fp32 (cuBLAS)", f"{T}x{ic}->{oc}"))
        b16 = mine.get(("linear bf16 (cuBLASLt)", f"{T}x{ic}->{oc}"))
        row(f"GEMM {M}x{ic}->{oc} bf16 (fp32: {f32[0]:.1f} us)" if f32 else f"GEMM {M}x{ic}->{oc} bf16",
            f"{b16[0]:.1f} us" if b16 else "n/a", f"{t * 1e6:.1f} us (torch.mm)",
            f"{t * 1e6 / b16[0]:.2f}x" if b16 else "n/a",
            f"ours {b16[1]:.0f} TFLOP/s" if b16 else f"peer {2 * M * ic * oc / t / 1e12:.2f} TFLOP/s", "", "")


if __name__ == "__main__":
    main()
