"""Trainer for the super-resolution stage (config.trainer == "sr"; configs/sr.py).

Data: shapes_world clips rendered at the high resolution (`data.scale` x the world's 64 pixels) with their
captions, drawn fresh for every step from the training seeds (the world is procedural: no clip repeats).
On the device each clip is tokenized twice by frozen tokenizers: itself by the high-resolution one (the
targets, `model.grid` ids) and its bicubic downsampling by the base model's (the low-resolution condition,
half the spatial grid), so the condition is what the base LM's ids look like. The step is the masked-token
objective (training/masked_tokens.py): a cosine-scheduled share of the targets hidden, the loss on those
only, the condition's ids partly resampled (noise augmentation), text and condition dropped independently.

The export (`<workdir>/export`) is the whole stage: the SR transformer's EMA weights and config, the text
model its text ids came from (`text.model`) and the high-resolution tokenizer (`high_res_tokenizer/`) that
turns its ids into pixels; the low-resolution ids are the base model's own (`data.low_res_tokenizer`).
"""

from __future__ import annotations

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, struct

from videopoet_jax.data import media, shapes_world, shapes_world_dataset, token_shards, tokenizer_clips
from videopoet_jax.model import sr_transformer
from videopoet_jax.model.content_init import content_embeddings
from videopoet_jax.tokenizers import pretrained, text
from videopoet_jax.training import data_parallel, loop, masked_tokens, optimizers


@struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  ema_params: nnx.State


def init_state(config: ml_collections.ConfigDict) -> tuple[nnx.GraphDef, None, TrainState]:
  """Builds the model and optimizer state (call under jit to place it)."""
  graphdef, params = nnx.split(sr_transformer.build(config, config.seed), nnx.Param)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizers.adam_warmup_cosine(config.train).init(params),
    ema_params=jax.tree.map(jnp.copy, params),
  )
  return graphdef, None, state


def masked_loss(params, graphdef, batch: dict, key: jax.Array, config: ml_collections.ConfigDict):
  """The masked-token loss of one batch: `ids` `[B, T, H, W]` (targets), `low_res_ids` `[B, T, H/2, W/2]`,
  `text` `[B, L]` (0 = padding). Returns `(loss, metrics)`."""
  model_cfg, objective = config.model, config.objective
  ids = batch["ids"]
  b = ids.shape[0]
  mask_key, level_key, noise_key, drop_key = jax.random.split(key, 4)
  hidden = masked_tokens.random_mask(mask_key, b, ids[0].size).reshape(ids.shape)
  level = jax.random.uniform(level_key, (b,)) * objective.max_resample
  low_res = masked_tokens.resample_ids(noise_key, batch["low_res_ids"], level, 2**model_cfg.code_bits)
  keep_text, keep_low_res = masked_tokens.condition_dropout(drop_key, b, objective.condition_dropout)
  model = nnx.merge(graphdef, params)
  logits = model(ids, hidden, low_res, batch["text"], keep_text, keep_low_res)
  targets = sr_transformer.split_factors(ids, model_cfg.code_bits, model_cfg.factors)
  flat = lambda x: x.reshape(b, ids[0].size, *x.shape[4:])  # noqa: E731
  loss = masked_tokens.masked_token_loss(flat(logits), flat(targets), flat(hidden))
  correct = jnp.all(jnp.argmax(logits, axis=-1) == targets, axis=-1)
  accuracy = jnp.sum(correct & hidden) / jnp.maximum(jnp.sum(hidden), 1)
  return loss, {"loss": loss, "hidden_accuracy": accuracy, "hidden_share": jnp.mean(hidden)}


def train_step(state: TrainState, batch: dict, *, graphdef, disc_graphdef, config):
  """One update on a device batch (`masked_loss`'s); the masks and augmentations are drawn from the seed
  and the step, so a resumed run draws what the uninterrupted one would have."""
  del disc_graphdef
  key = jax.random.fold_in(jax.random.key(config.seed), state.step)
  grads, metrics = jax.grad(masked_loss, has_aux=True)(state.params, graphdef, batch, key, config)
  optimizer = optimizers.adam_warmup_cosine(config.train)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = optimizers.ema_step(state.ema_params, params, config.train.ema_decay)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
  return new_state, metrics


def downsample(video: jax.Array, factor: int) -> jax.Array:
  """`[B, T, H, W, 3]` in [-1, 1] -> `[B, T, H/factor, W/factor, 3]` by antialiased bicubic resampling
  (the paper's low-resolution input), clipped back to [-1, 1]."""
  b, t, h, w, c = video.shape
  return jnp.clip(jax.image.resize(video, (b, t, h // factor, w // factor, c), "cubic"), -1.0, 1.0)


class ClipSource:
  """`index -> {"video": [T, S, S, 3] uint8, "text": [L] int32}`: shapes_world training clip number
  `index` of this run, rendered at `data.scale` (its seed drawn from `(seed, index)` among the training
  seeds, so the validation and test seeds are never seen)."""

  def __init__(self, data: ml_collections.ConfigDict, text_tokenizer: text.TextTokenizer, seed: int):
    self.data, self.text_tokenizer, self.seed = data, text_tokenizer, seed
    seeds = shapes_world_dataset.SPLIT_SEEDS
    self.first_seed, self.train_seeds = seeds["train"], seeds["validation"] - seeds["train"]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, index])
    clip_seed = self.first_seed + int(rng.integers(self.train_seeds))
    clip = shapes_world.render(clip_seed, scale=self.data.scale, turn_fraction=self.data.turn_fraction)
    ids = self.text_tokenizer.encode_batch([clip["caption"]], self.data.text_length)[0]
    return {"video": clip["video"], "text": ids}


class Trainer(data_parallel.DataParallelTrainer):
  """The sharded state, the jitted step, and the frozen tokenizers that turn host clips into ids."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None):
    sr_transformer.check_model(config.model)
    super().__init__(config, init_state, train_step, mesh)
    data = config.data
    self.text_tokenizer = text.TextTokenizer(data.text_model)
    if self.text_tokenizer.vocab_size > config.model.text_vocab:
      raise ValueError(
        f"{data.text_model} has {self.text_tokenizer.vocab_size} pieces; model.text_vocab is "
        f"{config.model.text_vocab}"
      )
    self.high_res, _ = pretrained.load_video_tokenizer(data.high_res_tokenizer)
    self.low_res, _ = pretrained.load_video_tokenizer(data.low_res_tokenizer)
    for name, tokenizer, size in (
      ("high_res_tokenizer", self.high_res, shapes_world.SIZE * data.scale),
      ("low_res_tokenizer", self.low_res, shapes_world.SIZE * data.scale // 2),
    ):
      if tokenizer.geometry.code_bits != config.model.code_bits:
        raise ValueError(
          f"data.{name} has {tokenizer.geometry.code_bits}-bit ids; model.code_bits is "
          f"{config.model.code_bits}"
        )
      grid = tokenizer.geometry.latent_shape(shapes_world.FRAMES, size, size)
      high = tuple(config.model.grid)
      want = high if name == "high_res_tokenizer" else sr_transformer.low_res_grid(high)
      if tuple(grid) != want:
        raise ValueError(f"data.{name} makes {tuple(grid)} ids of a {size}-pixel clip, not {want}")
    self._encode = jax.jit(self.encode)

  def encode(self, video: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[B, T, S, S, 3]` uint8 clips -> (`[B, *model.grid]` ids, `[B, T', H/2, W/2]` low-resolution ids)."""
    clips = media.to_model_range(video)
    return self.high_res.encode(clips), self.low_res.encode(downsample(clips, 2))

  def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    placed = jax.device_put(batch, self.batch_sharding)
    ids, low_res_ids = self._encode(placed["video"])
    return {"ids": ids, "low_res_ids": low_res_ids, "text": placed["text"]}

  def init(self, batch=None) -> TrainState:
    del batch
    state = self.init_sharded(lambda: init_state(self.config)[2])
    if self.config.train.video_embedding_init == "content":
      params = self.with_content_embeddings(state.params)
      state = state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))
    return state

  def with_content_embeddings(self, params: nnx.State) -> nnx.State:
    """`params` with the id embeddings and the output head started from what each id draws
    (`content_init.content_embeddings` of the tokenizers' `id_pixels`, one projection for both, so a
    low-resolution id and the high-resolution ids that draw alike start alike): `train.video_embedding_init=
    "content"`, for patch-table tokenizers and one factor per id."""
    if self.config.model.factors != 1:
      raise ValueError(
        "train.video_embedding_init='content' needs model.factors=1 (a whole id draws a patch)"
      )
    width = self.config.model.width
    for name, tokenizer in (("high_res_tokenizer", self.high_res), ("low_res_tokenizer", self.low_res)):
      if not hasattr(tokenizer, "id_pixels"):
        raise ValueError(f"train.video_embedding_init='content' needs data.{name} to be a patch table")
    high, low = (content_embeddings(t.id_pixels(), width, width**-0.5) for t in (self.high_res, self.low_res))
    for variable, rows in (
      (params["id_embeddings"][0]["embedding"], high),
      (params["low_res_embeddings"][0]["embedding"], low),
      (params["heads"][0]["kernel"], high.T),
    ):
      if variable.value.shape != rows.shape:
        raise ValueError(f"content rows {rows.shape} do not fit {variable.value.shape}")
      variable.value = jax.device_put(rows.astype(variable.value.dtype), variable.value.sharding)
    logging.info("SR id embeddings and head initialized from the tokenizers' patch pixels")
    return params

  def summarize(self, window: list[dict]) -> dict[str, float]:
    return loop.mean_metrics(window)

  def export_params(self, state: TrainState) -> nnx.State:
    return state.ema_params

  def export_assets(self, path: str) -> None:
    """Copies the text model and the high-resolution tokenizer beside the export: the folder alone turns
    low-resolution ids and a caption into high-resolution pixels (decoding/super_resolution.py)."""
    shutil.copyfile(self.config.data.text_model, os.path.join(path, token_shards.TEXT_MODEL))
    high_res = os.path.join(path, pretrained.HIGH_RES_TOKENIZER)
    pretrained.copy_tokenizer(self.config.data.high_res_tokenizer, high_res, "video_tokenizer")

  def batches(self, start_step: int):
    """Host batches of steps start_step + 1 .. train.steps (clip `i` of the run is batch `i // B`'s)."""
    config = self.config
    source = ClipSource(config.data, self.text_tokenizer, config.seed)
    return iter(
      tokenizer_clips.indexed_batches(
        lambda i: source[int(i)], config.train.batch_size, start_step, config.train.steps, config.data.workers
      )
    )


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) in `workdir`; returns the final state."""
  trainer = Trainer(config)
  logging.info("SR transformer: %d parameters", _param_count(trainer.abstract_state.params))
  return loop.fit(trainer, workdir, trainer.batches)


def _param_count(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
