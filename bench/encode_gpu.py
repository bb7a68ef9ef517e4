#!/usr/bin/env python3
"""GPU encode benchmark: `affinity embed --device cuda` in fp32 and bf16 against
sentence-transformers `encode` in fp16 and bf16 (PyTorch SDPA) — and fp32 for
parity — on the same GPU, same weights, same texts, in the same run: the 49,688
Instacart product names and a 1M-title synthetic catalog (2-6 words drawn from
those names, seeded). Prints tokens/s, the ratios, the parity (pooled cosine of
ours bf16 and fp32 against sentence-transformers fp32) and the peak device
memory of each stage, and adds its rows to the one table (bench/gpu_table.py).

The weights are a seeded random BertModel with all-MiniLM-L6-v2's shapes and
the real bert-base-uncased vocabulary (the 90 MB checkpoint does not fit the
GPU machine's transfer limit); speed does not depend on the values, and both
sides load the very same safetensors file.

Run on the GPU machine by bench/gpu_check.sh (AF_CLI = our binary), or by hand:
    AF_CLI=build/affinity python3 bench/encode_gpu.py
    AF_BENCH_TINY=1 AF_CLI=build/affinity python3 bench/encode_gpu.py   (CPU, tiny: logic only)
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_table import TINY, PeakMem, row, torch_peak_mib  # noqa: E402

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


def synthetic(names, n, path):
    """n titles of 2-6 words drawn (seeded) from the words of the real names."""
    words = sorted({w for s in names for w in s.split()})
    rng = np.random.default_rng(7)
    lens = rng.integers(2, 7, n)
    picks = rng.integers(0, len(words), int(lens.sum()))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["product_id", "product_name"])
        o = 0
        for i, l in enumerate(lens):
            w.writerow([i, " ".join(words[j] for j in picks[o:o + l])])
            o += l
    with open(path, newline="", encoding="utf-8") as f:
        return [r["product_name"] for r in csv.DictReader(f)]


def run_ours(cli, h5, catalog, precision, out, reps, device):
    """(median whole-CLI s, median inside s, peak MiB); the embeddings in out."""
    whole, inner, peak = [], [], 0
    for _ in range(reps):
        with PeakMem() as pm:
            t0 = time.perf_counter()
            p = subprocess.run([cli, "embed", "--device", device, "--precision", precision, "--model", h5,
                                "--catalog", catalog, "--id-column", "product_id", "--text-column",
                                "product_name", "--batch-tokens", "65536", "--out", out],
                               capture_output=True, text=True)
            whole.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit("affinity embed failed: " + p.stderr)
        m = re.search(r"in ([0-9.]+) s", p.stderr)
        inner.append(float(m.group(1)) if m else float("nan"))
        peak = max(peak, pm.peak)
    return statistics.median(whole), statistics.median(inner), peak


def run_st(st, names, dtype, reps, dev):
    """(median s, peak MiB, embeddings) of sentence-transformers in dtype."""
    st.to(dtype)
    st.encode(names[:2048], batch_size=512)  # warm-up
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(reps):
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        e = st.encode(names, batch_size=512, convert_to_numpy=True)
        if dev == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), torch_peak_mib(torch), e.astype(np.float32)


def min_cos(a, b):
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)).min())


def main():
    cli = os.environ.get("AF_CLI", os.path.join(ROOT, "build", "affinity"))
    products = find(os.path.join(ROOT, "..", "shared", "datasets", "instacart", "products.csv"),
                    os.path.join(ROOT, ".gpu", "data", "products.csv"))
    vocab = find(os.path.join(ROOT, "..", "shared", "datasets", "vocab", "bert-base-uncased", "vocab.txt"),
                 os.path.join(ROOT, ".gpu", "data", "vocab.txt"))
    dev = "cpu" if TINY else "cuda"
    reps = int(os.environ.get("REPS", "1" if TINY else "2"))
    tmp = tempfile.mkdtemp(prefix="encode_gpu_")
    hf = os.path.join(tmp, "hf")
    make_model(hf, vocab)
    h5 = os.path.join(tmp, "model.h5")
    subprocess.run([cli, "import-hf", hf, "--out", h5], check=True)
    with open(products, newline="", encoding="utf-8") as f:
        names = [r["product_name"] for r in csv.DictReader(f)]
    real = products
    if TINY:  # a small slice of the real names
        names = names[:300]
        real = os.path.join(tmp, "real.csv")
        with open(real, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["product_id", "product_name"])
            w.writerows(enumerate(names))
    synth = os.path.join(tmp, "synthetic.csv")
    snames = synthetic(names, 1000 if TINY else 1000000, synth)

    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(hf, device=dev)
    peers = [torch.bfloat16] if TINY else [torch.float16, torch.bfloat16]
    print(f"GPU: {torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu (tiny check)'}; median of {reps}")
    for label, catalog, texts in (("Instacart names", real, names), ("synthetic titles", synth, snames)):
        if label == "synthetic titles":
            reps = 1  # 1M titles: one run each, to stay inside gpu_check's 5 minutes
        n_tok = sum(len(x) for x in st.tokenizer(texts, truncation=True, max_length=256)["input_ids"])
        out = {p: os.path.join(tmp, f"emb_{p}.h5") for p in ("fp32", "bf16")}
        ours = {p: run_ours(cli, h5, catalog, p, out[p], reps, dev) for p in ("fp32", "bf16")}
        import h5py
        emb = {}
        for p in out:
            with h5py.File(out[p], "r") as f:
                emb[p] = f["embeddings"][:]
        ref = None
        if label == "Instacart names":  # parity against sentence-transformers fp32
            _, _, ref = run_st(st, texts, torch.float32, 1, dev)
        res = {dt: run_st(st, texts, dt, reps, dev) for dt in peers}
        print(f"{label}: {len(texts)} texts, {n_tok} tokens")
        for p in ("fp32", "bf16"):
            whole, inner, peak = ours[p]
            parity = f"min cos vs ST fp32 {min_cos(emb[p], ref):.6f}" if ref is not None else (
                f"min cos vs ours fp32 {min_cos(emb[p], emb['fp32']):.6f}")
            for dt, (t, pk, _) in res.items():
                name = str(dt).replace("torch.", "")
                row(f"encode {label} N={len(texts)} ours {p} vs ST {name}",
                    f"{n_tok / inner / 1e6:.3g} M tok/s ({n_tok / whole / 1e6:.3g} whole CLI)",
                    f"{n_tok / t / 1e6:.3g} M tok/s", f"{t / inner:.2f}x", parity, f"{peak}", f"{pk:.0f}")


if __name__ == "__main__":
    main()
