"""Residual vector quantization with EMA codebooks (SoundStream, section III-C).

Level l quantizes the residual r_l = z - (q_0 + ... + q_{l-1}) to its nearest code in codebook l; the
quantized latent is the sum of the levels an example uses. Codebooks are not trained by gradients: they
are exponential moving averages of the vectors assigned to each code (VQ-VAE-2), initialized by k-means
on the first batch, and a code whose EMA usage falls below a threshold is restarted on a random vector
of the current batch. Quantizer dropout gives every example a random number of levels `[1, L]`, as a
`[B, L]` mask, so one model serves every bitrate.

All arrays are plain jax values: `CodebookState` is a pytree the trainer carries next to the parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

# Laplace smoothing of the EMA cluster sizes (avoids dividing by zero for unused codes).
EMA_EPSILON = 1e-5


class CodebookVariable(nnx.Variable):
  """Holds a `CodebookState` inside a module: not a Param (no gradients), exported with the weights."""


@struct.dataclass
class CodebookState:
  """`codebooks [L, K, D]`; EMA of per-step assignment counts `cluster_size [L, K]` and of the sum of
  assigned vectors `embed_sum [L, K, D]` (codebooks = embed_sum / smoothed cluster_size)."""

  codebooks: jax.Array
  cluster_size: jax.Array
  embed_sum: jax.Array

  @classmethod
  def create(cls, levels: int, codebook_size: int, dim: int, key: jax.Array) -> CodebookState:
    """Random unit-scale codebooks (replaced by k-means on the first batch when training)."""
    codebooks = jax.random.normal(key, (levels, codebook_size, dim), jnp.float32)
    cluster_size = jnp.ones((levels, codebook_size), jnp.float32)
    return cls(codebooks, cluster_size, codebooks * cluster_size[..., None])


def nearest_code(codebook: jax.Array, x: jax.Array) -> jax.Array:
  """Ids of the nearest codes (squared L2): codebook `[K, D]`, x `[..., D]` -> `[...]` int32."""
  distances = jnp.sum(x**2, axis=-1, keepdims=True) - 2.0 * x @ codebook.T + jnp.sum(codebook**2, axis=-1)
  return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def level_mask(num_levels: jax.Array, levels: int) -> jax.Array:
  """`[B]` level counts in [1, L] -> `[B, L]` float mask, 1 for the levels each example uses."""
  return (jnp.arange(levels)[None, :] < num_levels[:, None]).astype(jnp.float32)


def dropout_mask(key: jax.Array, batch: int, levels: int, probability: float) -> jax.Array:
  """Quantizer dropout: with `probability`, an example uses U{1..L} levels, otherwise all L. `[B, L]`."""
  use_random, key = jax.random.split(key)
  random_levels = jax.random.randint(key, (batch,), 1, levels + 1)
  num_levels = jnp.where(jax.random.uniform(use_random, (batch,)) < probability, random_levels, levels)
  return level_mask(num_levels, levels)


def quantize(
  state: CodebookState, z: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Quantizes latents `z [B, T, D]` with the levels in `mask [B, L]` (default: all).

  Returns `(quantized, ids, residuals, commitment)`: the masked sum of quantized levels `[B, T, D]` with a
  straight-through gradient to z, ids `[B, L, T]` (every level is computed; masked levels are ignored by
  the decoder), the input of every level `residuals [L, B, T, D]`, and the commitment loss (mean squared
  distance of each used level's input to its code, gradient into the encoder only).
  """
  levels = state.codebooks.shape[0]
  mask = jnp.ones((z.shape[0], levels), z.dtype) if mask is None else mask
  residual = z
  quantized = jnp.zeros_like(z)
  ids, inputs, commitment = [], [], 0.0
  for level in range(levels):
    level_ids = nearest_code(state.codebooks[level], jax.lax.stop_gradient(residual))
    code = state.codebooks[level][level_ids]
    used = mask[:, level][:, None, None]
    commitment += jnp.mean(used * (residual - code) ** 2)
    inputs.append(residual)
    ids.append(level_ids)
    quantized = quantized + used * code
    residual = residual - code
  quantized = z + jax.lax.stop_gradient(quantized - z)
  return quantized, jnp.stack(ids, axis=1), jax.lax.stop_gradient(jnp.stack(inputs)), commitment / levels


def ids_to_vectors(state: CodebookState, ids: jax.Array) -> jax.Array:
  """Ids `[B, L', T]` (the first L' <= L levels) -> the summed code vectors `[B, T, D]`."""
  used = ids.shape[1]
  if used > state.codebooks.shape[0]:
    raise ValueError(f"ids have {used} levels; the codebooks have {state.codebooks.shape[0]}")
  return sum(state.codebooks[level][ids[:, level]] for level in range(used))


def assignment_counts(ids: jax.Array, mask: jax.Array, codebook_size: int) -> jax.Array:
  """How often each code was used by the examples' active levels: ids `[B, L, T]` -> `[L, K]` float32."""
  one_hot = jax.nn.one_hot(ids, codebook_size, dtype=jnp.float32)  # [B, L, T, K]
  return jnp.einsum("bltk,bl->lk", one_hot, mask)


def ema_update(
  state: CodebookState, residuals: jax.Array, ids: jax.Array, mask: jax.Array, decay: float
) -> CodebookState:
  """One EMA step from this batch's level inputs `[L, B, T, D]`, ids `[B, L, T]` and mask `[B, L]`."""
  codebook_size = state.codebooks.shape[1]
  one_hot = jax.nn.one_hot(ids, codebook_size, dtype=jnp.float32) * mask[:, :, None, None]
  counts = jnp.sum(one_hot, axis=(0, 2))  # [L, K]
  sums = jnp.einsum("bltk,lbtd->lkd", one_hot, residuals)
  cluster_size = decay * state.cluster_size + (1 - decay) * counts
  embed_sum = decay * state.embed_sum + (1 - decay) * sums
  # Laplace smoothing keeps the total mass while giving empty clusters a tiny positive size.
  total = jnp.sum(cluster_size, axis=-1, keepdims=True)
  smoothed = (cluster_size + EMA_EPSILON) / (total + codebook_size * EMA_EPSILON) * total
  return CodebookState(embed_sum / smoothed[..., None], cluster_size, embed_sum)


def restart_dead_codes(
  state: CodebookState, residuals: jax.Array, threshold: float, key: jax.Array
) -> tuple[CodebookState, jax.Array]:
  """Replaces every code whose EMA usage is below `threshold` with a random input vector of its level.

  residuals `[L, B, T, D]`. A restarted code gets EMA usage `threshold` (trainers check only every
  `restart_every` steps, so it has that long to attract vectors before it is judged again).
  Returns the new state and the number of restarted codes per level `[L]`.
  """
  levels, codebook_size, dim = state.codebooks.shape
  vectors = residuals.reshape(levels, -1, dim)
  picks = jax.random.randint(key, (levels, codebook_size), 0, vectors.shape[1])
  candidates = jnp.take_along_axis(vectors, picks[..., None], axis=1)  # [L, K, D]
  dead = state.cluster_size < threshold
  codebooks = jnp.where(dead[..., None], candidates, state.codebooks)
  cluster_size = jnp.where(dead, threshold, state.cluster_size)
  embed_sum = jnp.where(dead[..., None], candidates * threshold, state.embed_sum)
  return CodebookState(codebooks, cluster_size, embed_sum), jnp.sum(dead, axis=-1)


def kmeans(x: jax.Array, num_clusters: int, iterations: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means on `x [N, D]`: returns `(centroids [K, D], counts [K])`.

  Centroids start at random rows of x (with replacement when N < K); an empty cluster keeps its centroid.
  """
  centroids = x[jax.random.randint(key, (num_clusters,), 0, x.shape[0])]

  def step(centroids, _):
    one_hot = jax.nn.one_hot(nearest_code(centroids, x), num_clusters, dtype=x.dtype)
    counts = jnp.sum(one_hot, axis=0)
    means = (one_hot.T @ x) / jnp.maximum(counts, 1.0)[:, None]
    return jnp.where(counts[:, None] > 0, means, centroids), counts

  centroids, counts = jax.lax.scan(step, centroids, None, length=iterations)
  return centroids, counts[-1]


def kmeans_init(state: CodebookState, z: jax.Array, iterations: int, key: jax.Array) -> CodebookState:
  """Initializes every level by k-means on its residuals of the latents `z [B, T, D]`, level by level."""
  levels, codebook_size, dim = state.codebooks.shape
  residual = z.reshape(-1, dim)
  codebooks, sizes = [], []
  for level_key in jax.random.split(key, levels):
    centroids, counts = kmeans(residual, codebook_size, iterations, level_key)
    codebooks.append(centroids)
    sizes.append(counts)
    residual = residual - centroids[nearest_code(centroids, residual)]
  codebooks, cluster_size = jnp.stack(codebooks), jnp.stack(sizes)
  return CodebookState(codebooks, cluster_size, codebooks * cluster_size[..., None])


def usage_stats(counts, prefix: str = "") -> dict[str, float]:
  """Per-level codebook usage and perplexity from `[L, K]` counts (numpy or jax)."""
  counts = np.asarray(counts, np.float64)
  stats = {}
  for level, c in enumerate(counts):
    p = c / max(c.sum(), 1.0)
    nonzero = p[p > 0]
    stats[f"{prefix}usage_l{level}"] = float(np.mean(c > 0))
    stats[f"{prefix}perplexity_l{level}"] = float(np.exp(-np.sum(nonzero * np.log(nonzero))))
  return stats
