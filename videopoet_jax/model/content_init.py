"""Embedding rows started from what each id draws, for tokenizers that draw each id alone (a patch table)."""

import jax
import jax.numpy as jnp


def content_embeddings(features: jax.Array, width: int, std: float, seed: int = 0) -> jax.Array:
  """`[K, F]` per-id content (e.g. `PatchTableTokenizer.id_pixels`) -> `[K, width]` embedding rows: the
  centred features through a fixed Gaussian projection, scaled to `std` per element. Ids that draw alike
  start alike (a random projection keeps distances), so what a model learns of one id carries to its
  neighbours, in the input and through an output layer started the same way."""
  centred = features - jnp.mean(features, axis=0)
  projection = jax.random.normal(jax.random.key(seed), (features.shape[1], width), jnp.float32)
  rows = centred @ projection
  return rows * (std / jnp.maximum(jnp.std(rows), 1e-12))
