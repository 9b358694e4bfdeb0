"""Trainer for the SoundStream audio tokenizer (config.trainer == "audio_tokenizer").

Generator loss = mel * multi-scale mel + stft * multi-resolution STFT + commitment [+ adversarial (hinge)
+ feature matching], with per-example quantizer dropout. After each gradient step the RVQ codebooks take
an EMA step towards their assigned vectors and dead codes are restarted; they are initialized by k-means
on the first batch. The waveform + STFT discriminators train when config.loss.adversarial_weight > 0.
Randomness (dropout masks, restarts) is a function of (seed, step), so a resumed run repeats exactly.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, struct

from videopoet_jax.data import audio_clips
from videopoet_jax.eval.audio_metrics import si_snr
from videopoet_jax.tokenizers import audio_discriminator as disc_lib
from videopoet_jax.tokenizers import pretrained, rvq, spectral
from videopoet_jax.tokenizers.audio import AudioTokenizer, param_count
from videopoet_jax.training import data_parallel, loop, optimizers


@struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  ema_params: nnx.State
  # The RVQ codebooks (an nnx.State of rvq.CodebookVariable), updated by EMA, not by gradients.
  codebooks: nnx.State
  disc_params: nnx.State | None
  disc_opt_state: optax.OptState | None


def random_streams(config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
  """`(kmeans_key, step_root)`: step s draws from fold_in(step_root, s)."""
  kmeans_key, step_root = jax.random.split(jax.random.key(config.seed))
  return kmeans_key, step_root


def build_tokenizer(config: ml_collections.ConfigDict, seed: int = 0) -> AudioTokenizer:
  return AudioTokenizer(config.model, rngs=nnx.Rngs(seed))


def uses_gan(config: ml_collections.ConfigDict) -> bool:
  return config.loss.adversarial_weight > 0


def init_state(config: ml_collections.ConfigDict):
  """`(graphdef, disc_graphdef, state)` with random weights and codebooks (call under jit to place it)."""
  graphdef, params, codebooks = nnx.split(
    build_tokenizer(config, config.seed), nnx.Param, rvq.CodebookVariable
  )
  disc_graphdef = disc_params = disc_opt_state = None
  if uses_gan(config):
    disc = disc_lib.AudioDiscriminators(config.disc, rngs=nnx.Rngs(config.seed + 1))
    disc_graphdef, disc_params = nnx.split(disc, nnx.Param)
    disc_opt_state = optimizers.adam_warmup_cosine(config.train, config.train.disc_lr_scale).init(disc_params)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizers.tokenizer_optimizer(config.train).init(params),
    ema_params=jax.tree.map(jnp.copy, params),
    codebooks=codebooks,
    disc_params=disc_params,
    disc_opt_state=disc_opt_state,
  )
  return graphdef, disc_graphdef, state


def kmeans_init(state: TrainState, batch: jax.Array, graphdef, config) -> TrainState:
  """Replaces the codebooks by level-wise k-means on the latents of `batch` `[B, N]`."""
  model = nnx.merge(graphdef, state.params, state.codebooks)
  model.codebooks.value = rvq.kmeans_init(
    model.codebooks.value,
    model.encode_latents(batch),
    config.rvq.kmeans_iterations,
    random_streams(config)[0],
  )
  return state.replace(codebooks=nnx.state(model, rvq.CodebookVariable))


def generator_loss(params, codebooks, graphdef, disc_graphdef, disc_params, batch, mask, config, step):
  """Returns (total loss, (metrics, reconstruction, ids, level inputs))."""
  loss_cfg, model_cfg = config.loss, config.model
  params = optimizers.with_frozen_encoder(params, config.train)
  recon, _, ids, residuals, commitment = nnx.merge(graphdef, params, codebooks)(batch, mask)
  target = batch[:, : recon.shape[1]]
  mel = spectral.multiscale_mel_loss(
    target, recon, model_cfg.sample_rate, loss_cfg.mel_windows, loss_cfg.mel_bins
  )
  stft = spectral.multi_resolution_stft_loss(target, recon, loss_cfg.stft_resolutions)
  waveform = jnp.mean(jnp.abs(recon - target))
  total = (
    loss_cfg.mel_weight * mel
    + loss_cfg.stft_weight * stft
    + loss_cfg.waveform_weight * waveform
    + loss_cfg.commitment_weight * commitment
  )
  metrics = {
    "mel": mel,
    "waveform_l1": waveform,
    "stft": stft,
    "commitment": commitment,
    "si_snr": jnp.mean(si_snr(target, recon)),
    "levels_used": jnp.mean(jnp.sum(mask, axis=1)),
  }
  if disc_graphdef is not None:
    disc = nnx.merge(disc_graphdef, disc_params)
    fake_outputs, real_outputs = disc(recon), disc(target)
    adv = disc_lib.generator_loss(fake_outputs)
    feat = disc_lib.feature_matching_loss(real_outputs, fake_outputs)
    on = (step >= loss_cfg.disc_start_step).astype(jnp.float32)
    total = total + on * (loss_cfg.adversarial_weight * adv + loss_cfg.feature_weight * feat)
    metrics.update(g_adversarial=adv, feature_matching=feat)
  metrics["loss"] = total
  return total, (metrics, recon, ids, residuals)


def discriminator_update(state: TrainState, disc_graphdef, target, recon, config):
  """One hinge step of all discriminators; returns (disc_params, disc_opt_state, metrics)."""
  disc_fn = lambda p, x: nnx.merge(disc_graphdef, p)(x)
  fake = jax.lax.stop_gradient(recon)

  def loss_fn(p):
    return disc_lib.discriminator_loss(disc_fn(p, target), disc_fn(p, fake))

  d_loss, grads = jax.value_and_grad(loss_fn)(state.disc_params)
  optimizer = optimizers.adam_warmup_cosine(config.train, config.train.disc_lr_scale)
  updates, opt_state = optimizer.update(grads, state.disc_opt_state, state.disc_params)
  on = state.step >= config.loss.disc_start_step
  params = jax.tree.map(
    lambda new, old: jnp.where(on, new, old),
    optax.apply_updates(state.disc_params, updates),
    state.disc_params,
  )
  return params, opt_state, {"d_loss": d_loss}


def updated_codebooks(state, params, residuals, ids, mask, restart_key, graphdef, config):
  """`(codebooks, restarted codes per level)` after one EMA step and, every `rvq.restart_every` steps, the
  dead-code restarts."""
  model = nnx.merge(graphdef, params, state.codebooks)
  codebook_state = rvq.ema_update(model.codebooks.value, residuals, ids, mask, config.rvq.ema_decay)
  restarted_state, restarted = rvq.restart_dead_codes(
    codebook_state, residuals, config.rvq.dead_code_threshold, restart_key
  )
  check = (state.step + 1) % config.rvq.restart_every == 0
  model.codebooks.value = jax.tree.map(lambda r, k: jnp.where(check, r, k), restarted_state, codebook_state)
  return nnx.state(model, rvq.CodebookVariable), jnp.where(check, restarted, 0)


def train_step(state: TrainState, batch: jax.Array, *, graphdef, disc_graphdef, config):
  """One generator (+ discriminator) update and one codebook EMA step. `batch`: `[B, N]` in [-1, 1]."""
  levels = config.model.levels
  dropout_key, restart_key = jax.random.split(jax.random.fold_in(random_streams(config)[1], state.step))
  mask = rvq.dropout_mask(dropout_key, batch.shape[0], levels, config.rvq.dropout_probability)
  grads, (metrics, recon, ids, residuals) = jax.grad(generator_loss, has_aux=True)(
    state.params, state.codebooks, graphdef, disc_graphdef, state.disc_params, batch, mask, config, state.step
  )
  updates, opt_state = optimizers.tokenizer_optimizer(config.train).update(
    grads, state.opt_state, state.params
  )
  params = optax.apply_updates(state.params, updates)
  ema = optimizers.ema_step(state.ema_params, params, config.train.ema_decay)
  if optimizers.decoder_only(config.train):  # the codebooks, and so the ids, stay as they were
    codebooks, restarted = state.codebooks, jnp.zeros((levels,), jnp.int32)
  else:
    codebooks, restarted = updated_codebooks(
      state, params, residuals, ids, mask, restart_key, graphdef, config
    )
  disc_params, disc_opt_state = state.disc_params, state.disc_opt_state
  if disc_graphdef is not None:
    target = batch[:, : recon.shape[1]]
    disc_params, disc_opt_state, d_metrics = discriminator_update(state, disc_graphdef, target, recon, config)
    metrics.update(d_metrics)
  metrics["restarted_codes"] = jnp.sum(restarted)
  metrics[loop.CODE_COUNTS] = rvq.assignment_counts(ids, mask, config.model.codebook_size)
  new_state = state.replace(
    step=state.step + 1,
    params=params,
    opt_state=opt_state,
    ema_params=ema,
    codebooks=codebooks,
    disc_params=disc_params,
    disc_opt_state=disc_opt_state,
  )
  return new_state, metrics


class Trainer(data_parallel.DataParallelTrainer):
  """Builds the sharded state and the jitted step; shared by `train` and the tests."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None):
    super().__init__(config, init_state, train_step, mesh)

  def init(self, batch: jax.Array) -> TrainState:
    """A fresh state whose codebooks are k-means centroids of `batch`'s latents (`[B, N]`); with
    `train.init_from`, the weights (and their EMA) and codebooks start from that export's (fine-tuning)."""
    source = self.config.train.init_from
    optimizers.check_trainable(self.config.train)
    if not source:
      init = lambda b: kmeans_init(init_state(self.config)[2], b, self.graphdef, self.config)
      return self.init_sharded(init, batch)
    state = self.init_sharded(lambda: init_state(self.config)[2])
    load = lambda like, variables: pretrained.warm_start_params(
      source, build_tokenizer, "audio_tokenizer", self.config, like, variables
    )
    params = load(state.params, nnx.Param)
    logging.info("weights and codebooks initialized from %s", source)
    return state.replace(
      params=params,
      ema_params=jax.tree.map(jnp.copy, params),
      codebooks=load(state.codebooks, rvq.CodebookVariable),
    )

  def usage_stats(self, code_counts: np.ndarray) -> dict[str, float]:
    return rvq.usage_stats(code_counts)

  def export_params(self, state: TrainState) -> nnx.State:
    """The EMA weights with the codebooks."""
    model = nnx.merge(self.graphdef, state.ema_params, state.codebooks)
    return nnx.state(model, pretrained.EXPORTED_VARIABLES)


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) in `workdir`; returns the final state."""
  logging.info("audio tokenizer: %d parameters", param_count(build_tokenizer(config)))
  data, model, train_cfg = config.data, config.model, config.train
  return loop.fit(
    Trainer(config),
    workdir,
    lambda start: iter(
      audio_clips.training_batches(
        data, model.sample_rate, train_cfg.batch_size, config.seed, start, train_cfg.steps
      )
    ),
  )
