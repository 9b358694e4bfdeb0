"""Training-step cost of video tokenizer variants on this machine. Prints one JSON line.

  python bench/video_tokenizer_step.py --variants=demo,faithful64 --batch_size=8 [--repeats=3]

Per variant: parameters, XLA's FLOP count of one step, seconds per step (median after a warm-up),
achieved GFLOP/s, and compile time.
"""

import json
import os
import statistics
import time

import bench_common
import jax
import numpy as np
from absl import app, flags

from videopoet_jax import config_utils
from videopoet_jax.tokenizers.video import param_count
from videopoet_jax.training import video_tokenizer as trainer_lib

flags.DEFINE_list("variants", ["demo", "faithful64"], "configs/video_tokenizer.py variants.")
flags.DEFINE_integer("batch_size", 8, "Clips per step.")
flags.DEFINE_integer("repeats", 3, "Timed steps per variant.")
flags.DEFINE_string("out", "bench/video_tokenizer_step.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
CONFIG_FILE = os.path.join(os.path.dirname(__file__), "..", "configs", "video_tokenizer.py")


def measure(variant):
  config = config_utils.load_config_file(CONFIG_FILE, variant)
  config.train.batch_size = FLAGS.batch_size
  config.mesh.shape = (1, 1, 1)
  trainer = trainer_lib.Trainer(config)
  state = trainer.init()
  shape = (FLAGS.batch_size, config.data.frames, config.data.size, config.data.size, 3)
  batch = trainer.put_batch(np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))
  start = time.perf_counter()
  compiled = trainer.step_fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  flops = float(compiled.cost_analysis().get("flops", 0.0))
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  return {
    "params": param_count(trainer_lib.build_tokenizer(config)),
    "clip": list(shape[1:]),
    "step_s": step_s,
    "step_gflop": flops / 1e9,
    "achieved_gflops": flops / 1e9 / step_s,
    "compile_s": compile_s,
  }


def main(argv):
  del argv
  result = {"batch_size": FLAGS.batch_size, "cpu_count": os.cpu_count(), "dtype": "float32"}
  for variant in FLAGS.variants:
    result[variant] = measure(variant)
    print(f"{variant}: {json.dumps(result[variant])}", flush=True)
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
