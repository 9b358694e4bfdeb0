"""The MAGVIT masked-token objective of the super-resolution stage, and its condition augmentations.

A training example hides a random fraction of its target ids, drawn from the cosine schedule (ratio
`cos(pi / 2 * u)`, `u ~ U(0, 1)`: most steps hide most tokens, as sampling starts fully hidden), and the loss
is the cross-entropy on the hidden positions only. The low-resolution condition is augmented by resampling a
random subset of its ids (VideoPoet: "noise augmentation"), and the text and low-resolution conditions are
dropped independently, so that guidance on each works at sampling time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cosine_mask_ratio(u: jax.Array) -> jax.Array:
  """Fraction of tokens hidden at schedule position `u` in [0, 1]: 1 at u=0, 0 at u=1."""
  return jnp.cos(jnp.pi / 2 * u)


def random_mask(key: jax.Array, batch: int, length: int) -> jax.Array:
  """`[batch, length]` bool, True where hidden: per example `max(1, ceil(ratio * length))` positions, with a
  ratio from the cosine schedule, chosen uniformly (at least one, so every example has a loss)."""
  ratio_key, order_key = jax.random.split(key)
  ratio = cosine_mask_ratio(jax.random.uniform(ratio_key, (batch,)))
  count = jnp.maximum(1, jnp.ceil(ratio * length)).astype(jnp.int32)
  ranks = jnp.argsort(jnp.argsort(jax.random.uniform(order_key, (batch, length)), axis=-1), axis=-1)
  return ranks < count[:, None]


def masked_token_loss(logits: jax.Array, targets: jax.Array, hidden: jax.Array) -> jax.Array:
  """Mean cross-entropy of `[B, L, V]` logits against `[B, L]` int targets over the hidden positions only
  (`[B, L]` bool); the visible ones carry no loss. Factorized ids (`[B, L, K, V]` logits, `[B, L, K]`
  sub-id targets) score the sum over their K sub-ids (the id's negative log-likelihood)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  if losses.ndim > hidden.ndim:
    losses = losses.sum(axis=-1)
  weights = hidden.astype(losses.dtype)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def resample_ids(key: jax.Array, ids: jax.Array, fraction: jax.Array, vocab_size: int) -> jax.Array:
  """Noise augmentation of `[B, ...]` condition ids: each id is replaced by a uniform draw from
  `[0, vocab_size)` with probability `fraction` (a scalar or `[B]`: one level per example)."""
  pick_key, value_key = jax.random.split(key)
  fraction = jnp.broadcast_to(jnp.asarray(fraction), ids.shape[:1]).reshape(-1, *([1] * (ids.ndim - 1)))
  replace = jax.random.uniform(pick_key, ids.shape) < fraction
  return jnp.where(replace, jax.random.randint(value_key, ids.shape, 0, vocab_size, ids.dtype), ids)


def condition_dropout(key: jax.Array, batch: int, rate: float) -> tuple[jax.Array, jax.Array]:
  """`(keep_text, keep_low_res)`, two `[batch]` bool draws, each False with probability `rate`,
  independently (an example may lose either condition, both or none)."""
  text_key, low_res_key = jax.random.split(key)
  return (
    jax.random.uniform(text_key, (batch,)) >= rate,
    jax.random.uniform(low_res_key, (batch,)) >= rate,
  )
