#!/usr/bin/env python3
"""Training-step throughput: affinity's CPU trainer vs PyTorch +
sentence-transformers (MultipleNegativesRankingLoss), same pairs, batch,
sequence lengths, threads, dropout 0.1, AdamW + clipping, in the same run.

    python3 bench/train_cpu.py [--batch 32] [--steps 8] [--warmup 2] [--threads 2] [--reps 3]

Pairs: products bought together (>= 2 baskets) in the Instacart train head,
shuffled with seed 0; each step takes the next BATCH pairs (both sides embed
the same texts in the same order). Each implementation runs in its own
process (bench_train_cpu, or this script with --worker torch) so that peak
RSS is its own. tokens/s counts real tokens (sum of sequence lengths; the
torch side pads each batch to its longest text, which it must do, and the
padded count is printed too). Prints the medians of --reps runs and the
ratio affinity / torch. Needs torch, sentence-transformers and a built
build/bench_train_cpu."""
import argparse
import collections
import csv
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "datasets", "instacart")
MODEL_H5 = os.path.join(ROOT, "weights", "all-MiniLM-L6-v2.h5")
MODEL_HF = "/work/main/weights/hf/all-MiniLM-L6-v2"


def make_pairs(path, n=20000):
    names = {}
    with open(os.path.join(SHARED, "products.csv"), newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            names[r["product_id"]] = " ".join(r["product_name"].split())
    orders = collections.defaultdict(set)
    with open(os.path.join(SHARED, "order_products__train_head.csv"), newline="") as f:
        for r in csv.DictReader(f):
            orders[r["order_id"]].add(r["product_id"])
    pc = collections.Counter()
    for s in orders.values():
        for a, b in itertools.combinations(sorted(s), 2):
            pc[(a, b)] += 1
    pairs = sorted(p for p, c in pc.items() if c >= 2)
    random.Random(0).shuffle(pairs)
    with open(path, "w", encoding="utf-8") as f:
        for a, b in pairs[:n]:
            f.write(names[a] + "\t" + names[b] + "\n")


def torch_worker(a):
    import torch
    from sentence_transformers import SentenceTransformer, losses
    from transformers import get_linear_schedule_with_warmup

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    pairs = [l.rstrip("\n").split("\t") for l in open(a.pairs, encoding="utf-8")]
    model = SentenceTransformer(MODEL_HF, device="cpu")
    model.train()
    loss_fn = losses.MultipleNegativesRankingLoss(model)
    params = [p for n, p in model.named_parameters() if "pooler" not in n]
    opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, 0, a.steps + a.warmup)
    tokens = padded = 0
    t_total = 0.0
    for s in range(a.warmup + a.steps):
        batch = pairs[s * a.batch:(s + 1) * a.batch]
        t0 = time.perf_counter()
        fa = model.tokenize([x for x, _ in batch])
        fp = model.tokenize([y for _, y in batch])
        loss = loss_fn([fa, fp], None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        dt = time.perf_counter() - t0
        if s >= a.warmup:
            t_total += dt
            tokens += int(fa["attention_mask"].sum() + fp["attention_mask"].sum())
            padded += fa["input_ids"].numel() + fp["input_ids"].numel()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "torch", "batch": a.batch, "steps": a.steps, "threads": a.threads,
                      "tokens": tokens, "padded_tokens": padded, "tokens_per_s": tokens / t_total,
                      "s_per_step": t_total / a.steps, "peak_rss_mb": rss,
                      "torch": torch.__version__}))


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pairs", default="/tmp/affinity-train-bench-pairs.tsv")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench_train_cpu"))
    ap.add_argument("--worker", choices=["torch"])
    a = ap.parse_args()
    if a.worker:
        return torch_worker(a)
    if not os.path.exists(a.pairs):
        make_pairs(a.pairs)
    env = dict(os.environ)
    env.setdefault("OPENBLAS_CORETYPE", "Haswell")  # as the CLI and tests use (our GEMMs ignore it)
    runs = {"affinity": [], "affinity-bf16": [], "torch": []}
    for r in range(a.reps):
        ours = run_json([a.bin, MODEL_H5, a.pairs, str(a.batch), str(a.steps), str(a.warmup),
                         str(a.threads), "0.1"], env)
        try:
            b16 = run_json([a.bin, MODEL_H5, a.pairs, str(a.batch), str(a.steps), str(a.warmup),
                            str(a.threads), "0.1", "bf16"], env)
            runs["affinity-bf16"].append(b16)
        except subprocess.CalledProcessError as e:
            print(f"bf16: not run ({e.stderr.strip()})")
        ref = run_json([sys.executable, __file__, "--worker", "torch", "--batch", str(a.batch),
                        "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads",
                        str(a.threads), "--pairs", a.pairs], env)
        runs["affinity"].append(ours)
        runs["torch"].append(ref)
        print(f"rep {r}: affinity {ours['tokens_per_s']:.0f} tok/s ({ours['peak_rss_mb']:.0f} MB), "
              f"torch {ref['tokens_per_s']:.0f} tok/s ({ref['peak_rss_mb']:.0f} MB, "
              f"{ref['padded_tokens']} padded / {ref['tokens']} real tokens)", flush=True)
    runs = {k: v for k, v in runs.items() if v}
    med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in runs.items()}
    mem = {k: statistics.median(x["peak_rss_mb"] for x in v) for k, v in runs.items()}
    sps = {k: statistics.median(x["s_per_step"] for x in v) for k, v in runs.items()}
    print(f"batch {a.batch} pairs, {a.steps} timed steps, {a.threads} threads, {a.reps} reps (medians)")
    for k in runs:
        print(f"  {k:13s} {med[k]:8.1f} tokens/s  {sps[k]:.3f} s/step  peak RSS {mem[k]:.0f} MB")
    for k in runs:
        if k != "torch":
            print(f"ratio {k}/torch: {med[k] / med['torch']:.2f}x tokens/s, "
                  f"{mem[k] / mem['torch']:.2f}x peak memory")


if __name__ == "__main__":
    main()
