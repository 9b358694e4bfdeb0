"""Pre-tokenized datasets on disk: array_record shards of msgpack records, plus a manifest.

  OUT/manifest.json                      what produced the shards (dataset, tokenizers, streams, masks)
  OUT/text.model                         the sentencepiece model of the text stream (when it has one)
  OUT/<split>/<split>-00000-of-00004.array_record

A record is one example: `index` (in its split), `caption`, `attributes` (JSON-ready), and one int32
array per token stream, e.g. `video` `[t, h, w]`, `audio` `[levels, frames]`, `text` `[L]`,
`inpaint_video` / `outpaint_video` / `structure_video` `[t, h, w]`, or `text_embedding` `[L, D]` float32.
Shards are written to a temporary name and renamed when complete, so a shard that exists is finished.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
from array_record.python import array_record_module
from flax import serialization

MANIFEST = "manifest.json"
TEXT_MODEL = "text.model"
FORMAT = 1
# One record per chunk: fast random access for grain.
WRITER_OPTIONS = "group_size:1"
TMP_SUFFIX = ".tmp"
# A manifest's tokenizer path when the bundled general tokenizer made the ids.
BUNDLED = "bundled"


def shard_path(out: str, split: str, shard: int, num_shards: int) -> str:
  return os.path.join(out, split, f"{split}-{shard:05d}-of-{num_shards:05d}.array_record")


def shard_paths(out: str, split: str) -> list[str]:
  """The finished shards of `split`, in order."""
  paths = sorted(glob.glob(os.path.join(out, split, f"{split}-*-of-*.array_record")))
  if not paths:
    raise FileNotFoundError(f"{out} has no token shards for split {split!r}")
  return paths


def serialize(record: dict) -> bytes:
  """A record (str/int/float/dict/list/numpy leaves) -> msgpack bytes (deterministic)."""
  return serialization.msgpack_serialize(record)


def deserialize(data: bytes) -> dict:
  return serialization.msgpack_restore(data)


def write_shard(path: str, records: list[dict]) -> None:
  """Writes `records` to `path` atomically (a temporary file renamed when complete)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + TMP_SUFFIX
  writer = array_record_module.ArrayRecordWriter(tmp, WRITER_OPTIONS)
  for record in records:
    writer.write(serialize(record))
  writer.close()
  os.replace(tmp, path)


def read_shard(path: str) -> list[dict]:
  reader = array_record_module.ArrayRecordReader(path)
  try:
    return [deserialize(r) for r in reader.read_all()]
  finally:
    reader.close()


def remove_partial(out: str, split: str) -> list[str]:
  """Deletes temporary files left by an interrupted run; returns their paths."""
  stale = glob.glob(os.path.join(out, split, "*" + TMP_SUFFIX))
  for path in stale:
    os.remove(path)
  return stale


def read_manifest(out: str) -> dict | None:
  path = os.path.join(out, MANIFEST)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_manifest(out: str, manifest: dict) -> None:
  os.makedirs(out, exist_ok=True)
  tmp = os.path.join(out, MANIFEST + TMP_SUFFIX)
  with open(tmp, "w") as f:
    json.dump({**manifest, "format": FORMAT}, f, indent=1, sort_keys=True)
  os.replace(tmp, os.path.join(out, MANIFEST))


def as_int32(array) -> np.ndarray:
  return np.asarray(array, dtype=np.int32)
