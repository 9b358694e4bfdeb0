"""Scores a generator on every task: `python -m videopoet_jax.eval --tasks=all --num=N --out=report.json`.

Runs each task on N shapes_world test clips (videopoet_jax/eval/lm_tasks.py) with the bundled model (or
--checkpoint; the sampling flags are sample.py's, videopoet_jax/decoding/cli.py), scores the produced
pixels and samples, and writes the report (value, 95% interval, target per task and criterion) as JSON; a
line per task goes to stdout as it finishes.
"""

import json
import time

from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.data import media
from videopoet_jax.decoding import cli
from videopoet_jax.decoding.generator import sampling_json
from videopoet_jax.eval import lm_tasks
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_list("tasks", ["all"], f"Tasks to score: all or some of {', '.join(lm_tasks.TASKS)}.")
flags.DEFINE_integer("num", 100, "Test examples per task.")
flags.DEFINE_string("out", "report.json", "Where to write the report.")
flags.DEFINE_integer("batch_size", 25, "Examples generated at once.")
flags.DEFINE_enum(
  "split", "test", lm_tasks.SPLITS, "Seeds to render: test (scores) or validation (choosing settings)."
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  quiet_unless_verbose()
  tasks = list(lm_tasks.TASKS) if FLAGS.tasks == ["all"] else FLAGS.tasks
  unknown = sorted(set(tasks) - set(lm_tasks.TASKS))
  if unknown:
    cli_errors.exit_with(f"unknown tasks {unknown}; known: all, {', '.join(lm_tasks.TASKS)}")
  try:
    cli_errors.check_at_least(num=1, batch_size=1)
    cli.check_sampling_flags()
    media.check_writable(FLAGS.out, (".json",))
    gen = cli.load_generator()
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  # Each task with the model's own settings for it (sampling.json), unless a sampling flag says otherwise.
  sampling = {task: cli.sampling(gen.sampling_for(lm_tasks.user_task(task))) for task in tasks}
  defaults = cli.sampling(gen.default_sampling)
  start = time.time()
  report = lm_tasks.evaluate(
    gen, tasks, FLAGS.num, sampling.__getitem__, FLAGS.seed, FLAGS.batch_size, split=FLAGS.split
  )
  report["settings"] = {
    "num": FLAGS.num,
    "split": FLAGS.split,
    "seed": FLAGS.seed,
    "checkpoint": FLAGS.checkpoint or "bundled",
    # The per-kind settings, and under "tasks" those sampled otherwise, and how.
    "sampling": sampling_json(defaults, sampling),
    "seconds": round(time.time() - start, 1),
  }
  with open(FLAGS.out, "w") as f:
    json.dump(report, f, indent=1)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
