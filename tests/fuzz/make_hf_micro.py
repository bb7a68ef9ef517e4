#!/usr/bin/env python3
"""Writes tests/fuzz/hf_micro/: the fixture folder of fuzz_hf_config.

The same Hugging Face / sentence-transformers layout as tests/data/tiny_bert_b
(its tokenizer_config.json, modules.json, sentence_bert_config.json and
vocab.txt, copied), but a micro BERT: hidden 16 (the importer wants a multiple of 16), 2 heads, 2 layers,
intermediate 32, the same 125-token vocabulary and 64 positions. Its
model.safetensors is 34 KB instead of 1.7 MB, so that an import spends its
time in the files the fuzzer mutates, not in converting weights (under ASan
the 1.7 MB model took most of each execution). Weights: a fixed-seed
pseudo-random sequence (no numpy needed); deterministic, so rerunning this
script rewrites the same bytes.

    python3 tests/fuzz/make_hf_micro.py
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "data", "tiny_bert_b")
OUT = os.path.join(HERE, "hf_micro")
C, F, L, V, P = 16, 32, 2, 125, 64


def tensors():
    t = {
        "embeddings.word_embeddings.weight": [V, C],
        "embeddings.position_embeddings.weight": [P, C],
        "embeddings.token_type_embeddings.weight": [1, C],
        "embeddings.LayerNorm.weight": [C],
        "embeddings.LayerNorm.bias": [C],
    }
    for l in range(L):
        p = f"encoder.layer.{l}."
        for m in ("query", "key", "value"):
            t[p + f"attention.self.{m}.weight"] = [C, C]
            t[p + f"attention.self.{m}.bias"] = [C]
        t[p + "attention.output.dense.weight"] = [C, C]
        t[p + "attention.output.dense.bias"] = [C]
        t[p + "attention.output.LayerNorm.weight"] = [C]
        t[p + "attention.output.LayerNorm.bias"] = [C]
        t[p + "intermediate.dense.weight"] = [F, C]
        t[p + "intermediate.dense.bias"] = [F]
        t[p + "output.dense.weight"] = [C, F]
        t[p + "output.dense.bias"] = [C]
        t[p + "output.LayerNorm.weight"] = [C]
        t[p + "output.LayerNorm.bias"] = [C]
    return t


def main():
    os.makedirs(os.path.join(OUT, "1_Pooling"), exist_ok=True)
    for f in ("tokenizer_config.json", "modules.json", "sentence_bert_config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(SRC, f), os.path.join(OUT, f))
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg.update(hidden_size=C, intermediate_size=F, num_hidden_layers=L, num_attention_heads=2)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    pool = json.load(open(os.path.join(SRC, "1_Pooling", "config.json")))
    pool["word_embedding_dimension"] = C
    with open(os.path.join(OUT, "1_Pooling", "config.json"), "w") as f:
        json.dump(pool, f)

    header, data, state = {"__metadata__": {"format": "pt"}}, bytearray(), 12345
    for name, shape in sorted(tensors().items()):
        n = 1
        for s in shape:
            n *= s
        start = len(data)
        for _ in range(n):
            state = (state * 1103515245 + 12345) % (1 << 31)  # an LCG: the same bytes everywhere
            v = 1.0 if name.endswith("LayerNorm.weight") else (state / (1 << 31) - 0.5) * 0.2
            data += struct.pack("<f", v)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [start, len(data)]}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(OUT, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(data))


if __name__ == "__main__":
    main()
