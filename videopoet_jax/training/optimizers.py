"""Optimizers built from a config's `train` section."""

from __future__ import annotations

import ml_collections
import optax


def adam_warmup_cosine(
  train: ml_collections.ConfigDict, lr_scale: float = 1.0
) -> optax.GradientTransformation:
  """Adam with linear warmup + cosine decay and global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, train.learning_rate * lr_scale, train.warmup_steps, max(train.steps, train.warmup_steps + 1)
  )
  return optax.chain(
    optax.clip_by_global_norm(train.grad_clip), optax.adam(schedule, b1=train.b1, b2=train.b2)
  )
