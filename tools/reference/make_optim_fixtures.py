#!/usr/bin/env python3
"""Reference fixtures for the training math (tests/test_loss.cc, tests/test_adamw.cc).

Everything here is computed by the upstream libraries, in float32 as they run
in practice:
  - sentence-transformers' MultipleNegativesRankingLoss (and its symmetric
    variant, directions=("query_to_doc", "doc_to_query"),
    partition_mode="per_direction"), via compute_loss_from_embeddings, with
    torch.autograd for the gradients;
  - torch.optim.AdamW (foreach=False: the single-tensor path),
    transformers.get_linear_schedule_with_warmup and
    torch.nn.utils.clip_grad_norm_;
  - a tiny model (one nn.Linear + the ranking loss) trained 5 steps.

Writes JSON (float32 values printed with full precision) to tests/data/optim/.
Regenerate from the repository root:
    python3 tools/reference/make_optim_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from transformers import get_linear_schedule_with_warmup

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "optim")


def flat(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).numpy()]


def mnr(symmetric, scale):
    kw = dict(scale=scale)
    if symmetric:
        kw.update(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    return MultipleNegativesRankingLoss(model=None, **kw)


def loss_cases(gen):
    cases = []
    # (B, negative columns, C, symmetric, how close positives are to anchors)
    # (closeness chosen so that losses are O(1): gradients far from zero)
    for B, k, C, sym, closeness in [(4, 0, 8, False, 0.0), (5, 0, 16, True, 0.15),
                                    (3, 1, 8, False, 0.1), (6, 2, 12, True, 0.1),
                                    (1, 0, 4, False, 0.0), (8, 0, 32, False, 0.2)]:
        A = torch.randn(B, C, generator=gen) * 2.0  # not normalised: cos_sim does it
        P = closeness * A + (1 - closeness) * torch.randn(B, C, generator=gen)
        negs = [torch.randn(B, C, generator=gen) for _ in range(k)]
        leaves = [A.clone().requires_grad_(), P.clone().requires_grad_()] + \
                 [n.clone().requires_grad_() for n in negs]
        loss = mnr(sym, 20.0).compute_loss_from_embeddings(leaves, None)
        loss.backward()
        N = torch.cat(negs) if negs else torch.zeros(0, C)
        dN = torch.cat([x.grad for x in leaves[2:]]) if negs else torch.zeros(0, C)
        cases.append(dict(B=B, M=N.shape[0], C=C, scale=20.0, symmetric=int(sym),
                          anchors=flat(A), positives=flat(P), negatives=flat(N),
                          loss=loss.item(), d_anchors=flat(leaves[0].grad),
                          d_positives=flat(leaves[1].grad), d_negatives=flat(dN)))
    return cases


def adamw_case(gen):
    """Three named tensors, 6 steps of 2 accumulated micro-batch gradients each,
    warm-up 2 of 6 steps, weight decay on the weight only, clipping active."""
    names = ["encoder.layer.0.attention.self.query.weight",
             "encoder.layer.0.attention.self.query.bias",
             "encoder.layer.0.attention.output.LayerNorm.weight"]
    shapes = [(4, 3), (4,), (4,)]
    params = [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    init = [flat(p) for p in params]
    lr, wd, warmup, total, max_norm, micro = 0.05, 0.1, 2, 6, 1.0, 2
    decay = [0 if (n.endswith(".bias") or "LayerNorm" in n) else 1 for n in names]
    groups = [{"params": [p for p, d in zip(params, decay) if d], "weight_decay": wd},
              {"params": [p for p, d in zip(params, decay) if not d], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    steps = []
    for step in range(total):
        grads = [[torch.randn(*s, generator=gen) * 2.0 for s in shapes] for _ in range(micro)]
        for i, p in enumerate(params):  # as loss / micro accumulated by backward()
            p.grad = None
            for g in grads:
                p.grad = g[i] / micro if p.grad is None else p.grad + g[i] / micro
        lr_used = opt.param_groups[0]["lr"]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
        opt.step()
        sched.step()
        steps.append(dict(micro_grads=[[flat(g) for g in mg] for mg in grads], lr=lr_used,
                          total_norm=float(norm), params=[flat(p) for p in params]))
    return dict(names=names, sizes=[int(np.prod(s)) for s in shapes], decay=decay, init=init,
                lr=lr, weight_decay=wd, beta1=0.9, beta2=0.999, eps=1e-8, warmup=warmup,
                total=total, max_norm=max_norm, micro=micro, steps=steps)


def tiny_model_case(gen):
    """nn.Linear(6 -> 5) encoding anchors and positives, ranking loss, 5 AdamW steps."""
    IC, OC, B, total, warmup = 6, 5, 4, 5, 1
    lin = torch.nn.Linear(IC, OC)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(OC, IC, generator=gen) * 0.5)
        lin.bias.copy_(torch.randn(OC, generator=gen) * 0.1)
    init_w, init_b = flat(lin.weight), flat(lin.bias)
    opt = torch.optim.AdamW([{"params": [lin.weight], "weight_decay": 0.01},
                             {"params": [lin.bias], "weight_decay": 0.0}],
                            lr=0.02, foreach=False)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    loss_fn = mnr(False, 20.0)
    steps = []
    for _ in range(total):
        XA = torch.randn(B, IC, generator=gen)
        XP = 0.5 * XA + torch.randn(B, IC, generator=gen)
        opt.zero_grad()
        loss = loss_fn.compute_loss_from_embeddings([lin(XA), lin(XP)], None)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(lin.parameters(), 0.5, foreach=False)
        opt.step()
        sched.step()
        steps.append(dict(xa=flat(XA), xp=flat(XP), loss=loss.item(), total_norm=float(norm)))
    return dict(IC=IC, OC=OC, B=B, total=total, warmup=warmup, lr=0.02, weight_decay=0.01,
                max_norm=0.5, scale=20.0, init_w=init_w, init_b=init_b, steps=steps,
                final_w=flat(lin.weight), final_b=flat(lin.bias))


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240601)
    os.makedirs(OUT, exist_ok=True)
    files = {"mnr_loss.json": {"cases": loss_cases(gen)},
             "adamw.json": adamw_case(gen),
             "tiny_model.json": tiny_model_case(gen)}
    import sentence_transformers
    import transformers
    for name, obj in files.items():
        obj["generated_by"] = ("tools/reference/make_optim_fixtures.py with torch %s, "
                               "sentence-transformers %s, transformers %s"
                               % (torch.__version__, sentence_transformers.__version__,
                                  transformers.__version__))
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(obj, f, indent=None, separators=(",", ":"))
            f.write("\n")
        print("wrote", os.path.join(OUT, name), file=sys.stderr)


if __name__ == "__main__":
    main()
