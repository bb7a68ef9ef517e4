#!/usr/bin/env python3
"""Writes tests/data/embeddings_h5py.h5: a tiny embeddings file written by h5py
(an independent HDF5 writer), read back by tests/test_embfile.cc.

    python3 tools/reference/make_embfile_fixture.py
"""
import os

import h5py
import numpy as np

out = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "embeddings_h5py.h5")
ids = ["apple", "banana", "Bread (whole wheat)", "tofu", "é-clair", "牛奶"]
x = np.array([[i + j / 4 for j in range(3)] for i in range(len(ids))], dtype=np.float32)
with h5py.File(out, "w") as f:
    f.create_dataset("ids", data=ids, dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("embeddings", data=x)
    f.attrs["format"] = "affinity-embeddings"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["model"] = "h5py-fixture"
    f.attrs["pooling"] = "mean"
    f.attrs["normalized"] = np.int64(0)
    f.attrs["dim"] = np.int64(3)
print("wrote", out)

# Embeddings from other tools: what a user writes after
# `x = SentenceTransformer(...).encode(texts)` (float32 [N, d]), with no
# attributes of ours. ids absent, integer, or fixed-length bytes; float16 too.
data = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data")
y = np.array([[np.float32((3 * i + 5 * j) % 7 - 3) / np.float32(j + 2) for j in range(4)]
              for i in range(5)], dtype=np.float32)
with h5py.File(os.path.join(data, "embeddings_other_only.h5"), "w") as f:
    f.create_dataset("embeddings", data=y)
with h5py.File(os.path.join(data, "embeddings_other_f16_intids.h5"), "w") as f:
    f.create_dataset("embeddings", data=y.astype(np.float16))
    f.create_dataset("ids", data=np.array([10, 11, 12, 13, 14], dtype=np.int64))
with h5py.File(os.path.join(data, "embeddings_other_fixed_ids.h5"), "w") as f:
    f.create_dataset("embeddings", data=y)
    f.create_dataset("ids", data=np.array([b"a", b"bb", b"ccc", b"dddd", b"e"]))
np.save(os.path.join(data, "embeddings_other.npy"), y)
np.save(os.path.join(data, "embeddings_other_f16.npy"), y.astype(np.float16))
print("wrote the other-tool fixtures in", data)
