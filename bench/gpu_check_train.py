#!/usr/bin/env python3
"""Training throughput on a GPU for bench/gpu_check_train.sh: affinity's trainer
(bench_train_gpu, fp32 and bf16) against PyTorch + transformers' BertModel in
bf16 autocast, eager and torch.compile, in the same run, on the same token
sequences (same pairs, same lengths) of all-MiniLM-L6-v2's shape.

    python3 bench/gpu_check_train.py --ours PATH/bench_train_gpu [--device cuda]
        [--batch 256] [--steps 10] [--warmup 3] [--out DIR]

Both sides: batch of B pairs = 2B sequences (B anchors, then B positives),
mean pooling, L2 normalisation, multiple-negatives ranking loss (scale 20,
in-batch negatives, as sentence-transformers' MultipleNegativesRankingLoss),
dropout 0.1, AdamW (lr 2e-5, wd 0.01) with global-norm clipping 1.0, one
optimizer step per batch, a device sync per step. Weights are random in both
(seeded; speed does not depend on them): the GPU machine has no network and
no model files. Sequences: [CLS] + 2..14 random word-piece ids + [SEP]
(Instacart product names are 4..16 tokens), seeded. torch pads each batch to
its longest sequence (an attention mask, as sentence-transformers does; SDPA
attention); affinity packs them. tokens/s counts real tokens on both sides.

MFU = model FLOPs per second / the GPU's dense bf16 tensor peak (H100/H200
SXM 989 TFLOP/s, A100 312), for every row (fp32 rows too, so the rows compare);
model FLOPs per sequence of length n: 3 x forward, forward = 2 n (L (4 C^2 +
2 C F)) + 4 L n^2 C (no padding, no embedding gather, no loss).

Prints one row per measurement for gpu_check's table, each line
"ROW|step|state|seconds|note", and writes DIR/train_bench.json.
--device cpu runs the same logic on the CPU with fp32 (no autocast, no
compile unless --compile): the check that this script works, not a benchmark.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

C, L, NH, F, V, P = 384, 6, 12, 1536, 30522, 512
PEAK_BF16 = [("H200", 989.4e12), ("H100", 989.4e12), ("A100", 312e12), ("L40S", 362e12)]


def make_sequences(n_seq, seed):
    """n_seq sequences: [CLS] + 2..14 random ids + [SEP]."""
    rng = random.Random(seed)
    return [[101] + [rng.randrange(1000, V) for _ in range(rng.randint(2, 14))] + [102]
            for _ in range(n_seq)]


def model_flops(lengths):
    per_tok = 2 * L * (4 * C * C + 2 * C * F)
    return 3 * sum(n * per_tok + 4 * L * n * n * C for n in lengths)


def run_ours(exe, device, precision, ids_path, batch, steps, warmup, timeout):
    t0 = time.time()
    p = subprocess.run([exe, device, precision, ids_path, str(batch), str(steps), str(warmup)],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError((p.stderr or p.stdout).strip().splitlines()[-1:] or ["failed"])
    line = [x for x in p.stdout.splitlines() if x.startswith("{")][-1]
    r = json.loads(line)
    r["wall_s"] = time.time() - t0
    return r


def torch_model(device):
    import torch
    try:
        from transformers import BertConfig, BertModel
    except ImportError:
        return None
    cfg = BertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=L, num_attention_heads=NH,
                     intermediate_size=F, max_position_embeddings=P, hidden_act="gelu",
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    try:
        m = BertModel(cfg, add_pooling_layer=False, attn_implementation="sdpa")
    except TypeError:
        m = BertModel(cfg, add_pooling_layer=False)
    return m.to(device).train()


def run_torch(device, seqs, batch, steps, warmup, compiled, bf16):
    import torch
    import torch.nn.functional as Fn
    model = torch_model(device)
    if model is None:
        raise RuntimeError("transformers is not installed")
    fwd = torch.compile(model, dynamic=True) if compiled else model
    kw = {"fused": True} if device == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, **kw)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def embed(group):
        n = max(len(s) for s in group)
        ids = torch.zeros((len(group), n), dtype=torch.long)
        mask = torch.zeros((len(group), n), dtype=torch.long)
        for i, s in enumerate(group):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        ids, mask = ids.to(device), mask.to(device)
        h = fwd(input_ids=ids, attention_mask=mask).last_hidden_state
        mf = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mf).sum(1) / mf.sum(1).clamp(min=1e-9)  # sentence-transformers' mean
        return Fn.normalize(pooled, dim=-1)

    tokens, t_total, compile_s = 0, 0.0, 0.0
    for s in range(warmup + steps):
        group = seqs[s * 2 * batch:(s + 1) * 2 * batch]
        sync()
        t0 = time.time()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            e = embed(group)
            a, p = e[:batch].float(), e[batch:].float()
            scores = 20.0 * a @ Fn.normalize(p, dim=-1).T  # cos_sim * scale
            loss = Fn.cross_entropy(scores, torch.arange(batch, device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        dt = time.time() - t0
        if s < warmup:
            compile_s += dt
        else:
            tokens += sum(len(x) for x in group)
            t_total += dt
    return {"impl": "torch-compile" if compiled else "torch-eager", "precision":
            "bf16-autocast" if bf16 else "fp32", "tokens": tokens, "tokens_per_s": tokens / t_total,
            "s_per_step": t_total / steps, "warmup_s": compile_s, "last_loss": float(loss.detach())}


def peak(device):
    if device != "cuda":
        return None, "cpu"
    try:
        import torch
        name = torch.cuda.get_device_name(0)
    except Exception as e:  # no torch, or no GPU: no MFU, the rest still runs
        return None, f"unknown ({str(e)[:60]})"
    for key, val in PEAK_BF16:
        if key in name:
            return val, name
    return None, name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="bench_train_gpu (or its wrapper)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=".")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    ap.add_argument("--compile", action="store_true", help="torch.compile on the CPU too")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n = 2 * a.batch * (a.steps + a.warmup)
    seqs = make_sequences(n, seed=0)
    ids_path = os.path.join(a.out, "train_bench_ids.txt")
    with open(ids_path, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")
    timed = seqs[2 * a.batch * a.warmup:]
    flops_step = model_flops([len(s) for s in timed]) / a.steps
    pk, gpu = peak(a.device)
    bf16 = a.device == "cuda"
    plan = [("ours fp32", lambda: run_ours(a.ours, a.device, "fp32", ids_path, a.batch, a.steps,
                                           a.warmup, a.timeout))]
    if a.device == "cuda":
        plan.append(("ours bf16", lambda: run_ours(a.ours, a.device, "bf16", ids_path, a.batch,
                                                   a.steps, a.warmup, a.timeout)))
    plan.append(("torch eager", lambda: run_torch(a.device, seqs, a.batch, a.steps, a.warmup,
                                                  False, bf16)))
    if a.device == "cuda" or a.compile:
        plan.append(("torch compile", lambda: run_torch(a.device, seqs, a.batch, a.steps,
                                                        a.warmup, True, bf16)))
    results = {}
    for name, fn in plan:
        t0 = time.time()
        try:
            r = fn()
            r["mfu"] = flops_step / r["s_per_step"] / pk if pk else None
            results[name] = r
            mfu = f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else ""
            print(f"ROW|train {name}|PASS|{time.time() - t0:.0f}|{r['tokens_per_s']:.0f} tokens/s, "
                  f"{1000 * r['s_per_step']:.1f} ms/step{mfu} (B={a.batch} pairs)", flush=True)
        except Exception as e:  # one failing side must not hide the others
            results[name] = {"error": str(e)}
            print(f"ROW|train {name}|FAIL|{time.time() - t0:.0f}|{str(e)[:90]}", flush=True)
    best = max((results.get(k, {}).get("tokens_per_s", 0) for k in ("ours fp32", "ours bf16")),
               default=0)
    for peer in ("torch eager", "torch compile"):
        tp = results.get(peer, {}).get("tokens_per_s")
        if tp and best:
            goal = 2.0 if peer == "torch eager" else 1.3
            state = "PASS" if best / tp >= goal else "BELOW-GOAL"
            print(f"ROW|train ours / {peer}|{state}|0|{best / tp:.2f}x (goal >= {goal}x; best of "
                  f"ours fp32/bf16)", flush=True)
    with open(os.path.join(a.out, "train_bench.json"), "w") as f:
        json.dump({"gpu": gpu, "batch_pairs": a.batch, "steps": a.steps, "warmup": a.warmup,
                   "model_flops_per_step": flops_step, "peak_bf16": pk,
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "results": results}, f, indent=1)
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
