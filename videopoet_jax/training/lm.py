"""Trainer of the multimodal prefix LM (config.trainer == "lm").

Parameters and optimizer moments are sharded by their logical axis names under the config's rules
(`sharding.state_shardings`); batches are split over (data, fsdp); the step is one jax.jit with in/out
shardings and the state donated. Loss = next-token cross-entropy on the output tokens only (the prefix is
conditioning), computed in vocabulary chunks. A step with a non-finite loss or gradient changes nothing
and is counted; the loop stops after config.train.max_nonfinite_steps of them in a row.

Logged per window: loss/accuracy overall, per task and per output modality, padding ratio, gradient norm;
every eval_every steps the same on the validation split.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, struct

from videopoet_jax import sharding, tasks
from videopoet_jax.data import lm_batches, token_shards
from videopoet_jax.model.content_init import content_embeddings
from videopoet_jax.model.transformer import VIDEO_POSITION_KEYS, Transformer
from videopoet_jax.tasks import registry
from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training import loop, optimizers

# Output modalities that per-modality metrics are reported for (targets elsewhere count as "structure").
OUTPUT_MODALITIES = ("structure", "video", "audio")
# Metric sums reduced over a window into ratios: name -> (numerator, denominator).
SUM_KEYS = ("nll", "correct", "tokens")


@struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  ema_params: nnx.State | None
  nonfinite_in_a_row: jax.Array
  nonfinite_total: jax.Array


def build_model(config: ml_collections.ConfigDict, seed: int = 0) -> Transformer:
  return Transformer(config.model, rngs=nnx.Rngs(seed))


def param_count(params: nnx.State) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def init_state(config: ml_collections.ConfigDict) -> tuple[nnx.GraphDef, TrainState]:
  """Builds the model and optimizer state (call under jit to place it)."""
  graphdef, params = nnx.split(build_model(config, config.seed), nnx.Param)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizers.adamw_warmup_cosine(config.train).init(params),
    ema_params=jax.tree.map(jnp.copy, params) if config.train.ema_decay > 0 else None,
    nonfinite_in_a_row=jnp.zeros((), jnp.int32),
    nonfinite_total=jnp.zeros((), jnp.int32),
  )
  return graphdef, state


def target_modalities(targets: jax.Array, vocab) -> jax.Array:
  """Index in OUTPUT_MODALITIES of each global id (`[...]` int32)."""
  video = (targets >= vocab.video_base) & (targets < vocab.audio_base)
  audio = (targets >= vocab.audio_base) & (targets < vocab.text_base)
  return jnp.where(video, 1, jnp.where(audio, 2, 0))


def loss_weights(batch: dict) -> jax.Array:
  """`[B, S - 1]` float32 weight of each next-token loss: the batch's `loss_weight` where it has one (the
  clicks weighted up: `train.click_loss_weight`), else its loss mask. The metrics count with the mask."""
  return batch.get("loss_weight", batch["loss_mask"])[:, 1:].astype(jnp.float32)


def loss_and_sums(
  params, graphdef, batch: dict, vocab, loss_tokens=None, loss_spans=()
) -> tuple[jax.Array, dict]:
  """Mean output-token NLL and the metric sums of `batch` (see `sequence.Batch` for its arrays); with
  `loss_tokens`, the NLL summed over `batch` divided by that count instead (a microbatch's share of the
  whole batch's mean). `loss_spans` (`TaskBatches.loss_spans`): logits only at the loss positions of a
  batch whose length it names."""
  model = nnx.merge(graphdef, params)
  nll, correct = model.token_losses(
    batch["tokens"],
    batch["prefix_length"],
    batch.get("text_embedding"),
    batch.get("text_slots"),
    loss_positions=dict(loss_spans).get(batch["tokens"].shape[1]),
  )
  weights = loss_weights(batch)
  tokens = weights.sum() if loss_tokens is None else loss_tokens
  loss = (nll * weights).sum() / jnp.maximum(tokens, 1.0)
  mask = batch["loss_mask"][:, 1:].astype(jnp.float32)  # the metrics count every output token alike
  by_task = jax.nn.one_hot(batch["task_ids"], len(registry.TASK_NAMES))  # [B, T]
  by_modality = jax.nn.one_hot(target_modalities(batch["tokens"][:, 1:], vocab), len(OUTPUT_MODALITIES))
  sums = {}
  for name, values in (("nll", nll), ("correct", correct), ("tokens", jnp.ones_like(nll))):
    weighted = values * mask
    sums[f"task_{name}"] = jnp.einsum("bs,bt->t", weighted, by_task)
    sums[f"modality_{name}"] = jnp.einsum("bs,bsm->m", weighted, by_modality)
  sums["padding"] = jnp.mean((batch["tokens"] == vocab.special("<pad>")).astype(jnp.float32))
  return loss, sums


def accumulated_loss_and_grads(params, graphdef, batch: dict, vocab, microbatches: int, loss_spans=()):
  """`((loss, sums), grads)` of the whole batch, computed `microbatches` rows-slices at a time (a scan:
  activations of one microbatch at a time) and summed; equal to the one-pass gradient up to float
  rounding. The rows of `batch` must divide by `microbatches`."""
  if microbatches == 1:
    return jax.value_and_grad(loss_and_sums, has_aux=True)(params, graphdef, batch, vocab, None, loss_spans)
  tokens = loss_weights(batch).sum()
  micro_loss = lambda p, micro: loss_and_sums(p, graphdef, micro, vocab, tokens, loss_spans)
  grad_fn = lambda micro: jax.value_and_grad(micro_loss, has_aux=True)(params, micro)
  # Microbatch j takes rows j, j + m, j + 2m, ...: each device's rows spread over every microbatch.
  split = jax.tree.map(
    lambda x: x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:]).swapaxes(0, 1), batch
  )

  def add(total, micro):
    return jax.tree.map(jnp.add, total, grad_fn(micro)), None

  shapes = jax.eval_shape(grad_fn, jax.tree.map(lambda x: x[0], split))
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
  ((loss, sums), grads), _ = jax.lax.scan(add, zeros, split)
  sums["padding"] = sums["padding"] / microbatches  # a mean, not a sum
  return (loss, sums), grads


def train_step(state: TrainState, batch: dict, *, graphdef, config, vocab, loss_spans=()):
  """One AdamW update (skipped when the loss or gradient is not finite), over `train.microbatches`
  slices of the batch."""
  optimizer = optimizers.adamw_warmup_cosine(config.train)
  (loss, sums), grads = accumulated_loss_and_grads(
    state.params, graphdef, batch, vocab, config.train.get("microbatches", 1), loss_spans
  )
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  ema = state.ema_params
  if ema is not None:
    decay = config.train.ema_decay
    ema = keep(jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params), ema)
  in_a_row = jnp.where(finite, 0, state.nonfinite_in_a_row + 1)
  new_state = state.replace(
    step=state.step + 1,
    params=keep(params, state.params),
    opt_state=keep(opt_state, state.opt_state),
    ema_params=ema,
    nonfinite_in_a_row=in_a_row,
    nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
  )
  metrics = {
    # A skipped step's sums are NaN: it adds nothing to the logged loss.
    **jax.tree.map(lambda v: jnp.where(finite, v, 0), sums),
    "grad_norm": grad_norm,
    loop.NONFINITE: (~finite).astype(jnp.int32),
    "nonfinite_total": new_state.nonfinite_total,
  }
  return new_state, metrics


def summarize_sums(window: list[dict], prefix: str = "") -> dict[str, float]:
  """Ratios of summed metrics: overall, per task and per output modality loss/accuracy."""
  total = {k: sum(np.asarray(jax.device_get(m[k])) for m in window) for k in window[0] if k != "padding"}
  out = {}
  tokens = total["task_tokens"].sum()
  out[f"{prefix}loss"] = float(total["task_nll"].sum() / max(tokens, 1))
  out[f"{prefix}accuracy"] = float(total["task_correct"].sum() / max(tokens, 1))
  for kind, names in (("task", registry.TASK_NAMES), ("modality", OUTPUT_MODALITIES)):
    for i, name in enumerate(names):
      count = total[f"{kind}_tokens"][i]
      if count:
        out[f"{prefix}loss/{name}"] = float(total[f"{kind}_nll"][i] / count)
        out[f"{prefix}accuracy/{name}"] = float(total[f"{kind}_correct"][i] / count)
  return out


class Trainer:
  """The sharded state, the jitted step and the data of one LM run; shared by `train` and the tests."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, data=True):
    self.config = config
    self.vocab = tasks.vocabulary(config)
    if config.model.vocab_size != self.vocab.size:
      raise ValueError(
        f"config.model.vocab_size {config.model.vocab_size} != vocabulary size {self.vocab.size}"
      )
    self.mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
    self.rules = sharding.rules_from_config(config.sharding.rules)
    self.graphdef, abstract_state = jax.eval_shape(lambda: init_state(config))
    self.state_sharding = sharding.state_shardings(abstract_state, self.mesh, self.rules)
    self.abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, self.state_sharding
    )
    self.data_parallel = sharding.data_parallel_size(self.mesh)
    if config.train.eval_every and config.train.eval_examples % self.data_parallel:
      raise ValueError(
        f"train.eval_examples {config.train.eval_examples} is not divisible by the {self.data_parallel} "
        "data-parallel devices"
      )
    self.batch_sharding = jax.sharding.NamedSharding(
      self.mesh, sharding.logical_spec(("activation_batch",), self.rules)
    )
    replicated = sharding.replicated(self.mesh)
    rows = functools.partial(sharding.process_rows, self.batch_sharding)
    self.batches = lm_batches.TaskBatches(config, self.data_parallel, rows) if data else None
    # Logits only where the loss is, per length group (the same arithmetic as over every position).
    spans = self.batches.loss_spans() if data else ()
    step = functools.partial(
      train_step, graphdef=self.graphdef, config=config, vocab=self.vocab, loss_spans=spans
    )
    self._step = jax.jit(
      step,
      in_shardings=(self.state_sharding, self.batch_sharding),
      out_shardings=(self.state_sharding, replicated),
      donate_argnums=0,
    )
    sums = lambda params, batch: loss_and_sums(params, self.graphdef, batch, self.vocab, None, spans)[1]
    self._eval = jax.jit(
      sums, in_shardings=(self.state_sharding.params, self.batch_sharding), out_shardings=replicated
    )
    microbatches = config.train.get("microbatches", 1)
    for group in self.batches.mixture.groups if data else ():
      if group.batch_size % (microbatches * self.data_parallel):
        raise ValueError(
          f"train.microbatches {microbatches} x {self.data_parallel} data-parallel devices does not divide "
          f"the {group.batch_size} rows of length group {group.tasks}"
        )
    self.data_iterator = self.batches.iterator if data else None
    self._eval_batches = None

  def in_context(self, fn, *args):
    """Runs `fn(*args)` with the mesh and logical axis rules in context (activation constraints)."""
    with jax.set_mesh(self.mesh), nnx.logical_axis_rules(self.rules):
      return fn(*args)

  def step_fn(self, state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    return self.in_context(self._step, state, batch)

  def init(self, batch=None) -> TrainState:
    """A fresh state; with `train.init_from` (an LM export or workdir of the same architecture), its
    parameters start from that model's (warm start: the optimizer and schedule start afresh); with
    `train.video_embedding_init="content"`, the video ids' embedding rows then start from what they draw."""
    del batch  # nothing is initialized from data
    state = jax.jit(lambda: init_state(self.config)[1], out_shardings=self.state_sharding)()
    source = self.config.train.init_from
    embedding_init = self.config.train.get("video_embedding_init", "")
    if embedding_init not in ("", "content"):
      raise ValueError(f"train.video_embedding_init={embedding_init!r}: '' or 'content'")
    if not source and not embedding_init:
      return state
    params = state.params
    if source:
      params = pretrained.warm_start_params(
        source,
        build_model,
        "lm",
        self.config,
        params,
        new_keys=VIDEO_POSITION_KEYS,
        new_modules=("video_positions",),
      )
      logging.info("parameters initialized from %s", source)
    if embedding_init:
      params = self.with_content_video_embeddings(params)
    ema = None if state.ema_params is None else jax.tree.map(jnp.copy, params)
    return state.replace(params=params, ema_params=ema)

  def with_content_video_embeddings(self, params: nnx.State) -> nnx.State:
    """`params` with the video ids' embedding rows replaced by `content_embeddings` of the shards' video
    tokenizer (`train.video_embedding_init="content"`; a tokenizer with `id_pixels`, e.g. a patch table)."""
    source = self.tokenizer_sources().get("video_tokenizer")
    tokenizer = pretrained.load_video_tokenizer(source)[0]
    if not hasattr(tokenizer, "id_pixels"):
      raise ValueError(
        f"train.video_embedding_init='content' needs a video tokenizer that draws each id alone (a patch"
        f" table); {source or 'the bundled one'} is a {type(tokenizer).__name__}"
      )
    table = params["embed"]["embedding"].value
    start, stop = self.vocab.ranges()["video"]
    rows = content_embeddings(tokenizer.id_pixels(), table.shape[1], self.config.model.width**-0.5)
    if rows.shape[0] != stop - start:
      raise ValueError(f"the video tokenizer has {rows.shape[0]} ids, the vocabulary {stop - start}")
    params["embed"]["embedding"].value = jax.device_put(
      table.at[start:stop].set(rows.astype(table.dtype)), table.sharding
    )
    logging.info("video id embeddings initialized from %s's patch pixels", source or "the bundled tokenizer")
    return params

  def put_batch(self, batch) -> dict:
    """A host `sequence.Batch` (this process's rows) -> global arrays split over the batch axes."""
    local = batch.as_dict() if hasattr(batch, "as_dict") else batch
    return {
      k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v)) for k, v in local.items()
    }

  def summarize(self, window: list[dict]) -> dict[str, float]:
    out = summarize_sums(window)
    means = loop.mean_metrics([{k: m[k] for k in ("padding", "grad_norm", loop.NONFINITE)} for m in window])
    out.update(means, nonfinite_total=float(jax.device_get(window[-1]["nonfinite_total"])))
    return out

  def export_params(self, state: TrainState) -> nnx.State:
    return state.ema_params if state.ema_params is not None else state.params

  def export_assets(self, path: str) -> None:
    """Copies the token shards' manifest (tokenizers, token masks) and text model beside the export, and
    the tokenizers that made the shards' ids into its `video_tokenizer/` and `audio_tokenizer/`, so the
    export alone is the whole model (videopoet_jax/decoding/generator.py)."""
    for name in (token_shards.MANIFEST, token_shards.TEXT_MODEL):
      source = os.path.join(self.config.data.tokens_dir, name)
      if os.path.exists(source):
        shutil.copyfile(source, os.path.join(path, name))
    for kind, source in self.tokenizer_sources().items():
      pretrained.copy_tokenizer(source, os.path.join(path, kind), kind)

  def tokenizer_sources(self) -> dict[str, str | None]:
    """`{kind: export folder (None: the bundled one)}` of the tokenizers the shards' manifest names; raises
    a FileNotFoundError naming the manifest when one is gone (checked before the first step, not at the
    first export)."""
    tokens_dir = self.config.data.tokens_dir
    manifest = token_shards.read_manifest(tokens_dir)
    sources = {}
    for kind in pretrained.TOKENIZER_SUBDIRS:
      source = (manifest.get(kind) or {}).get("path")
      if source is None:
        continue
      sources[kind] = None if source == token_shards.BUNDLED else source
      try:
        if sources[kind] is None:
          pretrained.bundled_path(kind)
        else:
          pretrained.export_folder(sources[kind])
      except FileNotFoundError as e:
        raise FileNotFoundError(
          f"{tokens_dir}/{token_shards.MANIFEST} names the {kind} that made its ids, {source}, which holds no"
          " export now; the LM's export copies it: restore it there or correct the manifest's path"
        ) from e
    return sources

  def evaluate(self, state: TrainState) -> dict[str, float]:
    """Validation loss and accuracy, overall, per task and per modality (exported weights)."""
    if self._eval_batches is None:
      self._eval_batches = [
        self.put_batch(b)
        for b in self.batches.eval_batches(self.config.data.eval_split, self.config.train.eval_examples)
      ]
    params = self.export_params(state)
    return summarize_sums([self.in_context(self._eval, params, b) for b in self._eval_batches], "eval/")


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) in `workdir`; returns the final state."""
  trainer = Trainer(config)
  trainer.tokenizer_sources()
  logging.info(
    "LM: %d parameters, vocabulary %d, groups %s",
    param_count(trainer.abstract_state.params),
    trainer.vocab.size,
    [(g.tasks, g.length, g.batch_size) for g in trainer.batches.mixture.groups],
  )

  def batches(start: int):
    for step in range(start + 1, config.train.steps + 1):
      yield trainer.batches.batch(step)

  return loop.fit(trainer, workdir, batches)
