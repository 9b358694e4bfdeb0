"""Device mesh from config, and the shardings the trainers use.

Axes are (data, fsdp, tensor); a -1 in `config.mesh.shape` takes the devices the other axes leave.
Batches are split over (data, fsdp); tokenizer parameters are replicated (data parallel).
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
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


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)
