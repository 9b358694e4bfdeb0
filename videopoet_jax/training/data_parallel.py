"""Data-parallel training scaffolding shared by the tokenizer trainers.

The train state is replicated over the mesh and each batch is split over its batch axes ("data", "fsdp"),
so XLA inserts the gradient all-reduce; a step with a non-finite loss or update changes nothing
(`skip_nonfinite`). A trainer module provides `init_state(config) -> (graphdef,
disc_graphdef, state)` and `train_step(state, batch, *, graphdef, disc_graphdef, config)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from videopoet_jax import sharding
from videopoet_jax.training import loop


def skip_nonfinite(train_step: Callable[..., tuple[Any, dict[str, jax.Array]]]):
  """`train_step` whose update is dropped when its loss or new parameters are not finite (NaN/inf): the
  state stays as it was but for its step counter, and `loop.NONFINITE` says so (the loop stops a run after
  config.train.max_nonfinite_steps in a row)."""

  def step(state, batch, **kwargs):
    new, metrics = train_step(state, batch, **kwargs)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(optax.global_norm(new.params))
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state).replace(step=new.step)
    return kept, {**metrics, loop.NONFINITE: (~finite).astype(jnp.int32)}

  return step


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
      skip_nonfinite(train_step), graphdef=self.graphdef, disc_graphdef=self.disc_graphdef, config=config
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
