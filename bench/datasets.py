"""Dataset build cost on this machine. Prints one JSON line (and writes it to --out).

  python bench/datasets.py [--num_train=1000] [--clip_dir=media/video]

shapes_world: seconds and MB to build each config with num_train / num_train/10 / num_train/10 examples.
clip_folder (with --clip_dir): seconds, MB, files read, clips written and files skipped for that folder.
Builds go to a temporary folder that is deleted afterwards.
"""

import os
import platform
import shutil
import tempfile
import time

import bench_common
from absl import app, flags, logging

from videopoet_jax.data import clip_folder, shapes_world_dataset

flags.DEFINE_integer("num_train", 1000, "shapes_world train examples (validation and test: a tenth each).")
flags.DEFINE_list("configs", ["default", "two_objects"], "shapes_world configs to build.")
flags.DEFINE_string("clip_dir", None, "A folder of videos to build as clip_folder (optional).")
flags.DEFINE_string("out", "bench/datasets.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
MB = 2**20


def _size_mb(path: str) -> float:
  total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
  return round(total / MB, 1)


def _timed_build(builder) -> float:
  start = time.perf_counter()
  builder.download_and_prepare()
  return round(time.perf_counter() - start, 1)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  result = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
  tmp = tempfile.mkdtemp(prefix="bench_datasets_")
  try:
    held_out = max(1, FLAGS.num_train // 10)
    for name in FLAGS.configs:
      builder = shapes_world_dataset.make_builder(
        name, tmp, num_train=FLAGS.num_train, num_validation=held_out, num_test=held_out
      )
      seconds = _timed_build(builder)
      examples = FLAGS.num_train + 2 * held_out
      result[f"shapes_world_{name}"] = {
        "examples": examples,
        "build_s": seconds,
        "examples_per_s": round(examples / seconds, 1),
        "mb": _size_mb(builder.data_dir),
      }
    if FLAGS.clip_dir:
      builder = clip_folder.make_builder(FLAGS.clip_dir, tmp)
      seconds = _timed_build(builder)
      summary = clip_folder.build_summary(builder)
      result["clip_folder"] = {
        "source_dir": FLAGS.clip_dir,
        "build_s": seconds,
        "mb": _size_mb(builder.data_dir),
        "files": summary["files"],
        "clips": summary["clips"],
        "skipped": sorted(summary["skipped"]),
      }
  finally:
    shutil.rmtree(tmp)
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
