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
      4 x [T, M] (gate, up, silu, product), and the attention's own buffers (`attention_bytes`): dense,
      [B, H, S, S] tensors at ATTENTION_BYTES_PER_ELEMENT (scaled / masked float32 logits, softmax,
      weights, and their gradients); chunked, [B, H, S, chunk] of them; the fused kernels (cudnn, splash),
      their two passes' outputs and softmax statistics, no S x S tensor;
  the loss: the final norm output [T, W], and one vocabulary chunk's logits, log-probabilities and their
  gradient (3 x [B, chunk, V] float32); the activation gradients 2 x [T, W] float32;
and the largest group counts (T = rows x S tokens per chip, rows those of one of `train.microbatches`;
accumulating microbatches keeps a second float32 copy of the gradients). ATTENTION_BYTES_PER_ELEMENT is
calibrated on XLA's own figure: bench/tpu_aot_memory.py compiled the 300m step with dense attention on
v5p-64 (libtpu, ahead of time) for the longest group (32 rows x 2633 per chip) at 88.2 GiB of
temporaries, of which the attention is ~77 GiB, ~23 bytes per [B, H, S, S] element; with 24 the estimate
of that step is 90.7 GiB (2% above XLA), and at batch 512 45.9 GiB against XLA's 44.8 GiB. With splash
attention at batch 1024 (longest group, 2,633 positions padded to 3,072): 300m on v5p-64 73.0 GiB per chip
(estimate 74.2; XLA keeps the lane-broadcast statistics of all 24 blocks, which SPLASH_SAVED_UNITS is fitted
on), 300m on v5p-256 3.4 GiB (estimate 18.3), 8b on v5p-256 23.5 GiB (estimate 44.5): there XLA does not keep
them, so the estimate is an upper bound.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import AbstractMesh, PartitionSpec

from videopoet_jax import sharding
from videopoet_jax.model import attention_kernels
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
# Bytes per [B, H, S, S] attention element alive in one block's forward + backward (calibrated, above); the
# chunked pass holds [B, H, S, chunk] of them.
ATTENTION_BYTES_PER_ELEMENT = 24
# The fused kernels (cudnn, splash) hold no S x S tensor: their two passes' outputs and the selected one,
# [T, H D] each, and the passes' float32 softmax statistics, [B, H, S] each for cuDNN (analytic, not
# calibrated: no GPU compile here). Splash keeps its statistics broadcast over the TPU's 128 lanes,
# [B, H, S, 128] float32 ("units"), and XLA keeps some of them for every block although the blocks are
# rematerialized: SPLASH_SAVED_UNITS per block is fitted on the worst of three ahead-of-time compiles
# (module docstring), so the estimate is an upper bound on the other two.
FUSED_HEAD_TENSORS = 3
CUDNN_STATISTICS = 4
SPLASH_LANES = 128
SPLASH_SAVED_UNITS = 2.2
# float32 [B, chunk, V] tensors of one loss chunk: logits, their softmax, its gradient.
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


def attention_bytes(model: ml_collections.ConfigDict, rows: int, heads: int, length: int) -> int:
  """Per-chip bytes of one block's attention buffers beyond its projections (forward + backward), for
  `rows` sequences of `length` and `heads` heads per chip, by `model.attention`."""
  implementation = model.get("attention", "dense")
  if implementation == "dense":
    return rows * heads * length * length * ATTENTION_BYTES_PER_ELEMENT
  chunk = attention_kernels.attention_chunk(model)
  if implementation == "chunked":
    return rows * heads * length * min(chunk, length) * ATTENTION_BYTES_PER_ELEMENT
  compute = jnp.dtype(model.dtype).itemsize
  if implementation == "splash":
    length = splash_length(model, length)
  outputs = FUSED_HEAD_TENSORS * rows * length * heads * model.head_dim * compute
  if implementation == "cudnn":
    return outputs + CUDNN_STATISTICS * rows * heads * length * FLOAT32_BYTES
  return outputs


def splash_length(model: ml_collections.ConfigDict, length: int) -> int:
  """`length` padded to whole splash tiles (`attention_kernels.splash_tile`)."""
  tile = attention_kernels.splash_tile(attention_kernels.attention_chunk(model), length)
  return -(-length // tile) * tile


def splash_unit_bytes(rows: int, heads: int, length: int) -> int:
  """Bytes of one lane-broadcast splash statistic `[rows, heads, length, 128]` float32 (length padded)."""
  return rows * heads * length * SPLASH_LANES * FLOAT32_BYTES


def activation_bytes(config: ml_collections.ConfigDict, mesh: AbstractMesh) -> int:
  """Per-chip activation bytes of the largest length group (see the module docstring)."""
  model = config.model
  tensor = mesh.shape["tensor"]
  data_parallel = math.prod(mesh.shape[a] for a in sharding.BATCH_AXES)
  microbatches = config.train.get("microbatches", 1)
  compute = jnp.dtype(model.dtype).itemsize
  heads = -(-model.heads // tensor)
  head_features, mlp, vocab = (
    heads * model.head_dim,
    -(-model.mlp_dim // tensor),
    -(-model.vocab_size // tensor),
  )
  largest = 0
  for group in length_groups(config, data_parallel):
    rows, length = group.batch_size // data_parallel // microbatches, group.length
    tokens = rows * length
    width = tokens * model.width
    attention = attention_bytes(model, rows, heads, length)
    block_all = (
      BLOCK_WIDTH_TENSORS * width
      + BLOCK_HEAD_TENSORS * tokens * head_features
      + BLOCK_MLP_TENSORS * tokens * mlp
    ) * compute + attention
    kept = 0  # what a block keeps for the backward beyond its remat policy
    if model.get("attention", "dense") == "splash":
      kept = int(SPLASH_SAVED_UNITS * splash_unit_bytes(rows, heads, splash_length(model, length)))
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
    largest = max(largest, model.depth * (saved + kept) + working + loss + gradients)
  return largest


def estimate(config: ml_collections.ConfigDict, chips: int) -> Estimate:
  """Per-chip memory of a training step of the LM `config` on `chips` devices (its mesh.shape)."""
  mesh = abstract_mesh(config, chips)
  state = state_bytes(config, mesh)
  return Estimate(
    params=state["params"],
    moments=state["moments"],
    # Accumulating microbatches: the running sum beside each microbatch's gradient.
    grads=state["params"] * (2 if config.train.get("microbatches", 1) > 1 else 1),
    ema=state["ema"],
    activations=activation_bytes(config, mesh),
  )
