"""Scores a generator on every task: `python -m videopoet_jax.eval --tasks=all --num=N --out=report.json`.

Runs each task on N shapes_world test clips (videopoet_jax/eval/lm_tasks.py) with the bundled model (or
--checkpoint), scores the produced pixels and samples, and writes the report (value, 95% interval, target
per task and criterion) as JSON; a line per task goes to stdout as it finishes.
"""

import dataclasses
import json
import sys
import time

from absl import app, flags

from videopoet_jax.decoding.generator import Generator, Sampling
from videopoet_jax.eval import lm_tasks

flags.DEFINE_list("tasks", ["all"], f"Tasks to score: all or some of {', '.join(lm_tasks.TASKS)}.")
flags.DEFINE_integer("num", 100, "Test examples per task.")
flags.DEFINE_string("out", "report.json", "Where to write the report.")
flags.DEFINE_string("checkpoint", None, "LM export folder or workdir (default: the bundled model).")
flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export (default: bundled).")
flags.DEFINE_string("audio_tokenizer", None, "Audio tokenizer export (default: bundled).")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("batch_size", 25, "Examples generated at once.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature of video ids (0 = greedy).")
flags.DEFINE_integer("top_k", 0, "Top-k of video and audio ids (0 = off).")
flags.DEFINE_float("guidance_scale", 1.0, "Classifier-free guidance scale of video ids.")
flags.DEFINE_float("audio_temperature", 1.0, "Sampling temperature of audio ids.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  tasks = list(lm_tasks.TASKS) if FLAGS.tasks == ["all"] else FLAGS.tasks
  unknown = sorted(set(tasks) - set(lm_tasks.TASKS))
  if unknown:
    sys.exit(f"error: unknown tasks {unknown}; known: all, {', '.join(lm_tasks.TASKS)}")
  if FLAGS.num < 1:
    sys.exit("error: --num must be >= 1")
  try:
    gen = Generator.load(FLAGS.checkpoint, FLAGS.video_tokenizer, FLAGS.audio_tokenizer)
  except (ValueError, FileNotFoundError) as e:
    sys.exit("error: " + " ".join(str(e).split()))
  sampling = {
    "video": Sampling(FLAGS.temperature, FLAGS.top_k, guidance_scale=FLAGS.guidance_scale),
    "audio": Sampling(FLAGS.audio_temperature, FLAGS.top_k),
  }
  start = time.time()
  report = lm_tasks.evaluate(gen, tasks, FLAGS.num, sampling, FLAGS.seed, FLAGS.batch_size)
  report["settings"] = {
    "num": FLAGS.num,
    "seed": FLAGS.seed,
    "checkpoint": FLAGS.checkpoint or "bundled",
    "sampling": {k: dataclasses.asdict(v) for k, v in sampling.items()},
    "seconds": round(time.time() - start, 1),
  }
  with open(FLAGS.out, "w") as f:
    json.dump(report, f, indent=1)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
