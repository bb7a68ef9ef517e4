#!/usr/bin/env python3
"""Tokenizer throughput, ours vs Hugging Face, same data, one thread each.

    python3 bench/tokenizer_hf.py [PASSES]      (from the repository root, after building)

Runs build/bench_tokenizer (af_tokenizer_encode over every Instacart product
name) and BertTokenizerFast on the same names with the same vocab, with the
Rust thread pool limited to one thread (RAYON_NUM_THREADS=1,
TOKENIZERS_PARALLELISM=false), and prints the median pass of each and the ratio.
Checks that both produce the same number of ids.
"""
import os
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import csv
import re
import statistics
import subprocess
import sys
import time

from transformers import BertTokenizerFast
from transformers.models.bert.tokenization_bert import load_vocab

passes = int(sys.argv[1]) if len(sys.argv) > 1 else 7
vocab = "../shared/datasets/vocab/bert-base-uncased/vocab.txt"
products = "../shared/datasets/instacart/products.csv"
with open(products, newline="", encoding="utf-8") as f:
    names = [r[1] for r in list(csv.reader(f))[1:]]

tok = BertTokenizerFast(vocab=load_vocab(vocab))
backend = tok.backend_tokenizer
times = {"batch": [], "loop": []}
for _ in range(passes):
    t0 = time.perf_counter()
    enc = backend.encode_batch(names)
    times["batch"].append(time.perf_counter() - t0)
n_ids = sum(len(e.ids) for e in enc)
for _ in range(max(1, passes // 2)):
    t0 = time.perf_counter()
    for s in names:
        backend.encode(s)
    times["loop"].append(time.perf_counter() - t0)

out = subprocess.run(["build/bench_tokenizer", vocab, products, str(passes)], check=True,
                     capture_output=True, text=True).stdout.strip()
print("ours:", out)
ours_ids = int(re.search(r"ids (\d+)", out).group(1))
ours_s = float(re.search(r"passes ([0-9.]+) s", out).group(1))
assert ours_ids == n_ids, (ours_ids, n_ids)
for k, v in times.items():
    med = statistics.median(v)
    print("hf %-5s: texts %d ids %d median %.4f s: %.0f ids/s   ours/hf speed ratio %.2fx" % (
        k, len(names), n_ids, med, n_ids / med, med / ours_s))
