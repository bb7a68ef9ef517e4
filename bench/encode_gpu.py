#!/usr/bin/env python3
"""GPU encode benchmark: `affinity embed --device cuda` against sentence-transformers
`encode` on PyTorch CUDA, same GPU, same weights, same 49,688 Instacart product
names, in the same run; prints throughput, the ratio and the parity of the two
outputs.

The weights are a seeded random BertModel with all-MiniLM-L6-v2's shapes and
the real bert-base-uncased vocabulary (the 90 MB checkpoint does not fit the
GPU machine's transfer limit); speed does not depend on the values, and both
sides load the very same safetensors file.

Run on the GPU machine by bench/gpu_check.sh (AF_CLI = our binary), or by hand:
    AF_CLI=build/affinity python3 bench/encode_gpu.py
"""
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find(*cands):
    for c in cands:
        if os.path.exists(c):
            return c
    sys.exit(f"none of {cands} exists")


def make_model(d, vocab_path):
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512, layer_norm_eps=1e-12)
    m = BertModel(cfg, add_pooling_layer=False).eval()
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    cfg.to_json_file(os.path.join(d, "config.json"))
    save_file({k: v.contiguous() for k, v in m.state_dict().items() if "position_ids" not in k},
              os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(vocab_path, encoding="utf-8") as f, open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as g:
        g.write(f.read())
    json.dump({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"},
              open(os.path.join(d, "tokenizer_config.json"), "w"))
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
              open(os.path.join(d, "modules.json"), "w"))
    json.dump({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True,
               "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(d, "1_Pooling", "config.json"), "w"))
    json.dump({"max_seq_length": 256, "do_lower_case": False},
              open(os.path.join(d, "sentence_bert_config.json"), "w"))


def main():
    cli = os.environ.get("AF_CLI", os.path.join(ROOT, "build", "affinity"))
    products = find(os.path.join(ROOT, "..", "shared", "datasets", "instacart", "products.csv"),
                    os.path.join(ROOT, ".gpu", "data", "products.csv"))
    vocab = find(os.path.join(ROOT, "..", "shared", "datasets", "vocab", "bert-base-uncased", "vocab.txt"),
                 os.path.join(ROOT, ".gpu", "data", "vocab.txt"))
    reps = int(os.environ.get("REPS", "3"))
    tmp = tempfile.mkdtemp(prefix="encode_gpu_")
    hf = os.path.join(tmp, "hf")
    make_model(hf, vocab)
    h5 = os.path.join(tmp, "model.h5")
    subprocess.run([cli, "import-hf", hf, "--out", h5], check=True)
    with open(products, newline="", encoding="utf-8") as f:
        names = [r["product_name"] for r in csv.DictReader(f)]

    # ours: the whole CLI (start, load, tokenize, encode, write), and its own encode time
    out = os.path.join(tmp, "emb.h5")
    ours, ours_inner = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run([cli, "embed", "--device", "cuda", "--model", h5, "--catalog", products,
                            "--id-column", "product_id", "--text-column", "product_name",
                            "--batch-tokens", "65536", "--out", out], capture_output=True, text=True)
        ours.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit("affinity embed failed: " + p.stderr)
        m = re.search(r"in ([0-9.]+) s", p.stderr)
        ours_inner.append(float(m.group(1)) if m else float("nan"))
    import h5py
    with h5py.File(out, "r") as f:
        e_ours = f["embeddings"][:]

    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(hf, device="cuda")
    tok = st.tokenizer
    n_tokens = sum(len(x) for x in tok(names, truncation=True, max_length=256)["input_ids"])
    results = {}
    for bs in (64, 512):
        st.encode(names[:2048], batch_size=bs)  # warm-up
        ts = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            e_pt = st.encode(names, batch_size=bs, convert_to_numpy=True)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        results[bs] = (statistics.median(ts), e_pt)
    best_bs = min(results, key=lambda b: results[b][0])
    t_pt, e_pt = results[best_bs]
    diff = np.abs(e_ours - e_pt).max()
    cos = (e_ours * e_pt).sum(1) / (np.linalg.norm(e_ours, axis=1) * np.linalg.norm(e_pt, axis=1))
    t_ours, t_in = statistics.median(ours), statistics.median(ours_inner)
    n = len(names)
    print(f"GPU: {torch.cuda.get_device_name(0)}; {n} texts, {n_tokens} tokens; median of {reps}")
    print(f"{'':34s} {'seconds':>8s} {'texts/s':>9s} {'tokens/s':>10s}")
    print(f"{'affinity embed (whole CLI)':34s} {t_ours:8.3f} {n / t_ours:9.0f} {n_tokens / t_ours:10.0f}")
    print(f"{'affinity embed (inside, no start)':34s} {t_in:8.3f} {n / t_in:9.0f} {n_tokens / t_in:10.0f}")
    for bs, (t, _) in sorted(results.items()):
        print(f"{'sentence-transformers bs=' + str(bs):34s} {t:8.3f} {n / t:9.0f} {n_tokens / t:10.0f}")
    print(f"ratio (ours whole CLI / best PyTorch bs={best_bs}): {t_pt / t_ours:.2f}x; inside: {t_pt / t_in:.2f}x")
    print(f"parity vs PyTorch fp32: max-abs {diff:.3g}, min cosine {cos.min():.7f}")


if __name__ == "__main__":
    main()
