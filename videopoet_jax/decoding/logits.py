"""From next-token logits to one token per example: guidance, range constraint, truncation, sampling.

Order per output position t: classifier-free guidance (uncond + scale * (cond - uncond)), then ids outside
the schedule's `[lo[t], hi[t])` are masked, then top-k, temperature, top-p, and a categorical draw
(temperature 0: argmax). Forced positions (one allowed id) take that id without sampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from videopoet_jax.decoding.schedule import OutputSchedule
from videopoet_jax.decoding.settings import Filters, SamplingSettings


def guide(logits: jax.Array, scale: jax.Array) -> jax.Array:
  """Classifier-free guidance: `[2B, V]` logits (conditional rows first, then unconditional) and a scalar
  scale -> `[B, V]` uncond + scale * (cond - uncond)."""
  cond, uncond = jnp.split(logits, 2, axis=0)
  return uncond + scale * (cond - uncond)


def constrain(logits: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """`[B, V]` logits with ids outside `[lo, hi)` (scalars) set to -inf."""
  ids = jnp.arange(logits.shape[-1])
  return jnp.where((ids >= lo) & (ids < hi), logits, -jnp.inf)


def top_k_filter(logits: jax.Array, k: jax.Array, max_top_k: int) -> jax.Array:
  """`[B, V]` logits below the k-th largest set to -inf; k is a traced scalar <= max_top_k (k = 0: off)."""
  if max_top_k == 0:
    return logits
  values = jax.lax.top_k(logits, max_top_k)[0]  # [B, max_top_k], descending
  threshold = jnp.take(values, jnp.clip(k, 1, max_top_k) - 1, axis=-1)[:, None]
  return jnp.where((k > 0) & (logits < threshold), -jnp.inf, logits)


def top_p_filter(logits: jax.Array, p: jax.Array, candidates: int) -> jax.Array:
  """Nucleus filter of `[B, V]` logits: keeps the most likely ids whose probabilities, taken in order, start
  below cumulative mass p (the top id is always kept). Looks at the `candidates` largest logits only: the
  caller guarantees every other id is already -inf or the candidates are the whole vocabulary."""
  if candidates == 0:
    return logits
  values = jax.lax.top_k(logits, candidates)[0]  # [B, candidates], descending
  probs = jax.nn.softmax(values, axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  kept = jnp.sum(mass_before < p, axis=-1)  # >= 1
  threshold = jnp.take_along_axis(values, kept[:, None] - 1, axis=-1)
  return jnp.where((p < 1) & (logits < threshold), -jnp.inf, logits)


def choose_tokens(
  logits: jax.Array,
  step: jax.Array,
  schedule: OutputSchedule,
  settings: SamplingSettings,
  keys: jax.Array,
  filters: Filters,
) -> jax.Array:
  """Output tokens at position `step`.

  Args:
    logits: `[B, V]`, or `[2B, V]` (conditional rows, then unconditional) under guidance.
    step: scalar int32 output position t.
    schedule: the output schedule (`[T]` arrays).
    settings: per-kind settings (`[K]` arrays).
    keys: `[B]` PRNG keys of this step, one per example.
    filters: static filter sizes.
  Returns:
    `[B]` int32 ids in `[lo[t], hi[t])`.
  """
  batch = keys.shape[0]
  kind = schedule.kind[step]
  pick = lambda field: getattr(settings, field)[kind]
  logits = logits.astype(jnp.float32)
  if logits.shape[0] == 2 * batch:
    logits = guide(logits, pick("guidance"))
  lo, hi = schedule.lo[step], schedule.hi[step]
  logits = constrain(logits, lo, hi)
  tokens = jnp.argmax(logits, axis=-1)
  if filters.sample:
    logits = top_k_filter(logits, pick("top_k"), filters.max_top_k)
    temperature = pick("temperature")
    scaled = logits / jnp.where(temperature > 0, temperature, 1.0)
    scaled = top_p_filter(scaled, pick("top_p"), filters.top_p_candidates)
    sampled = jax.vmap(jax.random.categorical)(keys, scaled)
    tokens = jnp.where(temperature > 0, sampled, tokens)
  return jnp.where(hi == lo + 1, lo, tokens).astype(jnp.int32)
