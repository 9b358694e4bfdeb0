"""grain input pipelines over token shards (or any random-access source, e.g. a TFDS data source).

  it = iter(token_pipeline.token_dataset("tokens/shapes_world", "train", batch_size=32, seed=0))
  batch = next(it)                      # dict: stacked / padded arrays, lists of strings
  state = it.get_state()                # JSON-ready; it.set_state(state) resumes right after `batch`

A checkpoint saves the iterator with orbax through grain's handler (`checkpoint_args(it)` under an item
name of the CheckpointManager), so a run restored mid-epoch reads exactly the batches an uninterrupted run
would have read: the order is a pure function of (seed, epoch), and the state is the position in it.

Multi-process training reads through a `GlobalOrder` instead: random access into the order of the whole
dataset, so every process reads only the examples of its own rows of each global batch, and the data a run
trains on is the same for any number of processes (`GlobalOrder.read`). Its state, the position in the
global order, is the same on every process: it is saved once (training/checkpoints.py) and restores into a run
with any process count; grain's handler writes one `process_<i>-of-<n>.json` per process, which only a run
with the same process count can read.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence

import grain
import jax
import numpy as np

from videopoet_jax.data import token_shards

# Padding value for variable-length arrays in a batch (sentencepiece's pad id, never a real video id
# position since lengths are returned alongside).
PAD_VALUE = 0
LENGTH_SUFFIX = "_length"
# Values that collate stacks into arrays (numbers and numpy arrays; strings and dicts stay lists).
NUMERIC = (np.ndarray, np.generic, int, float, bool)


def collate(records: Sequence[dict]) -> dict:
  """Batches records: same-shape arrays and numbers are stacked `[B, ...]`; arrays whose leading
  dimension varies are zero-padded to the longest and get `<key>_length` `[B]`; other values (strings,
  dicts) become lists.
  Keys that some records lack (e.g. `audio` of an image) become lists with None where missing.
  """
  keys = list(dict.fromkeys(k for r in records for k in r))
  batch = {}
  for key in keys:
    values = [r.get(key) for r in records]
    if any(v is None for v in values) or not all(isinstance(v, NUMERIC) for v in values):
      batch[key] = values
      continue
    values = [np.asarray(v) for v in values]
    shapes = {v.shape for v in values}
    if len(shapes) == 1:
      batch[key] = np.stack(values)
      continue
    if len({v.shape[1:] for v in values}) != 1:
      batch[key] = values  # shapes differ beyond the leading dimension: leave to the consumer
      continue
    longest = max(len(v) for v in values)
    padded = np.full((len(values), longest, *values[0].shape[1:]), PAD_VALUE, values[0].dtype)
    for i, v in enumerate(values):
      padded[i, : len(v)] = v
    batch[key] = padded
    batch[key + LENGTH_SUFFIX] = np.asarray([len(v) for v in values], np.int32)
  return batch


def _ordered(dataset: grain.MapDataset, decode, seed: int, shuffle: bool, num_epochs: int | None):
  """The example order both readers share: shuffled by `seed` (reshuffled every epoch), repeated, decoded."""
  if shuffle:
    dataset = dataset.shuffle(seed=seed)
  dataset = dataset.repeat(num_epochs)
  return dataset if decode is None else dataset.map(decode)


def make_dataset(
  source,
  decode: Callable | None = None,
  *,
  seed: int,
  shuffle: bool = True,
  num_epochs: int | None = None,
  batch_size: int | None = None,
  drop_remainder: bool = True,
  shard_index: int | None = None,
  shard_count: int | None = None,
  read_threads: int = 1,
) -> grain.IterDataset:
  """An iterable over `source` (random access), reshuffled every epoch, batched with `collate`.

  Args:
    source: a random-access source (len + getitem), e.g. grain's ArrayRecordDataSource or a TFDS one.
    decode: record -> example, applied after shuffling (None: records are examples).
    seed: fixes the order of every epoch.
    num_epochs: None repeats forever.
    shard_index, shard_count: this host's slice of the examples (default: jax process index / count).
    read_threads: threads reading and decoding ahead (the order is the same for any number).
  """
  shard_index = jax.process_index() if shard_index is None else shard_index
  shard_count = jax.process_count() if shard_count is None else shard_count
  mine = grain.MapDataset.source(source)[shard_index::shard_count]
  dataset = _ordered(mine, decode, seed, shuffle, num_epochs)
  dataset = dataset.to_iter_dataset(
    grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=2 * max(read_threads, 1))
  )
  if batch_size:
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, batch_fn=collate)
  return dataset


def global_order(source, decode: Callable | None = None, *, seed: int) -> grain.MapDataset:
  """Random access into `make_dataset`'s order of the whole `source` (one process): element i is the i-th
  example that a one-process iterator with the same seed yields (reshuffled every epoch, repeated)."""
  return _ordered(grain.MapDataset.source(source), decode, seed, shuffle=True, num_epochs=None)


class GlobalOrder:
  """A position in the global example order, and reads of any rows of the examples that follow it.

  Every process holds one, at the same position: a global batch of `count` examples is the next `count`
  examples of the order, a process reads the rows [start, stop) its devices hold (`read`), and all move on
  by `count` (`advance`). The state is `{"next_index": position}`, the same as a one-process grain
  iterator's over the same order.
  """

  STATE_KEY = "next_index"

  def __init__(self, dataset: grain.MapDataset, read_threads: int = 1):
    self.dataset = dataset
    self.position = 0
    self._pool = concurrent.futures.ThreadPoolExecutor(max(read_threads, 1)) if read_threads > 1 else None

  def read(self, start: int, stop: int) -> list:
    """The examples at positions [position + start, position + stop) of the order."""
    indices = range(self.position + start, self.position + stop)
    if self._pool is None:
      return [self.dataset[i] for i in indices]
    return list(self._pool.map(self.dataset.__getitem__, indices))

  def advance(self, count: int) -> None:
    self.position += count

  def get_state(self) -> dict:
    return {self.STATE_KEY: self.position}

  def set_state(self, state: dict) -> None:
    self.position = int(state[self.STATE_KEY])


def token_order(out: str, split: str, seed: int, read_threads: int = 1) -> GlobalOrder:
  """A `GlobalOrder` over the token shards `out/<split>/*.array_record`, at position 0."""
  source = grain.sources.ArrayRecordDataSource(token_shards.shard_paths(out, split))
  return GlobalOrder(global_order(source, token_shards.deserialize, seed=seed), read_threads)


def token_dataset(out: str, split: str, **kwargs) -> grain.IterDataset:
  """`make_dataset` over the token shards `out/<split>/*.array_record` written by tokenizers/encode.py."""
  source = grain.sources.ArrayRecordDataSource(token_shards.shard_paths(out, split))
  return make_dataset(source, token_shards.deserialize, **kwargs)


def checkpoint_args(iterator: grain.DatasetIterator, restore: bool = False):
  """orbax `args` that save (or restore into) `iterator`'s state, for a CheckpointManager item."""
  return (
    grain.checkpoint.CheckpointRestore(iterator) if restore else grain.checkpoint.CheckpointSave(iterator)
  )
