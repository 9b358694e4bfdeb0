"""Shared by the bench scripts: time a jitted call, emit a result as one JSON line (stdout and a file), batch
a call, build teacher-forced LM sequences."""

import json
import statistics
import time

import jax
import numpy as np

from videopoet_jax.tasks import registry, sequence


def timed(fn, repeats: int) -> tuple[float, float]:
  """(median seconds of `repeats` calls of `fn()` after a warm-up call, seconds of the warm-up call incl.
  compile); each call waits for its results (jax.block_until_ready)."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times), first


def emit(result: dict, path: str) -> None:
  line = json.dumps(result)
  with open(path, "w") as f:
    f.write(line + "\n")
  print(line, flush=True)


def batched(fn, items: np.ndarray, batch_size: int) -> np.ndarray:
  """`fn` over `items` in batches of `batch_size` (the last one padded by repetition, so one shape
  compiles), outputs concatenated."""
  out = []
  for i in range(0, len(items), batch_size):
    chunk = items[i : i + batch_size]
    pad = batch_size - len(chunk)
    out.append(np.asarray(fn(np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])))[: len(chunk)])
  return np.concatenate(out)


def records_batch(gen, task_name: str, records: list[dict]) -> sequence.Batch:
  """`task_name`'s training sequences (prefix and output, as the LM is teacher-forced) of `records` (each
  `sequence.build`'s streams: `text`, `video` `[t, h, w]`, `audio` `[levels, frames]` ids, ...), padded to
  the longest: what an LM's likelihood is scored on."""
  task = registry.get(task_name)
  seqs = [sequence.build(task, r, gen.vocab, gen.layout) for r in records]
  return sequence.collate(seqs, [0] * len(seqs), max(len(s.tokens) for s in seqs), gen.vocab, gen.layout)


def caption_batch(gen, task_name: str, captions: list[str], video_ids: np.ndarray) -> sequence.Batch:
  """`records_batch` of each caption with its clip's video ids `[N, t, h, w]`."""
  records = [{"text": gen.encode_text(c)[0], "video": v} for c, v in zip(captions, video_ids, strict=True)]
  return records_batch(gen, task_name, records)
