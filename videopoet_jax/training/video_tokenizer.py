"""Trainer for the MAGVIT-v2 video tokenizer (config.trainer == "video_tokenizer").

Generator loss = l2 * MSE + l1 * L1 + commitment + entropy(step) [+ adversarial]; discriminator with
R1 (lazy, every r1_every steps) and LeCAM when config.loss.adversarial_weight > 0. EMA weights are
kept for export. With `train.trainable="decoder"` only the decoder trains (`optimizers.TRAINABLE`): every
clip keeps its ids. Data parallel: the state is replicated, batches are split over the mesh's batch axes.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, struct

from videopoet_jax.data import tokenizer_clips
from videopoet_jax.tokenizers import discriminator as disc_lib
from videopoet_jax.tokenizers import lfq, patch_table, pretrained
from videopoet_jax.tokenizers.video import DECODER_ARCHITECTURE_KEYS, VideoTokenizer, param_count
from videopoet_jax.training import data_parallel, loop, optimizers
from videopoet_jax.training import patch_table as patch_table_training

# PSNR of a mean squared error measured on [-1, 1] pixels (peak-to-peak 2).
PEAK_SQUARED = 4.0


@struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  ema_params: nnx.State
  disc_params: nnx.State | None
  disc_opt_state: optax.OptState | None
  # EMA of the mean discriminator logits on (real, fake), for LeCAM.
  lecam_ema: jax.Array


def build_tokenizer(config: ml_collections.ConfigDict, seed: int = 0) -> VideoTokenizer:
  return VideoTokenizer(config.model, rngs=nnx.Rngs(seed))


def uses_gan(config: ml_collections.ConfigDict) -> bool:
  return config.loss.adversarial_weight > 0


def entropy_weight(loss: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """entropy_weight * (1 + (boost - 1) * max(0, 1 - step / boost_steps)): boost x at step 0, 1x later."""
  decay = jnp.maximum(0.0, 1.0 - step / max(loss.entropy_boost_steps, 1))
  return loss.entropy_weight * (1.0 + (loss.entropy_boost - 1.0) * decay)


def psnr(mse: jax.Array) -> jax.Array:
  return 10.0 * jnp.log10(PEAK_SQUARED / jnp.maximum(mse, 1e-10))


def init_state(config: ml_collections.ConfigDict) -> tuple[nnx.GraphDef, nnx.GraphDef | None, TrainState]:
  """Builds the model(s) and optimizer state (call under jit to place it)."""
  graphdef, params = nnx.split(build_tokenizer(config, config.seed), nnx.Param)
  disc_graphdef = disc_params = disc_opt_state = None
  if uses_gan(config):
    disc_graphdef, disc_params = nnx.split(
      disc_lib.Discriminator(config.disc, rngs=nnx.Rngs(config.seed + 1)), nnx.Param
    )
    disc_opt_state = optimizers.adam_warmup_cosine(config.train, config.train.disc_lr_scale).init(disc_params)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizers.tokenizer_optimizer(config.train).init(params),
    ema_params=jax.tree.map(jnp.copy, params),
    disc_params=disc_params,
    disc_opt_state=disc_opt_state,
    lecam_ema=jnp.zeros((2,), jnp.float32),
  )
  return graphdef, disc_graphdef, state


def edge_l1(recon: jax.Array, target: jax.Array) -> jax.Array:
  """Mean L1 distance between the horizontal and vertical pixel differences of two `[B, T, H, W, 3]`
  videos: zero on flat regions, so an object's outline weighs more than under a per-pixel loss, where a
  small object's edge is a few pixels of thousands."""
  dx = lambda v: v[:, :, :, 1:] - v[:, :, :, :-1]  # noqa: E731
  dy = lambda v: v[:, :, 1:] - v[:, :, :-1]  # noqa: E731
  return jnp.mean(jnp.abs(dx(recon) - dx(target))) + jnp.mean(jnp.abs(dy(recon) - dy(target)))


def generator_loss(params, graphdef, disc_graphdef, disc_params, batch, config, step):
  """Returns (total loss, (metrics, reconstruction, ids))."""
  loss_cfg = config.loss
  recon, z, codes = nnx.merge(graphdef, optimizers.with_frozen_encoder(params, config.train))(batch)
  mse = jnp.mean((recon - batch) ** 2)
  l1 = jnp.mean(jnp.abs(recon - batch))
  edges = edge_l1(recon, batch)
  commitment = jnp.mean((z - jax.lax.stop_gradient(jnp.sign(codes))) ** 2)
  per_sample, codebook = lfq.entropy_terms(
    z, config.model.entropy_group_bits, loss_cfg.entropy_inv_temperature
  )
  total = (
    loss_cfg.l2_weight * mse
    + loss_cfg.l1_weight * l1
    + loss_cfg.get("edge_weight", 0.0) * edges
    + loss_cfg.commitment_weight * commitment
    + entropy_weight(loss_cfg, step) * (per_sample - codebook)
  )
  metrics = {
    "psnr": psnr(mse),
    "mse": mse,
    "l1": l1,
    "edge_l1": edges,
    "commitment": commitment,
    "entropy_per_sample": per_sample,
    "entropy_codebook": codebook,
  }
  if disc_graphdef is not None:
    fake_logits = nnx.merge(disc_graphdef, disc_params)(recon)
    adv = disc_lib.generator_loss(fake_logits, loss_cfg.gan_loss)
    on = (step >= loss_cfg.disc_start_step).astype(jnp.float32)
    total = total + on * loss_cfg.adversarial_weight * adv
    metrics["g_adversarial"] = adv
  metrics["loss"] = total
  return total, (metrics, recon, lfq.codes_to_ids(codes))


def discriminator_update(state: TrainState, disc_graphdef, batch, recon, config):
  """One discriminator step; returns (disc_params, disc_opt_state, lecam_ema, metrics)."""
  loss_cfg = config.loss
  disc_fn = lambda p, x: nnx.merge(disc_graphdef, p)(x)
  fake = jax.lax.stop_gradient(recon)

  def loss_fn(p):
    real_logits, fake_logits = disc_fn(p, batch), disc_fn(p, fake)
    d_loss = disc_lib.discriminator_loss(real_logits, fake_logits, loss_cfg.gan_loss)
    lecam = disc_lib.lecam_loss(real_logits, fake_logits, state.lecam_ema[0], state.lecam_ema[1])
    r1 = jax.lax.cond(
      state.step % loss_cfg.r1_every == 0,
      lambda: disc_lib.r1_penalty(lambda x: disc_fn(p, x), batch),
      lambda: jnp.zeros(()),
    )
    # Lazy R1: applied every r1_every steps, scaled up to keep its average strength.
    total = d_loss + loss_cfg.lecam_weight * lecam + loss_cfg.r1_weight * loss_cfg.r1_every * r1
    return total, (d_loss, lecam, r1, real_logits.mean(), fake_logits.mean())

  grads, (d_loss, lecam, r1, real_mean, fake_mean) = jax.grad(loss_fn, has_aux=True)(state.disc_params)
  updates, opt_state = optimizers.adam_warmup_cosine(config.train, config.train.disc_lr_scale).update(
    grads, state.disc_opt_state, state.disc_params
  )
  on = state.step >= loss_cfg.disc_start_step
  params = jax.tree.map(
    lambda new, old: jnp.where(on, new, old),
    optax.apply_updates(state.disc_params, updates),
    state.disc_params,
  )
  decay = loss_cfg.lecam_decay
  lecam_ema = decay * state.lecam_ema + (1 - decay) * jnp.stack([real_mean, fake_mean])
  metrics = {"d_loss": d_loss, "d_lecam": lecam, "d_r1": r1, "d_real": real_mean, "d_fake": fake_mean}
  return params, opt_state, lecam_ema, metrics


def train_step(state: TrainState, batch: jax.Array, *, graphdef, disc_graphdef, config):
  """One generator (+ discriminator) update. `batch`: `[B, T, H, W, 3]` in [-1, 1]."""
  grad_fn = jax.grad(generator_loss, has_aux=True)
  grads, (metrics, recon, ids) = grad_fn(
    state.params, graphdef, disc_graphdef, state.disc_params, batch, config, state.step
  )
  updates, opt_state = optimizers.tokenizer_optimizer(config.train).update(
    grads, state.opt_state, state.params
  )
  params = optax.apply_updates(state.params, updates)
  ema = optimizers.ema_step(state.ema_params, params, config.train.ema_decay)
  disc_params, disc_opt_state, lecam_ema = state.disc_params, state.disc_opt_state, state.lecam_ema
  if disc_graphdef is not None:
    disc_params, disc_opt_state, lecam_ema, d_metrics = discriminator_update(
      state, disc_graphdef, batch, recon, config
    )
    metrics.update(d_metrics)
  metrics["entropy_weight"] = entropy_weight(config.loss, state.step)
  metrics["code_counts"] = lfq.code_histogram(ids, 2**config.model.code_bits)
  new_state = state.replace(
    step=state.step + 1,
    params=params,
    opt_state=opt_state,
    ema_params=ema,
    disc_params=disc_params,
    disc_opt_state=disc_opt_state,
    lecam_ema=lecam_ema,
  )
  return new_state, metrics


class Trainer(data_parallel.DataParallelTrainer):
  """Builds the sharded state and the jitted step; shared by `train` and the tests."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None):
    super().__init__(config, init_state, train_step, mesh)

  def init(self, batch: jax.Array | None = None) -> TrainState:
    """A fresh state (the batch is unused: nothing here is initialized from data); with
    `train.init_from`, the weights (and their EMA) start from that export's (fine-tuning; a decoder that
    differs in DECODER_ARCHITECTURE_KEYS starts from the weights both share)."""
    del batch
    optimizers.check_trainable(self.config.train)
    state = self.init_sharded(lambda: init_state(self.config)[2])
    if not self.config.train.init_from:
      return state
    params = pretrained.warm_start_params(
      self.config.train.init_from,
      build_tokenizer,
      "video_tokenizer",
      self.config,
      state.params,
      new_keys=DECODER_ARCHITECTURE_KEYS,
      new_modules=("decoder",),
    )
    logging.info("weights initialized from %s", self.config.train.init_from)
    return state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))

  def usage_stats(self, code_counts: np.ndarray) -> dict[str, float]:
    return lfq.usage_stats(code_counts)

  def export_params(self, state: TrainState) -> nnx.State:
    return state.ema_params


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) in `workdir`; returns the final state. A patch table (`model.kind="patch_table"`)
  is built from clips instead (`training/patch_table.py`)."""
  if config.model.kind == patch_table.KIND:
    return patch_table_training.build(config, workdir)
  logging.info("video tokenizer: %d parameters", param_count(build_tokenizer(config)))
  return loop.fit(
    Trainer(config),
    workdir,
    lambda start: iter(
      tokenizer_clips.training_batches(
        config.data, config.train.batch_size, config.seed, start, config.train.steps
      )
    ),
  )
