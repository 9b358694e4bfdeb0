"""Whether each video id, alone, says what its patch looks like: a table of each id's mean patch.

  python bench/id_table.py [--video_tokenizer=DIR] [--num_train=3000] [--num=200] [--out=bench/id_table.json]

Encodes the first frames of `num_train` shapes_world training clips (the first latent frame is that frame
alone: no motion to encode), counts their distinct ids, and averages the pixels of every patch each id was
given: a decoder that sees one id at a time. Then rebuilds the first frames of `num` validation clips from
that table and from the tokenizer's own decoder, and reads the object's shape from each (as the evaluation
reads a text_to_image output). Where even the table cannot tell the shapes apart, the
encoder spends too few ids on outlines and no decoder can draw them (`bench/id_probe.py` reads a clip's
shape from all of its ids, size and motion included). Two more tables bound what any fix can reach:
`exact_patches` rebuilds each validation patch as the nearest distinct training patch (a per-patch code
with one id per patch the training frames hold: the ceiling of any tokenizer that codes each 8x8 patch on
its own), and `id_and_shape` keys the table by the id and the clip's true shape and size (a decoder that
knows the whole frame's object exactly, and still only these ids at each patch). Prints one JSON line.
"""

import os
import platform
import time

import bench_common
import jax
import numpy as np
from absl import app, flags, logging

from videopoet_jax.data import media, shapes_world_dataset
from videopoet_jax.data import shapes_world as world
from videopoet_jax.eval import intervals, shapes_scores
from videopoet_jax.tokenizers import patch_table, pretrained
from videopoet_jax.tokenizers.layers import depth_to_space, space_to_depth

flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export (default: the bundled model's).")
flags.DEFINE_integer("num_train", 3000, "Training clips whose first frames fill the table.")
flags.DEFINE_integer("num", 200, "Validation clips scored.")
flags.DEFINE_integer("batch_size", 100, "Frames per tokenizer call.")
flags.DEFINE_string("out", "bench/id_table.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS


def first_frames(split: str, num: int) -> tuple[list[dict], np.ndarray]:
  """`(examples, [num, 1, H, W, 3] uint8)`: the first frames of `split`'s first `num` clips."""
  first = shapes_world_dataset.SPLIT_SEEDS[split]
  examples = [world.render(first + i) for i in range(num)]
  return examples, np.stack([e["video"][:1] for e in examples])


def patches(frames: np.ndarray, p: int) -> np.ndarray:
  """`[N, 1, H, W, 3]` -> `[N * H/p * W/p, p * p * 3]` float64 rows (`space_to_depth`'s patch layout)."""
  return np.asarray(space_to_depth(frames, p), np.float64).reshape(-1, p * p * frames.shape[-1])


def frames_of(rows: np.ndarray, n: int, h: int, w: int, p: int) -> np.ndarray:
  """`[n * h * w, p * p * 3]` patch rows -> `[n, h * p, w * p, 3]` frames (the inverse of `patches`)."""
  return np.asarray(depth_to_space(rows.reshape(n, 1, h, w, -1), 1, p))[:, 0]


def to_uint8(frames: np.ndarray) -> np.ndarray:
  return np.round(frames).clip(0, 255).astype(np.uint8)


def object_keys(ids: np.ndarray, examples: list[dict]) -> np.ndarray:
  """`[N, ...]` ids -> `[N * ...]` keys that also name each clip's first object's shape and size."""
  objects = [(e["objects"][0]["shape"], e["objects"][0]["size"]) for e in examples]
  kinds = {kind: i for i, kind in enumerate(sorted(set(world.SHAPE_DIMENSIONS)))}
  codes = np.array([kinds[o] for o in objects], np.int64)
  return (ids.reshape(len(examples), -1).astype(np.int64) * len(kinds) + codes[:, None]).reshape(-1)


def mean_patch_table(keys: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
  """Each query key's mean training row (`rows [N, D]` under `keys [N]`); the mean of all rows for a key
  the training rows never had."""
  distinct, index = np.unique(keys, return_inverse=True)
  table = np.zeros((len(distinct), rows.shape[1]))
  np.add.at(table, index, rows)
  table /= np.bincount(index)[:, None]
  found = np.searchsorted(distinct, queries).clip(0, len(distinct) - 1)
  return np.where((distinct[found] == queries)[:, None], table[found], rows.mean(axis=0))


def shape_rate(examples: list[dict], frames: np.ndarray) -> dict:
  """The rate at which the shape read from `[N, H, W, 3]` frames (as the evaluation reads a text_to_image
  output) is the example's first object's."""
  truths = [shapes_scores.truth_from_example(e) for e in examples]
  scores = [shapes_scores.score_sample("text_to_image", f, t) for f, t in zip(frames, truths, strict=True)]
  return intervals.summarize_rate([s["shape"] for s in scores])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  start = time.perf_counter()
  path = FLAGS.video_tokenizer or os.path.join(pretrained.bundled_path("lm"), "video_tokenizer")
  tokenizer, _ = pretrained.load_video_tokenizer(path)
  p = tokenizer.geometry.spatial_factor
  encode, decode = jax.jit(tokenizer.encode), jax.jit(tokenizer.decode)
  batched = lambda fn, x: bench_common.batched(fn, x, FLAGS.batch_size)  # noqa: E731

  train_examples, train = first_frames("train", FLAGS.num_train)
  train_ids = batched(encode, media.to_model_range(train))[:, 0]  # [N, h, w]
  train_patches = patches(train, p)  # [N * h * w, p * p * 3]

  examples, frames = first_frames("validation", FLAGS.num)
  ids = batched(encode, media.to_model_range(frames))  # [num, 1, h, w]
  n, _, h, w = ids.shape
  from_table = frames_of(mean_patch_table(train_ids.reshape(-1), train_patches, ids.reshape(-1)), n, h, w, p)
  keyed_rows = mean_patch_table(
    object_keys(train_ids, train_examples), train_patches, object_keys(ids, examples)
  )
  keyed = frames_of(keyed_rows, n, h, w, p)
  distinct_patches = np.unique(train_patches, axis=0)
  nearest = np.asarray(patch_table.nearest_rows(patches(frames, p), distinct_patches))
  exact = frames_of(distinct_patches[nearest], n, h, w, p)
  decoded = media.from_model_range(batched(decode, ids))[:, 0]
  psnr = lambda x: float(10 * np.log10(255**2 / np.mean((x.astype(np.float64) - frames[:, 0]) ** 2)))  # noqa: E731
  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "video_tokenizer": path,
    "num_train": FLAGS.num_train,
    "distinct_first_frame_ids": int(len(np.unique(train_ids))),
    "codebook": tokenizer.geometry.codebook_size,
    "validation_ids_in_table": float(np.isin(ids, train_ids).mean()),
    "shape": {
      "ground_truth": shape_rate(examples, frames[:, 0]),
      "decoder": shape_rate(examples, decoded),
      "id_table": shape_rate(examples, to_uint8(from_table)),
      "id_and_shape_table": shape_rate(examples, to_uint8(keyed)),
      "exact_patches": shape_rate(examples, to_uint8(exact)),
      "chance": 1 / len(world.SHAPES),
    },
    "distinct_first_frame_patches": int(len(distinct_patches)),
    "psnr": {
      "decoder": psnr(decoded),
      "id_table": psnr(from_table),
      "id_and_shape_table": psnr(keyed),
      "exact_patches": psnr(exact),
    },
    "seconds": round(time.perf_counter() - start, 1),
  }
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
