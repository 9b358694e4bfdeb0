"""Device mesh from config, and the shardings the trainers use.

Axes are (data, fsdp, tensor); a -1 in `config.mesh.shape` takes the devices the other axes leave.
Batches are split over (data, fsdp); tokenizer parameters are replicated (data parallel). The LM's
parameters and activations carry logical axis names, mapped onto the mesh by the config's rules.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
from flax import nnx
from flax.core import spmd as flax_spmd
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXES = ("data", "fsdp")


def mesh_shape(shape: tuple[int, ...], num_devices: int) -> tuple[int, ...]:
  """Fills one -1 in `shape` so that the product equals `num_devices` (a shape without -1 is kept)."""
  shape = list(shape)
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape} has more than one -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(f"mesh shape {shape} does not divide {num_devices} devices")
    shape[shape.index(-1)] = num_devices // known
  if math.prod(shape) > num_devices:
    raise ValueError(f"mesh shape {shape} needs {math.prod(shape)} devices, have {num_devices}")
  return tuple(shape)


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """A Mesh with the configured axes over `devices` (default: all; a fixed shape takes the first ones)."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(tuple(mesh_config.shape), len(devices))
  return Mesh(np.asarray(devices[: math.prod(shape)]).reshape(shape), tuple(mesh_config.axes))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data-parallel axes."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def process_rows(sharding: NamedSharding, rows: int) -> slice:
  """The rows [start, stop) of a `[rows, ...]` global batch split by `sharding` that this process's
  devices hold (processes whose devices differ only along unsplit axes, e.g. tensor, hold the same rows).

  Raises when they are not one contiguous block (a mesh whose device order interleaves processes).
  """
  blocks = sorted(
    {index[0].indices(rows)[:2] for index in sharding.addressable_devices_indices_map((rows,)).values()}
  )
  start, stop = blocks[0]
  for block_start, block_stop in blocks[1:]:
    if block_start > stop:
      raise ValueError(
        f"process {jax.process_index()} holds batch rows {blocks}, not one contiguous block: order the "
        "mesh's devices by process"
      )
    stop = max(stop, block_stop)
  return slice(start, stop)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


# Logical axis rules: a config's `sharding.rules` is a tuple of (logical name, mesh axis | axes | None).
def rules_from_config(rules) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
  """`((name, axes), ...)` with list values turned into tuples (JSON round trips make lists)."""
  return tuple((name, tuple(axes) if isinstance(axes, list | tuple) else axes) for name, axes in rules)


def logical_spec(names: tuple[str | None, ...], rules) -> PartitionSpec:
  """PartitionSpec of an array whose axes have logical `names`, under `rules` (every name must have one)."""
  table = dict(rules)
  missing = [n for n in names if n is not None and n not in table]
  if missing:
    raise ValueError(f"no sharding rule for logical axes {missing}; rules cover {sorted(table)}")
  return PartitionSpec(*(table[n] if n is not None else None for n in names))


def context_rules():
  """The logical axis rules (nnx.logical_axis_rules) in context when a mesh (jax.set_mesh) is too; None
  otherwise (single-device use, sampling)."""
  rules = flax_spmd.get_logical_axis_rules()
  if not rules or jax.sharding.get_abstract_mesh().empty:
    return None
  return rules


def logical_constraint(x: jax.Array, names: tuple[str, ...]) -> jax.Array:
  """`with_sharding_constraint` by logical names under `context_rules`; `x` unchanged without them."""
  rules = context_rules()
  if rules is None:
    return x
  return jax.lax.with_sharding_constraint(x, logical_spec(names, rules))


def state_shardings(abstract_state, mesh: Mesh, rules):
  """NamedShardings of a state pytree whose nnx Variables carry logical axis metadata (parameters and the
  optimizer moments that mirror them); anything else is replicated."""
  with flax_spmd.logical_axis_rules(rules):
    specs = nnx.get_partition_spec(abstract_state)
  is_spec = lambda x: isinstance(x, PartitionSpec)
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=is_spec)


def describe_shardings(shardings) -> dict[str, list]:
  """`{"path/to/leaf": [mesh axes per dim]}`: a readable, JSON-ready description (for golden files)."""
  flat = jax.tree_util.tree_flatten_with_path(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))[0]
  name = lambda path: "/".join(
    str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
    for k in path
    if getattr(k, "name", "") != "value"
  )
  return {name(path): [list(a) if isinstance(a, tuple) else a for a in s.spec] for path, s in flat}
