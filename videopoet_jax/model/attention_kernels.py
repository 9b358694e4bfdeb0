"""Prefix-LM attention on fused attention kernels: no `[B, H, S, S]` tensor in memory.

The prefix-LM mask (query i sees key j iff j <= i or j < P, per example) is not one the kernels take, but
it is two that they do: a query in the prefix (i < P) sees exactly the keys j < P, and a query after it
exactly the keys j <= i. So each implementation runs two kernel passes over the whole sequence, one causal
and one over the first P keys only, and each query keeps the pass that matches it:
  cudnn  -- `jax.nn.dot_product_attention`: `is_causal=True`, and `key_value_seq_lengths=P`. On GPU cuDNN's
            flash attention (bf16/fp16 inputs); on other backends XLA's reference implementation of the
            same call (it materializes the logits: what the CPU tests check the decomposition with).
  splash -- Pallas splash attention (TPU): a `CausalMask` kernel, and a `FullMask` kernel whose key segment
            ids (0 before P, 1 from it) hide keys j >= P from the queries (all segment 0). Under a mesh it
            runs per shard (`jax.shard_map`: batch over the batch axes, heads over the heads' axis); off TPU
            it is interpreted (the tests).
Two passes cost twice the attention FLOPs of one; skipping the key blocks past the longest prefix in the
second pass would win most of it back (not done). Sequences are padded to the splash tile inside (pads are
keys no query sees). q, k, v are `[B, S, H, D]` (dot_product_attention's layout) at positions 0 .. S-1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from videopoet_jax import sharding

# `model.attention` values served here.
KERNELS = ("cudnn", "splash")
# `model.attention_chunk` of configs written before the key existed.
DEFAULT_ATTENTION_CHUNK = 512


def attention_chunk(model) -> int:
  """The keys per chunk of "chunked" attention and the tile of "splash" (`model.attention_chunk`)."""
  return model.get("attention_chunk", DEFAULT_ATTENTION_CHUNK)


# Splash tiles (`model.attention_chunk`) are multiples of this (the TPU's lane count).
SPLASH_TILE_MULTIPLE = 128
# Logical axes of q, k, v and the output `[B, S, H, D]` (the splash kernels run per shard of them).
QKV_AXES = ("activation_batch", "activation_length", "heads", None)


def _platform() -> str:
  """Where the step runs: the platform of the mesh in context (an ahead-of-time compile for a TPU topology
  on a CPU host compiles the TPU kernels), else the default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  device = None if mesh.empty else getattr(mesh, "abstract_device", None)
  return device.platform if device is not None else jax.default_backend()


def _in_prefix(prefix_length: jax.Array, length: int) -> jax.Array:
  """`[B, S, 1, 1]` bool: the query at each position is in its example's prefix."""
  return (jnp.arange(length)[None, :] < prefix_length[:, None])[:, :, None, None]


def dot_product_prefix_attention(
  q: jax.Array, k: jax.Array, v: jax.Array, prefix_length: jax.Array
) -> jax.Array:
  """Prefix-LM attention `[B, S, H, D]` from q, k, v `[B, S, H, D]` and `prefix_length [B]` with
  `jax.nn.dot_product_attention` (cuDNN on GPU, XLA elsewhere)."""
  implementation = "cudnn" if _platform() == "gpu" else "xla"
  attend = functools.partial(jax.nn.dot_product_attention, implementation=implementation)
  causal = attend(q, k, v, is_causal=True)
  # At least one key: a row without a prefix takes the causal pass anyway, and an empty softmax is NaN.
  prefix = attend(q, k, v, key_value_seq_lengths=jnp.maximum(prefix_length, 1).astype(jnp.int32))
  return jnp.where(_in_prefix(prefix_length, q.shape[1]), prefix, causal)


def _splash_kernels(heads: int, length: int, block: int, interpret: bool):
  """The (causal, full) splash kernels for `heads` x `length` x `length` masks, blocks of `block`. Made in
  the trace that uses them (their block tables are arrays: constants of that trace, so never cached)."""
  sizes = splash.BlockSizes(
    block_q=block,
    block_kv=block,
    block_kv_compute=block,
    block_q_dkv=block,
    block_kv_dkv=block,
    block_kv_dkv_compute=block,
    block_q_dq=block,
    block_kv_dq=block,
  )
  make = lambda mask: splash.make_splash_mha(  # noqa: E731
    splash_mask.MultiHeadMask([mask((length, length))] * heads),
    block_sizes=sizes,
    head_shards=1,
    q_seq_shards=1,
    interpret=interpret,
  )
  return make(splash_mask.CausalMask), make(splash_mask.FullMask)


def splash_tile(block: int, length: int) -> int:
  """The tile a sequence of `length` runs with: `block`, or fewer lanes' multiples for a shorter sequence
  (an 85-token text_to_image row pads to 128, not to 512)."""
  return min(block, -(-length // SPLASH_TILE_MULTIPLE) * SPLASH_TILE_MULTIPLE)


def check_splash_tile(block: int) -> None:
  """ValueError unless `block` is a positive multiple of SPLASH_TILE_MULTIPLE."""
  if block <= 0 or block % SPLASH_TILE_MULTIPLE:
    raise ValueError(
      f"model.attention_chunk={block}: splash tiles must be a multiple of {SPLASH_TILE_MULTIPLE}"
    )


def _splash_shard(q, k, v, prefix_length, block: int):
  """`splash_prefix_attention` on one shard (the kernels see every position of their rows and heads)."""
  b, s, h, d = q.shape
  block = splash_tile(block, s)
  pad = -s % block
  heads_major = lambda x: jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))).transpose(0, 2, 1, 3)  # noqa: E731
  q, k, v = heads_major(q / np.sqrt(d).astype(q.dtype)), heads_major(k), heads_major(v)
  causal_kernel, full_kernel = _splash_kernels(h, s + pad, block, _platform() != "tpu")
  causal = jax.vmap(causal_kernel)(q, k, v)
  keys = (jnp.arange(s + pad)[None, :] >= prefix_length[:, None]).astype(jnp.int32)
  segments = splash.SegmentIds(q=jnp.zeros_like(keys), kv=keys)
  prefix = jax.vmap(full_kernel)(q, k, v, segment_ids=segments)
  out = jnp.where(_in_prefix(prefix_length, s + pad).transpose(0, 2, 1, 3), prefix, causal)
  return out.transpose(0, 2, 1, 3)[:, :s]


def splash_prefix_attention(
  q: jax.Array, k: jax.Array, v: jax.Array, prefix_length: jax.Array, block: int
) -> jax.Array:
  """Prefix-LM attention `[B, S, H, D]` from q, k, v `[B, S, H, D]` and `prefix_length [B]` with Pallas
  splash kernels of `block`-sized tiles; per shard under a mesh and logical axis rules in context."""
  run = functools.partial(_splash_shard, block=block)
  rules = sharding.context_rules()
  if rules is None:
    return run(q, k, v, prefix_length)
  spec = sharding.logical_spec(QKV_AXES, rules)
  rows = sharding.logical_spec(QKV_AXES[:1], rules)
  # Pallas outputs carry no varying-axes annotation, so shard_map's check is off (as maxtext does).
  shard = jax.shard_map(run, in_specs=(spec, spec, spec, rows), out_specs=spec, check_vma=False)
  return shard(q, k, v, prefix_length)
