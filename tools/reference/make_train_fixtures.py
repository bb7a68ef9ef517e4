#!/usr/bin/env python3
"""PyTorch reference fixtures for the training loop (tests/test_train.cc).

Regenerate (development only; needs torch, transformers, sentence-transformers, h5py):
    python3 tools/reference/make_train_fixtures.py

Model: tests/data/tiny_bert_a (a random BertModel, C=64, L=2, NH=4, F=96),
run per sequence without padding (eager attention), dropout off (eval mode),
then mean pooling -> L2 normalisation -> sentence-transformers'
MultipleNegativesRankingLoss math (scale 20 * cos_sim, cross-entropy with
labels arange(B)), in float32 as sentence-transformers trains.

Writes tests/data/train/grads.h5:
    /ids (T) int32, /cu_seqlens (2B+1) int32: B anchors, then their B positives
    /loss scalar, /grad/<hf name> float32 (autograd gradients; pooler.* has none)
and tests/data/train/steps.h5: 3 AdamW steps of 2 accumulated micro-batches
(B = 4 pairs each; loss / 2 per micro-batch as gradient accumulation does),
torch.optim.AdamW(foreach=False) with decay on weights only (bias and
LayerNorm excluded), clip_grad_norm_(1.0), get_linear_schedule_with_warmup:
    /micro_ids (sum T) int32, /micro_tok (n_micro + 1) int64 offsets,
    /micro_cu (n_micro, 2B+1) int32, /losses (n_micro) float32,
    /lrs (n_steps) float64, /final/<hf name> float32 parameters after the steps,
    attributes lr, warmup, total_steps, weight_decay, max_grad_norm, grad_accum, batch.
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as Fn
from sentence_transformers import util
from transformers import BertModel, get_linear_schedule_with_warmup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "data", "tiny_bert_a")
OUT = os.path.join(ROOT, "tests", "data", "train")


def random_batch(rng, B, vocab, max_len):
    """2B sequences [CLS] ids [SEP] of random lengths: B anchors then B positives."""
    seqs = []
    for _ in range(2 * B):
        n = int(rng.integers(1, max_len - 1))
        seqs.append([2] + [int(x) for x in rng.integers(5, vocab, n)] + [3])
    return seqs


def embed(model, seqs):
    pooled = []
    for s in seqs:
        h = model(input_ids=torch.tensor([s])).last_hidden_state[0]  # (L, C)
        pooled.append(h.mean(dim=0))
    return Fn.normalize(torch.stack(pooled), p=2, dim=1)  # (2B, C)


def mnr_loss(emb, B):
    scores = util.cos_sim(emb[:B], emb[B:]) * 20.0  # (B, B)
    return Fn.cross_entropy(scores, torch.arange(B))


def flat(seqs):
    ids = np.array([t for s in seqs for t in s], dtype=np.int32)
    cu = np.cumsum([0] + [len(s) for s in seqs]).astype(np.int32)
    return ids, cu


def decays(name):
    return not (name.endswith(".bias") or "LayerNorm" in name)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)

    model = BertModel.from_pretrained(MODEL, attn_implementation="eager").float()
    model.eval()  # dropout off
    vocab, max_pos = model.config.vocab_size, model.config.max_position_embeddings

    # ---- gradients of one batch --------------------------------------------
    B = 5
    seqs = random_batch(rng, B, vocab, 14)
    loss = mnr_loss(embed(model, seqs), B)
    loss.backward()
    ids, cu = flat(seqs)
    with h5py.File(os.path.join(OUT, "grads.h5"), "w") as f:
        f["ids"], f["cu_seqlens"] = ids, cu
        f["loss"] = np.float32(loss.item())
        for name, p in model.named_parameters():
            if p.grad is not None:
                f["grad/" + name] = p.grad.numpy().astype(np.float32)
    print("grads.h5: loss", loss.item())

    # ---- AdamW steps -----------------------------------------------------------
    model = BertModel.from_pretrained(MODEL, attn_implementation="eager").float()
    model.eval()
    lr, warmup, total, wd, max_norm, accum, Bs = 2e-3, 1, 4, 0.01, 1.0, 2, 4
    n_steps = 3
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith("pooler.")]
    groups = [
        {"params": [p for n, p in named if decays(n)], "weight_decay": wd},
        {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    micro_ids, micro_tok, micro_cu, losses, lrs = [], [0], [], [], []
    for step in range(n_steps):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(accum):
            seqs = random_batch(rng, Bs, vocab, 12)
            ids, cu = flat(seqs)
            micro_ids.append(ids)
            micro_tok.append(micro_tok[-1] + len(ids))
            micro_cu.append(cu)
            loss = mnr_loss(embed(model, seqs), Bs)
            losses.append(loss.item())
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], max_norm)
        opt.step()
        sched.step()
        opt.zero_grad()
    with h5py.File(os.path.join(OUT, "steps.h5"), "w") as f:
        f["micro_ids"] = np.concatenate(micro_ids)
        f["micro_tok"] = np.array(micro_tok, dtype=np.int64)
        f["micro_cu"] = np.stack(micro_cu)
        f["losses"] = np.array(losses, dtype=np.float32)
        f["lrs"] = np.array(lrs, dtype=np.float64)
        for name, p in model.named_parameters():
            f["final/" + name] = p.detach().numpy().astype(np.float32)
        for k, v in dict(lr=lr, warmup=warmup, total_steps=total, weight_decay=wd,
                         max_grad_norm=max_norm, grad_accum=accum, batch=Bs).items():
            f.attrs[k] = v
    print("steps.h5: losses", losses)


if __name__ == "__main__":
    main()
