"""The prefix LM's key/value cache: an explicit pytree with logical axis names.

One `[B, heads, max_len, head_dim]` key and value array per layer. The layout is heads-major so that the
attention dots read the cache as it lies (with `[B, max_len, heads, head_dim]`, XLA on CPU transposed the
whole cache of every layer at every step: 8x slower attention at batch 8). Layers are separate arrays,
not one stacked `[layers, ...]` array, so each step updates its slots in place and attention reads the
layer's array directly, with no copy out of a stack.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

# Logical axes of every per-layer key or value array, for sharding rules.
CACHE_AXES = ("cache_batch", "cache_heads", "cache_sequence", "cache_kv")


@flax.struct.dataclass
class KVCache:
  """Per-layer keys and values; slot i holds position i (slots not yet written hold zeros)."""

  k: tuple[jax.Array, ...]  # per layer [B, heads, max_len, head_dim]
  v: tuple[jax.Array, ...]  # per layer [B, heads, max_len, head_dim]
  valid: jax.Array  # [B, max_len] bool: False hides a slot from every query (left padding of prompts)

  @classmethod
  def zeros(cls, depth: int, batch: int, max_length: int, heads: int, head_dim: int, dtype=jnp.float32):
    """An empty cache of `depth` layers, each k/v `[batch, heads, max_length, head_dim]`."""
    shape = (batch, heads, max_length, head_dim)
    return cls(
      k=tuple(jnp.zeros(shape, dtype) for _ in range(depth)),
      v=tuple(jnp.zeros(shape, dtype) for _ in range(depth)),
      valid=jnp.ones((batch, max_length), bool),
    )

  @property
  def depth(self) -> int:
    return len(self.k)

  @property
  def batch_size(self) -> int:
    return self.k[0].shape[0]

  @property
  def max_length(self) -> int:
    return self.k[0].shape[2]

  def layer(self, index: int) -> tuple[jax.Array, jax.Array]:
    """Layer `index`'s `(k, v)`, each `[B, heads, max_len, head_dim]`."""
    return self.k[index], self.v[index]

  def write(self, index: int, start: int | jax.Array, k: jax.Array, v: jax.Array) -> KVCache:
    """Writes `k, v [B, heads, S, head_dim]` of layer `index` into slots start .. start + S - 1."""
    update = lambda cache, new: jax.lax.dynamic_update_slice_in_dim(cache, new.astype(cache.dtype), start, 2)
    replace = lambda arrays, new: arrays[:index] + (update(arrays[index], new),) + arrays[index + 1 :]
    return self.replace(k=replace(self.k, k), v=replace(self.v, v))

  def mark_valid(self, start: int | jax.Array, valid: jax.Array) -> KVCache:
    """Sets slots start .. start + S - 1 visible (True) or hidden (False) from `valid [B, S]` bool."""
    return self.replace(valid=jax.lax.dynamic_update_slice_in_dim(self.valid, valid.astype(bool), start, 1))
