#!/usr/bin/env python3
"""Reference fixtures for the BERT WordPiece tokenizer (engine/tokenizer.c).

Regenerate (from the repository root; dev-only, needs transformers >= 5 and
tokenizers, reads ../shared/datasets):

    python3 tools/reference/make_tokenizer_fixtures.py

writes tests/data/tokenizer/. Print the Unicode exception tables that
engine/unicode_bert.c carries (where the `tokenizers` crate disagrees with
utf8proc; needs libutf8proc.so.2) with

    python3 tools/reference/make_tokenizer_fixtures.py --unicode-exceptions

The reference is transformers' BertTokenizerFast (in transformers 5 an alias of
BertTokenizer, backed by the Rust `tokenizers` BertNormalizer +
BertPreTokenizer + WordPiece), built from a vocab.txt exactly as
from_pretrained would build it. Files written:

  texts.<corpus>.<config>.h32   "AFH1", u32 count, then per text the low 32 bits
                                of FNV-1a-64 over (n, ids...) as int32 LE.
  full_ids.txt                  "<config> <corpus> <index> <n> id..." for a few
                                hundred texts, so a hash mismatch is debuggable.
  edge_cases.json               hand-written edge cases (text as UTF-8 hex) with
                                the reference ids under every config.
  unicode_blocks.txt            per 4096-code-point block and normalizer config,
                                FNV-1a-64 of what BertNormalizer makes of each
                                code point alone, each output char tagged with
                                BertPreTokenizer's class (0 other, 1 space,
                                2 punctuation). Exhaustive over U+0000..U+10FFFF.
"""
import csv
import ctypes
import json
import os
import struct
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "datasets"))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
VOCABS = {
    "uncased": os.path.join(SHARED, "vocab", "bert-base-uncased", "vocab.txt"),
    "chinese": os.path.join(SHARED, "vocab", "bert-base-chinese", "vocab.txt"),
    # Tiny vocab (written by this script) in which combining marks that survive
    # accent stripping are pieces of their own, so their order shows in the ids.
    "marks": os.path.join(OUT, "marks_vocab.txt"),
}
MARKS_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    p + c for c in ["y", "q", "r", "s", "z", "\u1DF6", "\U0001D165", "\U0001D16D", "\u1ABF", "\u1B44"]
    for p in ("", "##")]
# name: (vocab, do_lower_case, strip_accents, tokenize_chinese_chars)
CONFIGS = {
    "uncased": ("uncased", True, None, True),            # all-MiniLM-L6-v2 / bert-base-uncased
    "uncased_nolower": ("uncased", False, None, True),
    "uncased_keepaccents": ("uncased", True, False, True),
    "uncased_nochinese": ("uncased", True, None, False),
    "chinese": ("chinese", False, None, True),           # bert-base-chinese's tokenizer_config
    "chinese_lower": ("chinese", True, None, True),
    "marks": ("marks", False, True, True),
}
# Configs hashed on every corpus; the others only on the Chinese corpora.
INSTACART_CONFIGS = ["uncased", "chinese", "chinese_lower"]

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def ids_hash32(ids):
    return fnv1a64(struct.pack("<%di" % (len(ids) + 1), len(ids), *ids)) & 0xFFFFFFFF


# ---- corpora: read exactly as tests/test_tokenizer.cc reads them ------------------
def read_lines(path):
    """Lines split on \\n, one trailing \\r removed, no empty piece after a final \\n."""
    data = open(path, "rb").read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]


def corpora():
    with open(os.path.join(SHARED, "instacart", "products.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][1] == "product_name"
    out = {"instacart": [r[1].encode("utf-8") for r in rows[1:]]}
    ch = os.path.join(SHARED, "chinese")
    out["titles"] = read_lines(os.path.join(ch, "product_titles.txt"))
    out["jd"] = [l.split(b"\t")[2] for l in read_lines(os.path.join(ch, "jd_fashion_descriptions.txt"))]
    out["taxonomy"] = read_lines(os.path.join(ch, "category_taxonomy.txt"))
    return out


def make_tokenizer(config):
    from transformers import BertTokenizerFast
    from transformers.models.bert.tokenization_bert import load_vocab
    vocab, lower, strip, chinese = CONFIGS[config]
    tok = BertTokenizerFast(vocab=load_vocab(VOCABS[vocab]), do_lower_case=lower,
                            strip_accents=strip, tokenize_chinese_chars=chinese)
    assert tok.vocab_size == len(load_vocab(VOCABS[vocab])), "vocab not loaded"
    return tok


def encode(tok, texts, max_len=512):
    return tok([t.decode("utf-8") for t in texts], truncation=True, max_length=max_len)["input_ids"]


# ---- hand-written edge cases ---------------------------------------------------
EDGE_CASES = [
    ("empty", "", 512),
    ("spaces only", "   \t \n  ", 512),
    ("newlines only", "\n\r\n\r", 512),
    ("plain", "Chocolate Sandwich Cookies", 512),
    ("accents", "Crème Brûlée Café Jalapeño Naïve Ångström Øl Łódź", 512),
    ("combining accents", "Cafe\u0301 n\u0303 a\u0308\u0301 e\u0323\u0302", 512),
    ("combining reorder", "a\u0315\u0300 x\U0001D165\U0001D16E\u0301 y\u1DF6\u0300\u0316", 512),
    ("canonical order of kept marks", "y\u1DF6\U0001D165 y\U0001D16D\U0001D165 q\u1ABF\u0301\U0001D165z "
     "r\U0001D16D\u0300\U0001D165 s\U0001D16D\u200b\U0001D165 y\u1B44\U0001D165\u1B44", 512),
    ("dotted capital I", "İstanbul İ İi \u0130\u0307", 512),
    ("sigma", "ΣΑΣ σας ΟΔΥΣΣΕΥΣ", 512),
    ("german", "STRASSE Straße ẞ", 512),
    ("ligatures", "ﬁne ﬂour ﬀ Ǆ ǅ ǆ", 512),
    ("full-width", "ＡＢＣ ｆｕｌｌ－ｗｉｄｔｈ １２３ ！？（）", 512),
    ("cjk punctuation", "中文，标点。「引号」【括号】《书名》、顿号；：", 512),
    ("mixed latin cjk", "iPhone13手机壳ABC中文mixed文本123", 512),
    ("cjk extension B and gap", "\U00020000\U0002A6DF\U0002B820\U0002B91F\U0002B920\U0002F800", 512),
    ("cjk compatibility", "\uF900\uFA0E\u2F00\u3400", 512),
    ("hangul", "한국어 텍스트 가나다", 512),
    ("japanese", "ひらがなカタカナ日本語ｶﾀｶﾅ", 512),
    ("emoji", "🍕 Pizza 🍔🍟 👍🏽 👨‍👩‍👧 ❤️ ☕", 512),
    ("zero width", "a\u200bb c\u200dd e\u200cf g\u2060h", 512),
    ("soft hyphen bom", "soft\u00adhyphen \ufeffbom\ufeff x", 512),
    ("controls", "a\x00b\x01c\x07d\x0be\x0cf\x1bg\x7fh\x85i", 512),
    ("replacement char", "bad\ufffdchar \ufffd", 512),
    ("private use", "a\ue000b \U000F0000c", 512),
    ("unicode spaces", "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u202fg\u205fh\u1680i\u180ej", 512),
    ("tabs crlf", "line1\r\nline2\tcol\rend", 512),
    ("multi-byte punctuation", "a—b–c…d«e»f‘g’h“i”j•k·l¿m¡n§o¶p†q", 512),
    ("symbols", "$5 €10 £3 ¥4 © ® ™ ° ± × ÷ ½ µ ~ ^ ` |", 512),
    ("ascii punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 512),
    ("special tokens", "abc[MASK]def [mask] [CLS][SEP]x [UNK] [PAD] [MASK", 512),
    ("numbers", "3.14159 1,000,000 2T-3T 9\"x13\" 10oz", 512),
    ("long word 100", "a" * 100, 512),
    ("long word 101", "b" * 101, 512),
    ("long word accents 101", "é" * 101, 512),
    ("long word multibyte 100", "ü" * 100 + " ok", 512),
    ("long mixed", "x" * 150 + " hello " + "中" * 5, 512),
    ("unknown word", "qqqqqqqqzzzzzz xyzzyx supercalifragilistic", 512),
    ("no full match", "ᚠᛇᚻ runes", 512),
    ("truncate 8", "one two three four five six seven eight nine ten", 8),
    ("truncate 8 pieces", "unbelievable unaffordable hyperventilation", 8),
    ("truncate 8 exact", "one two three four five six", 8),
    ("truncate 8 cjk", "中文标点符号测试句子很长", 8),
    ("truncate 512", " ".join(["word%d" % i for i in range(400)]), 512),
    ("truncate 2", "anything here", 2),
    ("greek cyrillic", "Καλημέρα Привет Ёлка", 512),
    ("arabic hebrew", "مرحبا بالعالم שָׁלוֹם", 512),
    ("devanagari thai", "नमस्ते สวัสดี", 512),
    ("greek varia", "a\u1fefb \u037e \u0387", 512),
    ("kelvin angstrom", "\u212a \u212b \u2126", 512),
    ("math letters", "𝐀𝐁𝐂 𝔸 ℌ", 512),
    ("mc marks", "x\u1734y \U00011938", 512),
    ("late punctuation", "a\u2e43b\u2e52c\U0001144Bd\u166de\U000111C9f", 512),
    ("late format", "a\u0890b\U000110CDc\U00013430d", 512),
    ("unassigned", "a\u0378b\U000E0080c", 512),
    ("new lowercase", "\u1c89\ua7cb\U00010D50\U00016EA0", 512),
]


def edge_cases():
    toks = {c: make_tokenizer(c) for c in CONFIGS}
    out = []
    for name, text, max_len in EDGE_CASES:
        ids = {c: encode(toks[c], [text.encode("utf-8")], max_len)[0] for c in CONFIGS}
        out.append({"name": name, "text": text, "hex": text.encode("utf-8").hex(),
                    "max_len": max_len, "ids": ids})
    return out


# ---- exhaustive per-code-point normalizer check ----------------------------------
NORM_CONFIGS = [(1, 1, 1), (1, 0, 1), (0, 0, 1), (0, 1, 1), (0, 0, 0)]  # (lowercase, strip, chinese)
BLOCK = 4096


def all_code_points():
    return [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def pretok_class_fn():
    from tokenizers import pre_tokenizers
    pt = pre_tokenizers.BertPreTokenizer()
    cache = {}

    def cls(ch):
        if ch not in cache:
            n = len(pt.pre_tokenize_str("a" + ch + "a"))
            cache[ch] = {1: 0, 2: 1, 3: 2}[n]
        return cache[ch]
    return cls


def unicode_blocks():
    from tokenizers import normalizers
    cls = pretok_class_fn()
    lines = []
    for lower, strip, chinese in NORM_CONFIGS:
        norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=bool(chinese),
                                          strip_accents=bool(strip), lowercase=bool(lower))
        for b in range(0x110000 // BLOCK):
            h = FNV_OFFSET
            for cp in range(b * BLOCK, (b + 1) * BLOCK):
                if 0xD800 <= cp <= 0xDFFF:
                    continue
                s = norm.normalize_str(chr(cp))
                words = [ord(ch) | (cls(ch) << 24) for ch in s] + [0xFFFFFFFF]
                h = fnv1a64(struct.pack("<%dI" % len(words), *words), h)
            lines.append("%d %d %d %d %016x" % (lower, strip, chinese, b, h))
    return lines


# ---- where the tokenizers crate disagrees with utf8proc -------------------------
def ranges(cps):
    out = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def combining_class_exceptions(u, strip):
    """Marks that survive accent stripping but whose canonical combining class
    the crate's NFD does not know (assigned after its Unicode version): NFD's
    canonical reordering treats them as starters (class 0)."""
    u.utf8proc_get_property.restype = ctypes.POINTER(ctypes.c_int16)

    def ccc(cp, zero=()):
        return 0 if cp in zero else u.utf8proc_get_property(cp)[1]  # (category, combining_class, ...)

    survivors = [cp for cp in range(0x300, 0x110000) if not 0xD800 <= cp <= 0xDFFF and ccc(cp) != 0
                 and strip.normalize_str(chr(cp)) == chr(cp)]
    probes = [0x1B44, 0x1D165, 0x1D16D]  # surviving marks of class 9, 216, 226

    def reorder(seq, zero):
        out = []
        for c in seq:
            j = len(out)
            out.append(c)
            k = ccc(c, zero)
            while k and j > 0 and ccc(out[j - 1], zero) > k:
                out[j] = out[j - 1]
                j -= 1
            out[j] = c
        return out

    def mismatches(zero):
        bad = set()
        for x in survivors:
            for p in probes:
                for seq in ([0x79, x, p], [0x79, p, x]):
                    if [ord(c) for c in strip.normalize_str("".join(map(chr, seq)))] != reorder(seq, zero):
                        bad.add(x)
        return sorted(bad)
    zero = set(mismatches(set()))
    assert not mismatches(zero), "treating them as class 0 does not explain the crate"
    return sorted(zero)


def print_unicode_exceptions():
    from tokenizers import normalizers
    u = ctypes.CDLL("libutf8proc.so.2")
    u.utf8proc_category_string.restype = ctypes.c_char_p
    u.utf8proc_unicode_version.restype = ctypes.c_char_p
    u.utf8proc_version.restype = ctypes.c_char_p
    u.utf8proc_tolower.restype = ctypes.c_int32
    u.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    buf = (ctypes.c_int32 * 32)()
    last = ctypes.c_int(0)

    def cat(cp):
        return u.utf8proc_category_string(cp).decode()

    def nfd(cp):
        n = u.utf8proc_decompose_char(cp, buf, 32, 1 << 4, ctypes.byref(last))
        return [buf[i] for i in range(n)]

    cls = pretok_class_fn()
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    hf_nfd = normalizers.NFD()
    sets = {k: [] for k in ("keep_format", "drop_extra", "space_extra", "not_punct", "extra_punct",
                            "keep_mn", "extra_mn", "no_nfd", "other_nfd", "lower")}
    for cp in all_code_points():
        c = chr(cp)
        k = cat(cp)
        # cleaning
        h = clean.normalize_str(c)
        ours_drop = cp in (0, 0xFFFD) or (k in ("Cc", "Cf", "Co", "Cs") and c not in "\t\n\r")
        ours_space = c in "\t\n\r" or k in ("Zs", "Zl", "Zp")
        if ours_drop and h != "":
            sets["keep_format"].append(cp)
        elif not ours_drop and h == "":
            sets["drop_extra"].append(cp)
        elif not ours_drop and (h == " ") != ours_space:
            sets["space_extra"].append(cp)
        # punctuation
        p = cls(c) == 2
        ours_p = (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126) or k.startswith("P")
        if ours_p and not p:
            sets["not_punct"].append(cp)
        elif p and not ours_p:
            sets["extra_punct"].append(cp)
        # canonical decomposition
        d = [ord(x) for x in hf_nfd.normalize_str(c)]
        ud = nfd(cp)
        if d != ud:
            sets["no_nfd" if d == [cp] else "other_nfd"].append(cp)
        # non-spacing marks (a code point that NFD leaves alone)
        if d == [cp]:
            gone = strip.normalize_str(c) == ""
            if k == "Mn" and not gone:
                sets["keep_mn"].append(cp)
            elif gone and k != "Mn":
                sets["extra_mn"].append(cp)
        # lowercase
        lo = [ord(x) for x in lower.normalize_str(c)]
        if cp != 0x130 and lo != [u.utf8proc_tolower(cp)]:
            sets["lower"].append((cp, lo))
    sets["no_ccc"] = combining_class_exceptions(u, strip)
    sets["lower"] = sets.pop("lower")  # print in engine/unicode_bert.c's order
    print("/* Generated by tools/reference/make_tokenizer_fixtures.py --unicode-exceptions:")
    print("   utf8proc %s (Unicode %s) vs tokenizers %s. */" % (
        u.utf8proc_version().decode(), u.utf8proc_unicode_version().decode(),
        __import__("tokenizers").__version__))
    for name, cps in sets.items():
        if name == "lower":
            rs = []  # [lo, hi, delta]
            for cp, lo in cps:
                assert len(lo) == 1, (cp, lo)
                if rs and rs[-1][1] == cp - 1 and rs[-1][2] == lo[0] - cp:
                    rs[-1][1] = cp
                else:
                    rs.append([cp, cp, lo[0] - cp])
            print("static const af_case_range lower_extra[] = { /* %d code points */" % len(cps))
            print("\n".join("    {0x%X, 0x%X, %d}," % tuple(r) for r in rs))
            print("};")
            continue
        if not cps:
            print("/* %s: none */" % name)
            continue
        print("static const af_cp_range %s[] = { /* %d code points */" % (name, len(cps)))
        rs = ranges(cps)
        for i in range(0, len(rs), 4):
            print("    " + " ".join("{0x%X, 0x%X}," % tuple(r) for r in rs[i:i + 4]))
        print("};")


def main():
    if "--unicode-exceptions" in sys.argv:
        print_unicode_exceptions()
        return
    os.makedirs(OUT, exist_ok=True)
    with open(VOCABS["marks"], "w", encoding="utf-8") as f:
        f.write("\n".join(MARKS_VOCAB) + "\n")
    texts = corpora()
    full = []
    for config in CONFIGS:
        tok = make_tokenizer(config)
        for corpus, items in texts.items():
            if config == "marks" or (corpus == "instacart" and config not in INSTACART_CONFIGS):
                continue
            ids = encode(tok, items)
            with open(os.path.join(OUT, "texts.%s.%s.h32" % (corpus, config)), "wb") as f:
                f.write(b"AFH1" + struct.pack("<I", len(ids)))
                f.write(b"".join(struct.pack("<I", ids_hash32(x)) for x in ids))
            # full ids: the first texts, and every non-ASCII instacart name
            pick = list(range(min(10, len(items))))
            if corpus == "instacart":
                pick = list(range(40)) + [i for i, t in enumerate(items) if max(t, default=0) > 127]
            for i in pick:
                full.append("%s %s %d %d %s" % (config, corpus, i, len(ids[i]), " ".join(map(str, ids[i]))))
    with open(os.path.join(OUT, "full_ids.txt"), "w") as f:
        f.write("\n".join(full) + "\n")
    with open(os.path.join(OUT, "edge_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"configs": {k: {"vocab": v[0], "lowercase": v[1],
                                   "strip_accents": -1 if v[2] is None else int(v[2]),
                                   "tokenize_chinese_chars": v[3]} for k, v in CONFIGS.items()},
                   "cases": edge_cases()}, f, ensure_ascii=False, indent=0)
    with open(os.path.join(OUT, "unicode_blocks.txt"), "w") as f:
        f.write("# lowercase strip_accents tokenize_chinese_chars block(4096 code points) fnv1a64\n")
        f.write("\n".join(unicode_blocks()) + "\n")


if __name__ == "__main__":
    main()
