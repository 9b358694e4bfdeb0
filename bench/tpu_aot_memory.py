"""Ahead-of-time compiles the LM train step for a TPU slice (libtpu's compiler on this CPU host, no TPU) and
prints XLA's per-chip memory analysis beside videopoet_jax/memory.py's estimate.

  pip install --target /tmp/libtpu libtpu
  PYTHONPATH=/tmp/libtpu JAX_PLATFORMS=cpu python bench/tpu_aot_memory.py --variants=300m,topology=v5p-64

Each length group of the mixture is its own compiled step (its own sequence length and rows); every one is
compiled and reported, with the state / temporaries split as XLA counts them (arguments = the donated state
and the batch, temp = activations and workspace). Last line: one JSON object over every compiled step.
"""

import os
import time

import bench_common
from absl import app, flags

flags.DEFINE_multi_string("variants", ["300m,topology=v5p-64"], "configs/lm.py arguments to compile.")
flags.DEFINE_integer("batch_size", 0, "Override config.train.batch_size (0: the preset's).")
flags.DEFINE_integer("groups", 0, "Compile only the first N length groups, longest first (0: all).")

# configs/lm.py topology -> libtpu topology name (chip grid).
TPU_TOPOLOGIES = {"v5p-64": "v5p:4x4x2", "v5p-256": "v5p:4x4x8", "v5e-256": "v5e:16x16"}
GIB = 2**30


def compile_groups(arg: str) -> list[dict]:
  import jax
  import numpy as np
  from jax.experimental import topologies

  from videopoet_jax import config_utils, memory, sharding
  from videopoet_jax.training import lm

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = config_utils.load_config_file(os.path.join(repo, "configs", "lm.py"), arg)
  if flags.FLAGS.batch_size:
    config.train.batch_size = flags.FLAGS.batch_size
  topology = topologies.get_topology_desc(topology_name=TPU_TOPOLOGIES[config.topology.name], platform="tpu")
  mesh = sharding.make_mesh(config.mesh, topology.devices)
  trainer = lm.Trainer(config, mesh=mesh, data=False)
  estimate = memory.estimate(config, len(topology.devices)).gib()
  data_parallel = sharding.data_parallel_size(mesh)
  groups = sorted(memory.length_groups(config, data_parallel), key=lambda g: -g.length)
  results = []
  for group in groups[: flags.FLAGS.groups or None]:
    rows, length = group.batch_size, group.length
    spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=trainer.batch_sharding)
    batch = {
      "tokens": spec((rows, length), np.int32),
      "loss_mask": spec((rows, length), np.bool_),
      "prefix_length": spec((rows,), np.int32),
      "segment_ids": spec((rows, length), np.int32),
      "text_slots": spec((rows, length), np.int32),
      "task_ids": spec((rows,), np.int32),
    }
    if config.model.text_embedding_dim:
      shape = (rows, config.layout.text_budget, config.model.text_embedding_dim)
      batch["text_embedding"] = spec(shape, np.float32)
    start = time.perf_counter()
    lower = lambda batch: trainer._step.lower(trainer.abstract_state, batch).compile()
    compiled = trainer.in_context(lower, batch)
    seconds = time.perf_counter() - start
    analysis = compiled.memory_analysis()
    result = {
      "config": arg,
      "batch_size": config.train.batch_size,
      "chips": len(topology.devices),
      "mesh": list(mesh.shape.values()),
      "group": list(group.tasks),
      "rows": rows,
      "length": length,
      "compile_s": round(seconds, 1),
      "xla_argument_gib": analysis.argument_size_in_bytes / GIB,
      "xla_output_gib": analysis.output_size_in_bytes / GIB,
      "xla_alias_gib": analysis.alias_size_in_bytes / GIB,
      "xla_temp_gib": analysis.temp_size_in_bytes / GIB,
      "xla_peak_gib": (
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
        + analysis.temp_size_in_bytes
      )
      / GIB,
      "estimate_state_gib": estimate["params"] + estimate["moments"] + estimate["ema"],
      "estimate_grads_gib": estimate["grads"],
      "estimate_activations_gib (largest group)": estimate["activations"],
      "estimate_total_gib": estimate["total"],
    }
    print(result, flush=True)
    results.append(result)
  return results


def main(argv):
  del argv
  results = [r for arg in flags.FLAGS.variants for r in compile_groups(arg)]
  summary = {
    "bench": "tpu_aot_memory",
    "steps": results,
    "xla_peak_gib_max": {
      arg: max(r["xla_peak_gib"] for r in results if r["config"] == arg) for arg in flags.FLAGS.variants
    },
  }
  bench_common.emit(summary, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tpu_aot_memory.json"))


if __name__ == "__main__":
  app.run(main)
