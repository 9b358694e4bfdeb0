"""Lookup-free quantization (MAGVIT-v2, section 3.1).

The codebook is {-1, +1}^D (2^D codes); a latent z in R^D is quantized dimension-wise to sign(z), with
zero mapping to -1. There is no embedding table.

Bit order (frozen; the LM vocabulary depends on it): channel i of a code is bit i of its id, channel 0
the least significant bit, as in the paper's Index(z) = sum_i 2^(i-1) 1[z_i > 0]. So id 1 is
(+1, -1, -1, ...) and id 2^D - 1 is all +1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def sign_codes(z: jax.Array) -> jax.Array:
  """`[..., D]` latents -> codes in {-1, +1} of the same dtype (zero maps to -1, as in `codes_to_ids`)."""
  return jnp.where(z > 0, 1.0, -1.0).astype(z.dtype)


def quantize(z: jax.Array) -> jax.Array:
  """Straight-through sign quantization: forward sign(z) in {-1, +1}, gradient identity. `[..., D]`."""
  return z + jax.lax.stop_gradient(sign_codes(z) - z)


def codes_to_ids(codes: jax.Array) -> jax.Array:
  """`[..., D]` codes in {-1, +1} (any sign-carrying floats) -> `[...]` int32 ids in [0, 2^D)."""
  d = codes.shape[-1]
  assert d <= 30, f"{d} bits do not fit an int32 id"
  weights = (2 ** jnp.arange(d)).astype(jnp.int32)
  return jnp.sum((codes > 0).astype(jnp.int32) * weights, axis=-1)


def ids_to_codes(ids: jax.Array, bits: int, dtype=jnp.float32) -> jax.Array:
  """`[...]` int ids in [0, 2^bits) -> `[..., bits]` codes in {-1, +1} (inverse of `codes_to_ids`)."""
  shifts = jnp.arange(bits, dtype=jnp.int32)
  bit = (ids[..., None].astype(jnp.int32) >> shifts) & 1
  return (2 * bit - 1).astype(dtype)


def _group_log_probs(z: jax.Array, group_bits: int, inv_temperature: float) -> jax.Array:
  """Log soft assignments per bit group: `[N, D] -> [N, D / group_bits, 2^group_bits]`.

  The soft assignment over the whole codebook, softmax_c(-inv_t * |z - c|^2), factorizes over dimensions
  because |z - c|^2 is a sum over them; per dimension, p(bit = +1) = sigmoid(4 * inv_t * z). A group of
  g bits therefore has log p(code) = sum of its bits' log probabilities.
  """
  n, d = z.shape
  assert d % group_bits == 0, f"code_bits {d} not divisible by entropy_group_bits {group_bits}"
  logit = 4.0 * inv_temperature * z.reshape(n, d // group_bits, group_bits)
  log_pos, log_neg = jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
  bits = (ids_to_codes(jnp.arange(2**group_bits), group_bits) > 0).astype(z.dtype)  # [K, g]
  return jnp.einsum("ngb,kb->ngk", log_pos, bits) + jnp.einsum("ngb,kb->ngk", log_neg, 1.0 - bits)


def entropy_terms(z: jax.Array, group_bits: int, inv_temperature: float) -> tuple[jax.Array, jax.Array]:
  """Per-sample entropy E_x[H(p(.|z))] and batch (codebook) entropy H(E_x[p(.|z)]), in nats.

  `z`: `[..., D]` latents; every leading position is one sample. Computed by sub-groups of
  `group_bits` bits, so the largest softmax is 2^group_bits wide. The per-sample term is exact for the
  whole 2^D codebook (the assignment factorizes); the batch term is the sum of the groups' marginal
  entropies, an upper bound that is exact when groups are independent, and exact when one group spans D.
  Called inside jit on a sharded batch, the means are over the global batch.
  """
  z = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
  log_p = _group_log_probs(z, group_bits, inv_temperature)
  p = jnp.exp(log_p)
  per_sample = -jnp.sum(p * log_p, axis=(1, 2)).mean()
  avg_p = p.mean(axis=0)
  batch = -jnp.sum(avg_p * jnp.log(avg_p + 1e-12))
  return per_sample, batch


def code_histogram(ids: jax.Array, codebook_size: int) -> jax.Array:
  """Counts of each id in a batch: `[...]` ids -> `[codebook_size]` int32."""
  return jnp.bincount(ids.reshape(-1), length=codebook_size)


def usage_stats(counts) -> dict[str, float]:
  """From accumulated id counts: fraction of the codebook used, and perplexity exp(H) of the usage.

  Collapse shows as a perplexity far below the number of ids counted.
  """
  counts = np.asarray(counts, dtype=np.float64)
  probs = counts / max(counts.sum(), 1.0)
  nz = probs[probs > 0]
  return {"codebook_usage": float(np.mean(counts > 0)), "perplexity": float(np.exp(-np.sum(nz * np.log(nz))))}
