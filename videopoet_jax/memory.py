"""Per-chip memory of an LM training step: the sharded state exactly, the activations analytically.

  estimate(config) -> Estimate (bytes per chip), for config.mesh.shape (with -1 filled from `chips`)

State (exact): every leaf of the TrainState (parameters, AdamW moments, EMA) under the config's sharding
rules on an abstract mesh of the config's shape, its shard = ceil(dim / mesh split) per dimension; the
gradients are one more copy of the parameters (param_dtype, same sharding), all alive at the update.

Activations (analytic, compute dtype `model.dtype`, per chip: the group's rows / (data x fsdp), heads, mlp
and vocabulary / tensor; the residual stream is replicated over tensor): for each length group,
  saved per block   "full": the block input [T, W];
                    "dots": + the outputs of the dense projections (q, k, v, attention out, gate, up, down);
                    "none": every intermediate (below);
  one block's backward working set (the recomputed forward, when rematerialized) = every intermediate:
      6 x [T, W] (input, norms, attention out, residual, mlp out), 6 x [T, H D] (q, k, v, rope'd q/k, out),
      4 x [T, M] (gate, up, silu, product), and the dense attention's [B, H, S, S] tensors at
      ATTENTION_BYTES_PER_ELEMENT (scaled / masked float32 logits, softmax, weights, and their gradients);
  the loss: the final norm output [T, W], and one vocabulary chunk's logits, log-probabilities and their
  gradient (3 x [B, chunk, V] float32); the activation gradients 2 x [T, W] float32;
and the largest group counts (T = rows x S tokens per chip). ATTENTION_BYTES_PER_ELEMENT is calibrated on
XLA's own figure: bench/tpu_aot_memory.py compiled the 300m step on v5p-64 (libtpu, ahead of time) for the
longest group (32 rows x 2633 per chip) at 88.2 GiB of temporaries, of which the attention is ~77 GiB,
~23 bytes per [B, H, S, S] element; with 24 the estimate of that step is 90.7 GiB (2% above XLA), and at
batch 512 (the v5p-64 preset) 45.9 GiB against XLA's 44.8 GiB.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import AbstractMesh, PartitionSpec

from videopoet_jax import sharding
from videopoet_jax.tasks import mixture as mixture_lib
from videopoet_jax.tasks import sequence

GIB = 2**30
FLOAT32_BYTES = 4
# [T, W] tensors alive in one block's forward, [T, H D] attention projections, [T, M] mlp tensors.
BLOCK_WIDTH_TENSORS = 6
BLOCK_HEAD_TENSORS = 6
BLOCK_MLP_TENSORS = 4
# Dense projection outputs the "dots" policy saves: [T, W] (attention out, down), [T, H D] (q, k, v),
# [T, M] (gate, up).
DOTS_WIDTH_TENSORS = 2
DOTS_HEAD_TENSORS = 3
DOTS_MLP_TENSORS = 2
# Bytes per [B, H, S, S] attention element alive in one block's forward + backward (calibrated, above).
ATTENTION_BYTES_PER_ELEMENT = 24
# float32 [B, chunk, V] tensors of one loss chunk: logits, log-probabilities, their gradient.
LOSS_CHUNK_TENSORS = 3
# float32 [T, W] activation gradients flowing back through the blocks.
GRADIENT_WIDTH_TENSORS = 2


@dataclasses.dataclass(frozen=True)
class Estimate:
  """Bytes per chip."""

  params: int
  moments: int
  grads: int
  ema: int
  activations: int

  @property
  def total(self) -> int:
    return self.params + self.moments + self.grads + self.ema + self.activations

  def gib(self) -> dict[str, float]:
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    return {k: v / GIB for k, v in {**fields, "total": self.total}.items()}


def abstract_mesh(config: ml_collections.ConfigDict, chips: int) -> AbstractMesh:
  """The config's mesh over `chips` devices, without devices (any size, on any machine)."""
  return AbstractMesh(sharding.mesh_shape(tuple(config.mesh.shape), chips), tuple(config.mesh.axes))


def shard_bytes(leaf, spec: PartitionSpec, mesh: AbstractMesh) -> int:
  """Bytes of the largest shard of `leaf` (a ShapeDtypeStruct) under `spec` on `mesh`."""
  shape = list(leaf.shape)
  for dim, axes in enumerate(tuple(spec)[: len(shape)]):
    if axes is None:
      continue
    split = math.prod(mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))
    shape[dim] = -(-shape[dim] // split)
  return math.prod(shape) * jnp.dtype(leaf.dtype).itemsize


def state_bytes(config: ml_collections.ConfigDict, mesh: AbstractMesh) -> dict[str, int]:
  """Per-chip bytes of the TrainState's parameters, optimizer state and EMA (exact shard sizes)."""
  from videopoet_jax.training import lm  # the trainer imports data pipelines: only when asked

  _, state = jax.eval_shape(lambda: lm.init_state(config))
  rules = sharding.rules_from_config(config.sharding.rules)
  shardings = sharding.state_shardings(state, mesh, rules)
  total = lambda part, part_shardings: sum(
    shard_bytes(leaf, s.spec, mesh)
    for leaf, s in zip(jax.tree.leaves(part), jax.tree.leaves(part_shardings), strict=True)
  )
  ema = total(state.ema_params, shardings.ema_params) if state.ema_params is not None else 0
  return {
    "params": total(state.params, shardings.params),
    "moments": total(state.opt_state, shardings.opt_state),
    "ema": ema,
  }


def length_groups(config: ml_collections.ConfigDict, data_parallel: int) -> list[mixture_lib.Group]:
  """The mixture's length groups (sequence length, global rows) for `data_parallel` devices."""
  layout = sequence.Layout.from_config(config.layout)
  return mixture_lib.Mixture(
    config.mixture, layout, config.train.batch_size, data_parallel, config.train.steps, config.seed
  ).groups


def activation_bytes(config: ml_collections.ConfigDict, mesh: AbstractMesh) -> int:
  """Per-chip activation bytes of the largest length group (see the module docstring)."""
  model = config.model
  tensor = mesh.shape["tensor"]
  data_parallel = math.prod(mesh.shape[a] for a in sharding.BATCH_AXES)
  compute = jnp.dtype(model.dtype).itemsize
  heads = -(-model.heads // tensor)
  head_features, mlp, vocab = (
    heads * model.head_dim,
    -(-model.mlp_dim // tensor),
    -(-model.vocab_size // tensor),
  )
  largest = 0
  for group in length_groups(config, data_parallel):
    rows, length = group.batch_size // data_parallel, group.length
    tokens = rows * length
    width = tokens * model.width
    attention = rows * heads * length * length * ATTENTION_BYTES_PER_ELEMENT
    block_all = (
      BLOCK_WIDTH_TENSORS * width
      + BLOCK_HEAD_TENSORS * tokens * head_features
      + BLOCK_MLP_TENSORS * tokens * mlp
    ) * compute + attention
    saved = {
      "none": block_all,
      "full": width * compute,
      "dots": (
        (1 + DOTS_WIDTH_TENSORS) * width
        + DOTS_HEAD_TENSORS * tokens * head_features
        + DOTS_MLP_TENSORS * tokens * mlp
      )
      * compute,
    }[model.remat]
    working = block_all if model.remat != "none" else 0
    chunk = min(model.logits_chunk, length)
    loss = width * compute + LOSS_CHUNK_TENSORS * rows * chunk * vocab * FLOAT32_BYTES
    gradients = GRADIENT_WIDTH_TENSORS * width * FLOAT32_BYTES
    largest = max(largest, model.depth * saved + working + loss + gradients)
  return largest


def estimate(config: ml_collections.ConfigDict, chips: int) -> Estimate:
  """Per-chip memory of a training step of the LM `config` on `chips` devices (its mesh.shape)."""
  mesh = abstract_mesh(config, chips)
  state = state_bytes(config, mesh)
  return Estimate(
    params=state["params"],
    moments=state["moments"],
    grads=state["params"],
    ema=state["ema"],
    activations=activation_bytes(config, mesh),
  )
