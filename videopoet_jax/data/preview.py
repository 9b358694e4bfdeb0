"""Writes the first examples of a dataset split as files you can watch and listen to.

  python -m videopoet_jax.data.preview --dataset=shapes_world --split=train --num=8 --out=preview/

For example i: DIR/iiii.mp4 (at the dataset's fps, 8 for shapes_world; its audio muxed in when it has
audio), DIR/iiii.wav (when it has audio), and one line of DIR/examples.jsonl with the caption, attributes
and the names of the files. The dataset is built into --data_dir first if it is not there yet.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.data import datasets, media
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string(
  "dataset", None, "Dataset name, e.g. shapes_world/two_objects or clip_folder:source_dir=DIR."
)
flags.DEFINE_string("split", "train", "Split to preview.")
flags.DEFINE_integer("num", 8, "Number of examples to write (the first ones of the split).")
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_string("data_dir", datasets.DEFAULT_DATA_DIR, "TFDS data folder (built there if missing).")
flags.DEFINE_integer(
  "display_size", 256, "Upscale frames (nearest neighbour) to about this height in the mp4."
)
FLAGS = flags.FLAGS


def write_example(
  out: str, index: int, example: dict, fps: float, sample_rate: int, display_size: int
) -> dict:
  """Writes one example's mp4 (+ wav); returns its examples.jsonl entry."""
  stem = f"{index:04d}"
  audio = np.asarray(example.get("audio", np.zeros(0, np.float32)))
  has_audio = bool(example.get("has_audio", len(audio) > 0)) and len(audio) > 0
  wave = audio if has_audio else None
  video_path = os.path.join(out, f"{stem}.mp4")
  media.write_video_with_audio(video_path, example["video"], fps, wave, sample_rate, display_size)
  files = {"video": os.path.basename(video_path)}
  if has_audio:
    media.write_audio(os.path.join(out, f"{stem}.wav"), audio, sample_rate)
    files["audio"] = f"{stem}.wav"
  return {"index": index, **files}


def main(argv):
  del argv
  quiet_unless_verbose()
  if not FLAGS.dataset or not FLAGS.out:
    cli_errors.exit_with("--dataset and --out are required")
  try:
    cli_errors.check_at_least(num=1)
    builder, source = datasets.prepared_source(FLAGS.dataset, FLAGS.split, FLAGS.data_dir)
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  clip = datasets.clip_format(builder)
  os.makedirs(FLAGS.out, exist_ok=True)
  count = min(FLAGS.num, len(source))
  with open(os.path.join(FLAGS.out, "examples.jsonl"), "w") as f:
    for i in range(count):
      example = source[i]
      entry = write_example(FLAGS.out, i, example, clip["fps"], clip["sample_rate"], FLAGS.display_size)
      entry.update(datasets.describe(example, builder.info.features))
      f.write(json.dumps(entry) + "\n")
  print(f"wrote {count} examples of {FLAGS.dataset}/{FLAGS.split} to {FLAGS.out}")
  print(json.dumps({"dataset": FLAGS.dataset, "split": FLAGS.split, "examples": count, "out": FLAGS.out}))


if __name__ == "__main__":
  app.run(main)
