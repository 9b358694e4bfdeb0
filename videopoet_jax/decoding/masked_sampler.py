"""MAGVIT's non-autoregressive sampler, for the super-resolution stage: every id starts hidden; each of a
fixed number of steps predicts all hidden ids at once, reveals the most confident of them and keeps the rest
hidden for the next step, on a cosine schedule. Guidance on the text and on the low-resolution condition is
applied separately (VideoPoet: text 4, low resolution 1 at its first 2x stage).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from videopoet_jax.model import sr_transformer


def hidden_counts(steps: int, length: int) -> np.ndarray:
  """`[steps]` int: how many of `length` ids are still hidden after each step, on the cosine schedule
  (`length * cos(pi / 2 * (s + 1) / steps)`), each step revealing at least one and the last all."""
  if not 1 <= steps <= length:
    raise ValueError(f"steps must be in [1, {length}] (one id revealed per step at least), got {steps}")
  counts = np.floor(length * np.cos(np.pi / 2 * np.arange(1, steps + 1) / steps)).astype(np.int64)
  counts[-1] = 0
  for s in range(steps):
    previous = length if s == 0 else counts[s - 1]
    counts[s] = min(counts[s], previous - 1)  # reveal at least one now ...
    counts[s] = max(counts[s], steps - 1 - s)  # ... and leave one for every step after this
  return counts


def two_condition_guidance(
  both: jax.Array, low_res_only: jax.Array, neither: jax.Array, text_scale, low_res_scale
) -> jax.Array:
  """Logits guided on two conditions separately: `neither + low_res_scale * (low_res_only - neither) +
  text_scale * (both - low_res_only)`, from the logits with both conditions, with the low-resolution one
  alone, and with neither. At scales (1, 1) they are the conditional logits."""
  return neither + low_res_scale * (low_res_only - neither) + text_scale * (both - low_res_only)


def reveal_step(
  key: jax.Array, logits: jax.Array, ids: jax.Array, hidden: jax.Array, keep_hidden, temperature: float
) -> tuple[jax.Array, jax.Array]:
  """One step: a candidate for every position from `[B, L, K, V]` logits (K sub-ids of log2(V) bits each,
  lowest first, as `model/sr_transformer.py` factorizes; K=1: one id; temperature 0: argmax), then the
  `keep_hidden` least confident hidden positions of each example stay hidden and the other hidden ones take
  their candidates. Confidence is the candidate's log-probability (summed over its sub-ids) plus Gumbel noise
  scaled by the temperature (MaskGIT's randomized choice). Visible ids never change. Returns `(ids,
  hidden)`, `[B, L]`."""
  sample_key, noise_key = jax.random.split(key)
  if temperature > 0:
    candidates = jax.random.categorical(sample_key, logits / temperature, axis=-1)
  else:
    candidates = jnp.argmax(logits, axis=-1)
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  confidence = jnp.take_along_axis(log_probs, candidates[..., None], axis=-1)[..., 0].sum(axis=-1)
  confidence = confidence + temperature * jax.random.gumbel(noise_key, confidence.shape)
  confidence = jnp.where(hidden, confidence, jnp.inf)  # visible ids rank last: never hidden again
  ranks = jnp.argsort(jnp.argsort(confidence, axis=-1), axis=-1)
  still_hidden = ranks < keep_hidden
  factors = logits.shape[-2]
  sub_bits = (logits.shape[-1] - 1).bit_length() if factors > 1 else 0
  merged = sr_transformer.merge_factors(candidates, sub_bits * factors, factors).astype(ids.dtype)
  return jnp.where(hidden & ~still_hidden, merged, ids), still_hidden


def sample(
  logits_fn: Callable[[jax.Array, jax.Array], jax.Array],
  key: jax.Array,
  batch: int,
  length: int,
  steps: int,
  temperature: float = 1.0,
) -> jax.Array:
  """`[batch, length]` ids from `logits_fn(ids [B, L], hidden [B, L] bool) -> [B, L, K, V]` (guidance inside
  it) in `steps` reveal steps; deterministic for `key`. Hidden positions hold 0 in the `ids` passed to it."""
  counts = jnp.asarray(hidden_counts(steps, length))

  def body(step, carry):
    ids, hidden = carry
    logits = logits_fn(ids, hidden)
    return reveal_step(jax.random.fold_in(key, step), logits, ids, hidden, counts[step], temperature)

  start = (jnp.zeros((batch, length), jnp.int32), jnp.ones((batch, length), bool))
  ids, hidden = jax.lax.fori_loop(0, steps, body, start)
  del hidden  # all revealed by the last step
  return ids
