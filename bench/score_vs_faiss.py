#!/usr/bin/env python3
"""All-pairs top-k: `affinity score` against faiss-cpu IndexFlatIP, same data,
same threads, same run. Prints per-run wall time and peak memory of each
process (from /usr/bin/time -v), medians, the ratio, and how often the two
agree on the neighbour lists.

    python3 bench/score_vs_faiss.py --n 49688 --k 50 --threads 2 --reps 3
    python3 bench/score_vs_faiss.py --emb embeddings.h5 ...   # a real file
    python3 bench/score_vs_faiss.py --bf16 ...   # also `affinity score --precision bf16`

With --bf16 each rep also times our bf16 mode (unsharded only), and at the
end its output is compared with our fp32 output: rows equal bit for bit, and
neighbours lost (in the fp32 top-k, missing from the bf16 top-k).

Each side is a separate process that reads the same embeddings file and
writes its neighbours (ours: HDF5 via the CLI; faiss: .npy), so both wall
times include loading the input and writing the output. faiss searches every
row against all rows with k+1 and drops the row itself (falling back to the
last column when the row is not among its own top k+1, e.g. duplicates).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write_random(path, n, d, seed):
    import h5py

    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.float32)
    for i in range(0, n, 65536):  # (rows, d) at a time to bound memory
        b = rng.standard_normal((min(65536, n - i), d))
        x[i:i + len(b)] = (b / np.linalg.norm(b, axis=1, keepdims=True)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=[str(i) for i in range(n)], dtype=h5py.string_dtype())
        f.create_dataset("embeddings", data=x)
        f.attrs.update({"format": "affinity-embeddings", "format_version": np.int64(1),
                        "model": "random-unit-vectors", "pooling": "none",
                        "normalized": np.int64(1), "dim": np.int64(d)})


def peer_faiss(emb, k, threads, out, rows):
    import faiss
    import h5py
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)
    with h5py.File(emb, "r") as f:
        x = f["embeddings"][:]
    rows = len(x) if rows is None else rows
    t0 = time.perf_counter()
    with threadpool_limits(limits=threads):
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        D, I = index.search(x[:rows], k + 1)
    t_search = time.perf_counter() - t0
    # Drop the row itself; where it is absent keep the first k.
    is_self = I == np.arange(rows)[:, None]
    keep = ~is_self
    keep[~is_self.any(1), k] = False
    I = I[keep].reshape(rows, k)
    np.save(out, I)
    print(f"faiss_search_s {t_search:.3f}")


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (wall s, peak RSS MiB, stdout)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    return secs, rss, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=49688)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--emb", help="an existing embeddings file (else random unit vectors)")
    ap.add_argument("--workdir", default="/tmp/affinity-bench-score")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "affinity"))
    ap.add_argument("--shard-of", type=int, default=1,
                    help="time only the first of this many row shards on both sides "
                         "(all rows still searched against all rows' base)")
    ap.add_argument("--bf16", action="store_true", help="also time --precision bf16")
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peer == "faiss":
        return peer_faiss(a.emb, a.k, a.threads, a.out, a.rows)

    os.makedirs(a.workdir, exist_ok=True)
    emb = a.emb
    if not emb:
        emb = os.path.join(a.workdir, f"random_{a.n}x{a.d}.h5")
        if not os.path.exists(emb):
            write_random(emb, a.n, a.d, seed=1)
    ours_out = os.path.join(a.workdir, "ours.h5")
    faiss_out = os.path.join(a.workdir, "faiss.npy")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    rows = a.n // a.shard_of  # = the rows of shard 0/shard_of (af_shard_rows)
    if a.emb:
        import h5py
        with h5py.File(a.emb, "r") as f:
            rows = f["embeddings"].shape[0] // a.shard_of
    print(f"embeddings {emb}  k={a.k} threads={a.threads} query rows={rows} (shard 0/{a.shard_of})  "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    ours, theirs, b16 = [], [], []
    bf16_out = os.path.join(a.workdir, "ours_bf16.h5")
    for rep in range(a.reps):
        t, m, _ = timed([a.cli, "score", "--embeddings", emb, "--k", str(a.k), "--threads",
                         str(a.threads), "--shard", f"0/{a.shard_of}", "--out", ours_out], env)
        ours.append((t, m))
        if a.bf16:
            tb, mb, _ = timed([a.cli, "score", "--embeddings", emb, "--k", str(a.k), "--threads",
                               str(a.threads), "--precision", "bf16", "--out", bf16_out], env)
            b16.append((tb, mb))
            print(f"run {rep}: affinity bf16 {tb:.2f} s {mb:.0f} MiB", flush=True)
        t2, m2, out = timed([sys.executable, __file__, "--peer", "faiss", "--emb", emb, "--k",
                             str(a.k), "--threads", str(a.threads), "--rows", str(rows), "--out", faiss_out], env)
        theirs.append((t2, m2, float(out.split()[-1])))
        print(f"run {rep}: affinity {t:.2f} s {m:.0f} MiB | faiss {t2:.2f} s "
              f"(search {theirs[-1][2]:.2f} s) {m2:.0f} MiB | ratio {t2 / t:.2f}x", flush=True)
    import h5py

    with h5py.File(ours_out, "r") as f:
        mine = f["neighbors"][:]
    fa = np.load(faiss_out)
    same_list = float(np.mean(np.all(np.sort(mine, 1) == np.sort(fa, 1), axis=1)))
    overlap = float(np.mean([len(np.intersect1d(p, q)) for p, q in zip(mine[:2000], fa[:2000])])) / a.k
    mo = statistics.median(t for t, _ in ours)
    mf = statistics.median(t for t, _, _ in theirs)
    ms = statistics.median(s for _, _, s in theirs)
    print(f"median: affinity {mo:.2f} s (peak {max(m for _, m in ours):.0f} MiB), "
          f"faiss {mf:.2f} s end to end, {ms:.2f} s search only "
          f"(peak {max(m for _, m, _ in theirs):.0f} MiB)")
    print(f"ratio faiss/affinity: {mf / mo:.2f}x end to end, {ms / mo:.2f}x vs faiss search only")
    print(f"agreement: identical neighbour sets in {same_list:.4f} of rows; "
          f"mean overlap@{a.k} (first 2000 rows) {overlap:.4f}")
    if b16:
        mb = statistics.median(t for t, _ in b16)
        with h5py.File(ours_out, "r") as f, h5py.File(bf16_out, "r") as g:
            n32, s32, n16, s16 = f["neighbors"][:], f["scores"][:], g["neighbors"][:], g["scores"][:]
        equal = np.all(n32 == n16, 1) & np.all(s32.view(np.int32) == s16.view(np.int32), 1)
        lost = sum(len(set(x) - set(y)) for x, y in zip(n32, n16))
        print(f"bf16: median {mb:.2f} s (peak {max(m for _, m in b16):.0f} MiB); "
              f"ratio faiss/affinity-bf16 {mf / mb:.2f}x end to end, {ms / mb:.2f}x vs search only; "
              f"fp32/bf16 {mo / mb:.2f}x; rows equal to fp32 bit for bit {equal.mean():.4f}, "
              f"neighbours lost {lost} of {n32.size}")


if __name__ == "__main__":
    main()
