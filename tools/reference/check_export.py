#!/usr/bin/env python3
"""Checks `affinity export-hf`: SentenceTransformer(DIR) must give the embeddings
of `affinity embed --model CKPT.h5` on the same texts (max abs difference <= 1e-4).

    python3 tools/reference/check_export.py --model runs/ft/final.h5 \
        [--cli build/affinity] [--n 1000] [--work /tmp/check-export]

Exports CKPT.h5 to WORK/hf, embeds the first N Instacart product names with
both, and prints the largest absolute difference and the smallest cosine.
Exit status 1 when the difference exceeds the tolerance. Development only
(needs sentence-transformers, h5py)."""
import argparse
import csv
import os
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "affinity"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--work", default="/tmp/check-export")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    hf = os.path.join(a.work, "hf")
    subprocess.run([a.cli, "export-hf", "--model", a.model, "--out", hf], check=True)

    src = os.path.join(ROOT, "..", "shared", "datasets", "instacart", "products.csv")
    with open(src, newline="", encoding="utf-8") as f:
        rows = [(r["product_id"], r["product_name"]) for _, r in zip(range(a.n), csv.DictReader(f))]
    cat = os.path.join(a.work, "catalog.csv")
    with open(cat, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["product_id", "product_name"])
        w.writerows(rows)
    emb = os.path.join(a.work, "ours.h5")
    subprocess.run([a.cli, "embed", "--model", a.model, "--catalog", cat, "--id-column",
                    "product_id", "--text-column", "product_name", "--out", emb], check=True)
    with h5py.File(emb) as f:
        ours = f["embeddings"][:]

    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(hf, device="cpu")
    texts = [" ".join(t.split()) for _, t in rows]  # the catalog loader collapses whitespace
    ref = st.encode(texts, batch_size=64, convert_to_numpy=True)
    diff = np.abs(ours - ref).max()
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"{len(texts)} texts: max |affinity - sentence-transformers| = {diff:.3e}, "
          f"min cosine = {cos.min():.8f} (tolerance {a.tol:g})")
    print(st)
    sys.exit(0 if diff <= a.tol else 1)


if __name__ == "__main__":
    main()
