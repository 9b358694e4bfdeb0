"""Decoder-only prefix-LM transformer: RoPE, pre-RMSNorm, SwiGLU, optional tied embeddings, KV cache.

Tokens `[B, S]` int32 global ids (see videopoet_jax/vocab.py) with per-example prefix lengths `[B]`:
position i attends to j when j <= i or j < prefix_length (bidirectional over the prefix, causal after it);
padding is handled by the caller's loss mask. Parameters carry logical axis names ("vocab", "embed",
"heads", "kv", "mlp") for sharding rules.

Sampling (videopoet_jax/decoding) runs `extend` over the whole prefix (prefill), then one token at a time
with a `KVCache` (model/kv_cache.py: per layer k and v `[B, heads, max_len, head_dim]`); the result equals
recomputing the whole sequence (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from videopoet_jax.model.kv_cache import KVCache

# Attention logits of masked pairs.
MASKED_LOGIT = -1e30
RMS_EPSILON = 1e-6


def prefix_lm_mask(
  query_positions: jax.Array, key_positions: jax.Array, prefix_length: jax.Array
) -> jax.Array:
  """`[B, Q, K]` bool: query i sees key j iff j <= i or j < prefix_length (per example `[B]`)."""
  causal = key_positions[None, None, :] <= query_positions[None, :, None]
  in_prefix = key_positions[None, None, :] < prefix_length[:, None, None]
  return causal | in_prefix


def rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
  """Rotary embedding of `[B, S, H, D]` at integer positions `[S]` (D even; pairs (i, i + D/2))."""
  half = x.shape[-1] // 2
  frequencies = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions[:, None].astype(jnp.float32) * frequencies[None, :]  # [S, D/2]
  sin, cos = jnp.sin(angles)[None, :, None, :], jnp.cos(angles)[None, :, None, :]
  first, second = x[..., :half], x[..., half:]
  return jnp.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1).astype(x.dtype)


def logical_axes(*names: str) -> dict:
  """Variable metadata naming a parameter's logical axes; the LM trainer maps them onto the mesh with the
  config's rules (nothing is placed at creation)."""
  return {"out_sharding": names, "eager_sharding": False}


def _dense(cin: int, cout: int, axes: tuple[str, str], rngs) -> nnx.Linear:
  return nnx.Linear(cin, cout, use_bias=False, kernel_metadata=logical_axes(*axes), rngs=rngs)


class RMSNorm(nnx.Module):
  def __init__(self, width: int, *, rngs):
    del rngs
    self.scale = nnx.Param(jnp.ones((width,)), **logical_axes("embed"))

  def __call__(self, x: jax.Array) -> jax.Array:
    variance = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return (x * jax.lax.rsqrt(variance + RMS_EPSILON)).astype(x.dtype) * self.scale.value


class Attention(nnx.Module):
  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.heads, self.head_dim, self.rope_base = model.heads, model.head_dim, model.rope_base
    inner = model.heads * model.head_dim
    self.query = _dense(model.width, inner, ("embed", "heads"), rngs)
    self.key = _dense(model.width, inner, ("embed", "heads"), rngs)
    self.value = _dense(model.width, inner, ("embed", "heads"), rngs)
    self.out = _dense(inner, model.width, ("heads", "embed"), rngs)

  def project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`[B, S, W]` -> rotated q, k and v, each `[B, S, H, D]`."""
    b, s, _ = x.shape
    split = lambda t: t.reshape(b, s, self.heads, self.head_dim)
    q = rope(split(self.query(x)), positions, self.rope_base)
    k = rope(split(self.key(x)), positions, self.rope_base)
    return q, k, split(self.value(x))

  def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """q `[B, Q, H, D]`, k/v `[B, H, K, D]` (heads-major, as cached), mask `[B, Q, K]` -> `[B, Q, W]`."""
    # Heads-major q too: with batch 1, XLA on CPU otherwise transposed the whole cache for the dot.
    q = q.transpose(0, 2, 1, 3)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / jnp.sqrt(self.head_dim).astype(q.dtype)
    logits = jnp.where(mask[:, None], logits, MASKED_LOGIT)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights, v).transpose(0, 2, 1, 3)
    return self.out(out.reshape(*out.shape[:2], -1))


class MLP(nnx.Module):
  """SwiGLU: out(silu(gate(x)) * up(x))."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.gate = _dense(model.width, model.mlp_dim, ("embed", "mlp"), rngs)
    self.up = _dense(model.width, model.mlp_dim, ("embed", "mlp"), rngs)
    self.out = _dense(model.mlp_dim, model.width, ("mlp", "embed"), rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(jax.nn.silu(self.gate(x)) * self.up(x))


class Block(nnx.Module):
  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.attention_norm = RMSNorm(model.width, rngs=rngs)
    self.attention = Attention(model, rngs=rngs)
    self.mlp_norm = RMSNorm(model.width, rngs=rngs)
    self.mlp = MLP(model, rngs=rngs)

  def __call__(self, x, positions, key_positions, prefix_length, cache=None, cache_index=None, layer=None):
    """`x [B, S, W]` at `positions [S]`; with a `KVCache` the new keys and values are written into layer
    `layer` at slot `cache_index` and attention runs over the cache at `key_positions [L]`.
    Returns `(x, cache)`."""
    q, k, v = self.attention.project(self.attention_norm(x), positions)
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, H, S, D]
    if cache is not None:
      cache = cache.write(layer, cache_index, k, v)
      k, v = cache.layer(layer)
    mask = prefix_lm_mask(positions, key_positions, prefix_length)
    x = x + self.attention.attend(q, k, v, mask)
    return x + self.mlp(self.mlp_norm(x)), cache


class Transformer(nnx.Module):
  """The prefix LM. `model` keys: vocab_size, width, depth, heads, head_dim, mlp_dim, rope_base,
  tied_embeddings."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.model = model
    self.embed = nnx.Embed(
      model.vocab_size,
      model.width,
      embedding_init=nnx.initializers.normal(1.0),
      embedding_metadata=logical_axes("vocab", "embed"),
      rngs=rngs,
    )
    self.blocks = nnx.List([Block(model, rngs=rngs) for _ in range(model.depth)])
    self.final_norm = RMSNorm(model.width, rngs=rngs)
    self.head = (
      None if model.tied_embeddings else _dense(model.width, model.vocab_size, ("embed", "vocab"), rngs)
    )

  def logits(self, x: jax.Array) -> jax.Array:
    """Final hidden states `[B, S, W]` -> `[B, S, vocab]` logits."""
    x = self.final_norm(x)
    return self.embed.attend(x) if self.head is None else self.head(x)

  def hidden(self, tokens: jax.Array, prefix_length: jax.Array) -> jax.Array:
    """Full-sequence pass: `[B, S]` ids -> final hidden states `[B, S, W]` (before the norm)."""
    positions = jnp.arange(tokens.shape[1])
    x = self.embed(tokens)
    for block in self.blocks:
      x, _ = block(x, positions, positions, prefix_length)
    return x

  def __call__(self, tokens: jax.Array, prefix_length: jax.Array) -> jax.Array:
    """`[B, S]` int32 ids, `[B]` prefix lengths -> `[B, S, vocab]` logits (position i predicts i + 1)."""
    if tokens.ndim != 2 or prefix_length.shape != tokens.shape[:1]:
      raise ValueError(
        f"tokens must be [B, S] with prefix_length [B], got {tokens.shape}, {prefix_length.shape}"
      )
    return self.logits(self.hidden(tokens, prefix_length))

  def init_cache(self, batch: int, max_length: int, dtype=jnp.float32) -> KVCache:
    """Empty key/value cache: per layer k and v `[batch, heads, max_length, head_dim]`."""
    return KVCache.zeros(len(self.blocks), batch, max_length, self.model.heads, self.model.head_dim, dtype)

  def extend(self, tokens: jax.Array, start: int | jax.Array, prefix_length: jax.Array, cache: KVCache):
    """Runs `tokens [B, S]` at positions start .. start + S - 1 against the cache (keys beyond the written
    ones are masked by position). Returns `(logits [B, S, vocab], cache)`; prefill is extend at 0."""
    if cache.depth != len(self.blocks) or cache.batch_size != tokens.shape[0]:
      raise ValueError(f"cache of {cache.depth} layers x batch {cache.batch_size} for tokens {tokens.shape}")
    positions = start + jnp.arange(tokens.shape[1])
    key_positions = jnp.arange(cache.max_length)
    # Cache slots not yet written hold zeros; they are at positions > every query, so the causal part of
    # the mask hides them, and the prefix part only reaches written slots when the prefix was prefilled.
    x = self.embed(tokens)
    for layer, block in enumerate(self.blocks):
      x, cache = block(x, positions, key_positions, prefix_length, cache, start, layer)
    return self.logits(x), cache
