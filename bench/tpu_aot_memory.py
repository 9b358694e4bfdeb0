"""Ahead-of-time compiles the LM train step for a TPU slice (libtpu's compiler on this CPU host, no TPU) and
prints XLA's per-chip memory analysis beside videopoet_jax/memory.py's estimate.

  pip install --target /tmp/libtpu libtpu
  PYTHONPATH=/tmp/libtpu JAX_PLATFORMS=cpu python bench/tpu_aot_memory.py --variants=300m,topology=v5p-64
  PYTHONPATH=/tmp/libtpu JAX_PLATFORMS=cpu python bench/tpu_aot_memory.py --variants= \
      --sr_variants=paper --sr_variants=paper,stage=2 --sr_topology=v5p-64

`--sr_variants` compiles the super-resolution stage's train step (configs/sr.py; data parallel, the state
replicated on every chip) the same way, beside its estimate: parameters, two Adam moments and the EMA in
float32 plus the gradients, per chip.

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
flags.DEFINE_multi_string("sr_variants", [], "configs/sr.py arguments to compile.")
flags.DEFINE_string("sr_topology", "v5p-64", "TPU slice the SR steps are compiled for.")

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
    result = {
      "config": arg,
      "batch_size": config.train.batch_size,
      "chips": len(topology.devices),
      "mesh": list(mesh.shape.values()),
      "group": list(group.tasks),
      "rows": rows,
      "length": length,
      "compile_s": round(seconds, 1),
      **xla_memory(compiled),
      "estimate_state_gib": estimate["params"] + estimate["moments"] + estimate["ema"],
      "estimate_grads_gib": estimate["grads"],
      "estimate_activations_gib (largest group)": estimate["activations"],
      "estimate_total_gib": estimate["total"],
    }
    print(result, flush=True)
    results.append(result)
  return results


def xla_memory(compiled) -> dict[str, float]:
  """XLA's per-chip memory analysis of a compiled step, in GiB (peak = arguments + outputs - aliased +
  temporaries)."""
  analysis = compiled.memory_analysis()
  return {
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
  }


def compile_sr(arg: str) -> dict:
  """The SR stage's train step for `arg` (configs/sr.py), compiled for --sr_topology."""
  import jax
  import numpy as np
  from jax.experimental import topologies

  from videopoet_jax import config_utils, sharding
  from videopoet_jax.training import data_parallel
  from videopoet_jax.training import sr as sr_training

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = config_utils.load_config_file(os.path.join(repo, "configs", "sr.py"), arg)
  topology = topologies.get_topology_desc(
    topology_name=TPU_TOPOLOGIES[flags.FLAGS.sr_topology], platform="tpu"
  )
  mesh = sharding.make_mesh(config.mesh, topology.devices)
  trainer = data_parallel.DataParallelTrainer(config, sr_training.init_state, sr_training.train_step, mesh)
  rows, (t, h, w) = config.train.batch_size, config.model.grid
  spec = lambda shape: jax.ShapeDtypeStruct(shape, np.int32, sharding=trainer.batch_sharding)  # noqa: E731
  batch = {
    "ids": spec((rows, t, h, w)),
    "low_res_ids": spec((rows, t, h // 2, w // 2)),
    "text": spec((rows, config.data.text_length)),
  }
  start = time.perf_counter()
  compiled = trainer.step_fn.lower(trainer.abstract_state, batch).compile()
  seconds = time.perf_counter() - start
  parameters = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainer.abstract_state.params))
  state_bytes = 4 * parameters * (1 + 2 + 1)  # float32 parameters, Adam's two moments, the EMA
  result = {
    "config": f"sr:{arg}",
    "batch_size": rows,
    "chips": len(topology.devices),
    "parameters": parameters,
    "compile_s": round(seconds, 1),
    **xla_memory(compiled),
    "estimate_state_gib": state_bytes / GIB,
    "estimate_grads_gib": 4 * parameters / GIB,
  }
  print(result, flush=True)
  return result


def main(argv):
  del argv
  results = [r for arg in flags.FLAGS.variants if arg for r in compile_groups(arg)]
  results += [compile_sr(arg) for arg in flags.FLAGS.sr_variants]
  summary = {
    "bench": "tpu_aot_memory",
    "steps": results,
    "xla_peak_gib_max": {
      config: max(r["xla_peak_gib"] for r in results if r["config"] == config)
      for config in dict.fromkeys(r["config"] for r in results)
    },
  }
  bench_common.emit(summary, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tpu_aot_memory.json"))


if __name__ == "__main__":
  app.run(main)
