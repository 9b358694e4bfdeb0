"""Optimizers built from a config's `train` section."""

from __future__ import annotations

import jax
import ml_collections
import optax
from flax import nnx


def warmup_cosine(train: ml_collections.ConfigDict, lr_scale: float = 1.0) -> optax.Schedule:
  """Linear warmup over train.warmup_steps to train.learning_rate * lr_scale, then cosine decay to 0."""
  return optax.warmup_cosine_decay_schedule(
    0.0, train.learning_rate * lr_scale, train.warmup_steps, max(train.steps, train.warmup_steps + 1)
  )


def adam_warmup_cosine(
  train: ml_collections.ConfigDict, lr_scale: float = 1.0
) -> optax.GradientTransformation:
  """Adam with linear warmup + cosine decay and global-norm clipping."""
  return optax.chain(
    optax.clip_by_global_norm(train.grad_clip),
    optax.adam(warmup_cosine(train, lr_scale), b1=train.b1, b2=train.b2),
  )


def adamw_warmup_cosine(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW (decay on matrices only, not norm scales) with warmup + cosine and global-norm clipping."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  return optax.chain(
    optax.clip_by_global_norm(train.grad_clip),
    optax.adamw(
      warmup_cosine(train), b1=train.b1, b2=train.b2, weight_decay=train.weight_decay, mask=decay_mask
    ),
  )


# What a tokenizer run trains: everything, or only its decoder ("decoder": the encoder, and any codebooks,
# stay those of `train.init_from`, so every input keeps its ids and an LM trained on those ids stays valid).
TRAINABLE = ("all", "decoder")


def decoder_only(train: ml_collections.ConfigDict) -> bool:
  """Whether `train.trainable` (one of TRAINABLE; "all" where a config predates it) is "decoder"."""
  trainable = train.get("trainable", "all")
  if trainable not in TRAINABLE:
    raise ValueError(f"train.trainable={trainable!r}: one of {TRAINABLE}")
  return trainable == "decoder"


def check_trainable(train: ml_collections.ConfigDict) -> None:
  """Raises a ValueError when only the decoder trains but nothing says whose ids it keeps."""
  if decoder_only(train) and not train.init_from:
    raise ValueError("train.trainable='decoder' needs train.init_from: the tokenizer whose ids it keeps")


def _in_encoder(path) -> bool:
  return getattr(path[0], "key", None) == "encoder"


def with_frozen_encoder(params: nnx.State, train: ml_collections.ConfigDict) -> nnx.State:
  """`params` for the loss: with `train.trainable="decoder"` the encoder's behind stop_gradient, so no
  gradient is computed through it at all; unchanged otherwise."""
  if not decoder_only(train):
    return params
  return jax.tree_util.tree_map_with_path(
    lambda p, x: jax.lax.stop_gradient(x) if _in_encoder(p) else x, params
  )


def ema_step(ema: nnx.State, params: nnx.State, decay: float) -> nnx.State:
  """One EMA step towards `params`, as e + (1 - decay) (p - e): exactly e where a weight did not move (a
  frozen encoder stays bit-identical)."""
  return jax.tree.map(lambda e, p: e + (1 - decay) * (p - e), ema, params)


def tokenizer_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """`adam_warmup_cosine` on a tokenizer's weights; with `train.trainable="decoder"`, the weights under the
  top-level `encoder` get no update."""
  adam = adam_warmup_cosine(train)
  if not decoder_only(train):
    return adam
  part = lambda path, _: "frozen" if _in_encoder(path) else "trained"  # noqa: E731
  return optax.multi_transform(
    {"trained": adam, "frozen": optax.set_to_zero()},
    lambda params: jax.tree_util.tree_map_with_path(part, params),
  )
