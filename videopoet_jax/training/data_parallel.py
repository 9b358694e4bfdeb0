"""Data-parallel training scaffolding shared by the tokenizer trainers.

The train state is replicated over the mesh and each batch is split over its batch axes ("data", "fsdp"),
so XLA inserts the gradient all-reduce. A trainer module provides `init_state(config) -> (graphdef,
disc_graphdef, state)` and `train_step(state, batch, *, graphdef, disc_graphdef, config)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from videopoet_jax import sharding
from videopoet_jax.training import loop


class DataParallelTrainer:
  """Holds the graphdefs, mesh, shardings, abstract state and the jitted `step_fn(state, batch)`."""

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    init_state: Callable[[ml_collections.ConfigDict], tuple[Any, Any, Any]],
    train_step: Callable[..., tuple[Any, dict[str, jax.Array]]],
    mesh: jax.sharding.Mesh | None = None,
  ):
    self.config = config
    self.graphdef, self.disc_graphdef, abstract_state = jax.eval_shape(lambda: init_state(config))
    step = functools.partial(
      train_step, graphdef=self.graphdef, disc_graphdef=self.disc_graphdef, config=config
    )
    self.mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
    parallel = sharding.data_parallel_size(self.mesh)
    if config.train.batch_size % parallel:
      raise ValueError(
        f"batch_size {config.train.batch_size} is not divisible by the {parallel} data-parallel devices"
      )
    self.state_sharding = jax.tree.map(lambda _: sharding.replicated(self.mesh), abstract_state)
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    self.abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, self.state_sharding
    )
    self.step_fn = jax.jit(
      step,
      in_shardings=(self.state_sharding, self.batch_sharding),
      out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
      donate_argnums=0,
    )

  def init_sharded(self, init_fn: Callable[..., Any], *args: Any) -> Any:
    """Runs `init_fn(*args)` under jit with the state's (replicated) output sharding."""
    return jax.jit(init_fn, out_shardings=self.state_sharding)(*args)

  def put_batch(self, batch: np.ndarray) -> jax.Array:
    return jax.device_put(batch, self.batch_sharding)

  def summarize(self, window: list[dict]) -> dict[str, float]:
    """Means of the scalar metrics plus `usage_stats` of the code counts summed over the window."""
    counts = sum(np.asarray(m[loop.CODE_COUNTS]) for m in window)
    scalars = [{k: v for k, v in m.items() if k != loop.CODE_COUNTS} for m in window]
    return {**loop.mean_metrics(scalars), **self.usage_stats(counts)}
