#!/usr/bin/env python3
"""Golden fixtures for the encoder: Hugging Face transformers / sentence-transformers
outputs that the C encoder must reproduce (tests/test_encoder.cc).

Regenerate (development only; needs torch, transformers, sentence-transformers, h5py):
    python3 tools/reference/make_encoder_fixtures.py \
        --model weights/hf/all-MiniLM-L6-v2 --out tests/data

Writes
  tests/data/encoder/minilm.h5   200 real product titles (Instacart + Chinese):
      /texts, /ids (concatenated token ids), /cu_seqlens, /pooled [200, 384]
      (SentenceTransformer.encode, normalised), /hidden [7, T20, 384] every
      layer's hidden states for the first 20 texts (cu_seqlens_hidden).
  tests/data/tiny_bert_a/, tests/data/tiny_bert_b/   small random BertModels of
      other sizes (Hugging Face folders: config.json, model.safetensors,
      vocab.txt, tokenizer_config.json; b also the sentence-transformers files)
  tests/data/encoder/tiny_a.h5, tiny_b.h5: their token ids, hidden states, pooled.
"""
import argparse
import csv
import json
import os
import random

import h5py
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "datasets")


def load_titles(seed=7, n_en=180, n_zh=20):
    with open(os.path.join(SHARED, "instacart", "products.csv"), newline="", encoding="utf-8") as f:
        names = [r["product_name"] for r in csv.DictReader(f)]
    with open(os.path.join(SHARED, "chinese", "product_titles.txt"), encoding="utf-8") as f:
        zh = [l.strip() for l in f if l.strip()]
    rng = random.Random(seed)
    en = rng.sample(names, n_en)
    zh = rng.sample(zh, n_zh)
    # interleave so the hidden-state subset (first 20) holds both languages
    texts = []
    for i in range(max(len(en), len(zh))):
        if i < len(zh):
            texts.append(zh[i])
        if i < len(en):
            texts.append(en[i])
    return texts


def str_dtype():
    return h5py.string_dtype(encoding="utf-8")


@torch.no_grad()
def run_bert(model, ids_list):
    """Per-sequence forward without padding: hidden states [L+1, T, C] concatenated."""
    hidden = []
    for ids in ids_list:
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        hidden.append(torch.stack(out.hidden_states)[:, 0])  # (L+1, len, C)
    return torch.cat(hidden, dim=1).numpy()


def write_minilm(model_dir, out_dir):
    from sentence_transformers import SentenceTransformer

    texts = load_titles()
    tok = BertTokenizerFast.from_pretrained(model_dir)
    st = SentenceTransformer(model_dir, device="cpu")
    max_len = st.max_seq_length
    ids = [tok(t, truncation=True, max_length=max_len)["input_ids"] for t in texts]
    pooled = st.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    bert = BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    n_hidden = 20
    hidden = run_bert(bert, ids[:n_hidden]).astype(np.float32)
    cu = np.cumsum([0] + [len(x) for x in ids]).astype(np.int32)
    cu_h = np.cumsum([0] + [len(x) for x in ids[:n_hidden]]).astype(np.int32)
    os.makedirs(os.path.join(out_dir, "encoder"), exist_ok=True)
    with h5py.File(os.path.join(out_dir, "encoder", "minilm.h5"), "w") as f:
        f.create_dataset("texts", data=np.array(texts, dtype=object), dtype=str_dtype())
        f.create_dataset("ids", data=np.concatenate(ids).astype(np.int32))
        f.create_dataset("cu_seqlens", data=cu)
        f.create_dataset("pooled", data=pooled.astype(np.float32))
        f.create_dataset("cu_seqlens_hidden", data=cu_h)
        f.create_dataset("hidden", data=hidden, compression="gzip", compression_opts=9, shuffle=True)
        f.attrs["source"] = "sentence-transformers/all-MiniLM-L6-v2 via transformers BertModel + SentenceTransformer.encode"


def tiny_vocab():
    """A small WordPiece vocabulary: specials, ASCII characters, their ## forms, a few words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    words = ["milk", "organic", "cheese", "bread", "apple", "juice", "chocolate", "green", "tea",
             "water", "##s", "##ed", "##ing", "的", "中", "国"]
    return specials + chars + ["##" + c for c in chars if c.isalnum()] + words


def write_tiny(out_dir, name, cfg_kwargs, st_files, seed):
    torch.manual_seed(seed)
    vocab = tiny_vocab()
    cfg = BertConfig(vocab_size=len(vocab), **cfg_kwargs)
    model = BertModel(cfg, add_pooling_layer=st_files is None).eval()
    # random weights with non-trivial LayerNorm parameters
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.08)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg.to_json_file(os.path.join(d, "config.json"))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
                   "model_max_length": cfg.max_position_embeddings, "tokenizer_class": "BertTokenizer"}, f)
    pooling, normalize = "mean", False
    if st_files:
        pooling, normalize = st_files
        with open(os.path.join(d, "modules.json"), "w") as f:
            mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
            if normalize:
                mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
            json.dump(mods, f)
        os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
        with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": cfg.hidden_size,
                       "pooling_mode_cls_token": pooling == "cls",
                       "pooling_mode_mean_tokens": pooling == "mean",
                       "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f)
        with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
            json.dump({"max_seq_length": min(64, cfg.max_position_embeddings), "do_lower_case": False}, f)
    tok = BertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=True)
    texts = ["Organic Green Tea", "chocolate milk", "Apple Juice 100%", "中国 bread",
             "a", "Sparkling Water, Lemon-Lime (12 oz)"]
    ids = [tok(t)["input_ids"] for t in texts]
    hidden = run_bert(model, ids).astype(np.float32)
    last = torch.from_numpy(hidden[-1])
    cu = np.cumsum([0] + [len(x) for x in ids]).astype(np.int32)
    pooled = []
    for i in range(len(ids)):
        seq = last[cu[i]:cu[i + 1]]
        v = seq[0] if pooling == "cls" else seq.mean(0)
        if normalize:
            v = torch.nn.functional.normalize(v, dim=0)
        pooled.append(v)
    pooled = torch.stack(pooled).numpy()
    with h5py.File(os.path.join(out_dir, "encoder", f"{name.replace('_bert', '')}.h5"), "w") as f:
        f.create_dataset("texts", data=np.array(texts, dtype=object), dtype=str_dtype())
        f.create_dataset("ids", data=np.concatenate(ids).astype(np.int32))
        f.create_dataset("cu_seqlens", data=cu)
        f.create_dataset("cu_seqlens_hidden", data=cu)
        f.create_dataset("hidden", data=hidden)
        f.create_dataset("pooled", data=pooled.astype(np.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "weights", "hf", "all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(os.path.join(args.out, "encoder"), exist_ok=True)
    write_minilm(args.model, args.out)
    # head size 16, with pooler, plain HF folder (mean pooling, no normalisation)
    write_tiny(args.out, "tiny_bert_a", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=96, max_position_embeddings=40,
                                             type_vocab_size=2, layer_norm_eps=1e-12), None, 1)
    # head size 64 (as BERT-base), CLS pooling + normalisation via sentence-transformers files
    write_tiny(args.out, "tiny_bert_b", dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=2,
                                             intermediate_size=256, max_position_embeddings=64,
                                             type_vocab_size=1, layer_norm_eps=1e-5), ("cls", True), 2)


if __name__ == "__main__":
    main()
