"""LM training batches: token-shard examples through grain, turned into task sequences by the mixture.

Each step's plan (length group, tasks, guidance drops) is a pure function of (seed, step); the examples are
the next ones of the global example order (`token_pipeline.GlobalOrder`: the whole train split, reshuffled
every epoch), whose position is saved with every checkpoint. Each process reads and builds only its own rows
of the global batch (the rows its devices hold), so a run trains on the same batches with any number of
processes, and a checkpoint restores into any process count.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from videopoet_jax import tasks
from videopoet_jax.data import shapes_world, token_pipeline, token_shards
from videopoet_jax.tasks import mixture as mixture_lib
from videopoet_jax.tasks import registry, sequence


def check_manifest(config: ml_collections.ConfigDict, manifest: dict | None, tokens_dir: str) -> None:
  """Raises a readable ValueError when the token shards do not fit the config's vocab/layout/tasks."""
  if manifest is None:
    raise FileNotFoundError(f"{tokens_dir} has no manifest.json: write it with tokenizers/encode.py")
  problems = []
  video = manifest["video_tokenizer"]
  if video["code_bits"] != config.vocab.video_bits:
    problems.append(
      f"video ids have {video['code_bits']} bits, config.vocab.video_bits {config.vocab.video_bits}"
    )
  if tuple(video["latent_shape"]) != tuple(config.layout.latent_shape):
    problems.append(
      f"video ids are {video['latent_shape']}, config.layout.latent_shape {config.layout.latent_shape}"
    )
  audio = manifest.get("audio_tokenizer")
  if audio is not None:
    got = (audio["config"]["levels"], audio["config"]["codebook_size"])
    want = (config.vocab.audio_levels, config.vocab.audio_codebook_size)
    if got != want:
      problems.append(f"audio ids are (levels, codebook) {got}, config.vocab says {want}")
  text_size = (manifest.get("text") or {}).get("vocab_size", 0)
  if text_size > config.vocab.text_size:
    problems.append(f"the text model has {text_size} pieces, config.vocab.text_size {config.vocab.text_size}")
  # A precomputed caption embedding stands for every text stream (tasks/sequence.py).
  embedded = {"text", "next_text"} if "text_embedding" in manifest["streams"] else set()
  streams = set(manifest["streams"]) | embedded
  for name, weight in config.mixture.weights.items():
    missing = set(registry.get(name).streams) - streams
    if weight > 0 and missing:
      problems.append(f"task {name} needs streams {sorted(missing)}: set config.mixture.weights.{name}=0")
  if problems:
    raise ValueError(f"the token shards in {tokens_dir} do not fit the config: " + "; ".join(problems))


def layout_for(config: ml_collections.ConfigDict, manifest: dict) -> sequence.Layout:
  """The config's layout with the token masks of the masked conditioning streams from the manifest."""
  return sequence.Layout.from_config(config.layout, manifest.get("token_masks", {}))


def even_process_rows(rows: int) -> slice:
  """This process's block of `rows` split evenly over the processes in order (a pure data-parallel mesh)."""
  share = rows // jax.process_count()
  return slice(jax.process_index() * share, (jax.process_index() + 1) * share)


def click_weights(task, example: dict, layout: sequence.Layout, weight: float, frames: int) -> np.ndarray:
  """`[part_length(task.output)]` loss weights of `task`'s output ids on `example`: `weight` at every audio
  level's frames of each bounce click (`shapes_world.click_windows` of the example's `bounce_frames`, clips
  of `frames` video frames), 1 elsewhere (every id of a video output)."""
  weights = np.ones(layout.part_length(task.output), np.float32)
  bounces = example.get("attributes", {}).get("bounce_frames", [])
  if task.output.modality == "audio" and bounces:
    per_level = weights.reshape(layout.audio_levels, layout.audio_frames)  # level-major, as the ids
    for window in shapes_world.click_windows(bounces, layout.audio_frames, frames):
      per_level[:, window] = weight
  return weights


class TaskBatches:
  """`batch(step)` -> this process's rows of step's `sequence.Batch`; `iterator` is the GlobalOrder read.

  `process_rows(rows)` is the block of a global batch of `rows` this process builds (default: an even
  split over the processes; the trainer passes `sharding.process_rows` of its batch sharding).
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    data_parallel: int,
    process_rows: Callable[[int], slice] = even_process_rows,
  ):
    self.tokens_dir = tokens_dir = config.data.tokens_dir
    manifest = token_shards.read_manifest(tokens_dir)
    check_manifest(config, manifest, tokens_dir)
    self.vocab = tasks.vocabulary(config)
    self.layout = layout_for(config, manifest)
    self.mixture = mixture_lib.Mixture(
      config.mixture, self.layout, config.train.batch_size, data_parallel, config.train.steps, config.seed
    )
    self.process_rows = process_rows
    # The bounce clicks' audio ids weighted up in the loss (`train.click_loss_weight`; 1: every id alike).
    self.click_weight = config.train.click_loss_weight
    self.clip_frames = manifest["clip"]["frames"] if self.click_weight != 1.0 else None
    self.iterator = token_pipeline.token_order(
      tokens_dir, config.data.train_split, config.seed, config.data.read_threads
    )

  def loss_spans(self) -> tuple[tuple[int, int], ...]:
    """`(length, positions)` of each length group: the most loss positions a row of it has, what the
    trainer passes to `Transformer.token_losses` for batches of that length."""
    return tuple(
      (g.length, max(sequence.output_length(registry.TASKS[t], self.layout) for t in g.tasks))
      for g in self.mixture.groups
    )

  def batch(self, step: int) -> sequence.Batch:
    """This process's rows of step's batch; call for steps in order (each moves the data position on)."""
    draw = self.mixture.draw(step)
    mine = self.process_rows(draw.group.batch_size)
    examples = self.iterator.read(mine.start, mine.stop)
    self.iterator.advance(draw.group.batch_size)
    sequences, task_ids = [], []
    for name, drop, example in zip(draw.tasks[mine], draw.drops[mine], examples, strict=True):
      task, weights = registry.TASKS[name], None
      if self.click_weight != 1.0:
        weights = click_weights(task, example, self.layout, self.click_weight, self.clip_frames)
      sequences.append(sequence.build(task, example, self.vocab, self.layout, drop, weights))
      task_ids.append(registry.TASK_NAMES.index(name))
    return sequence.collate(sequences, task_ids, draw.group.length, self.vocab, self.layout)

  def eval_batches(self, split: str, examples: int) -> list[sequence.Batch]:
    """One batch per trained task over the first `examples` examples of `split` (nothing dropped), padded
    to its group's length (this process's rows)."""
    records = []
    for path in token_shards.shard_paths(self.tokens_dir, split):
      if len(records) >= examples:
        break
      records += token_shards.read_shard(path)
    records = records[:examples]
    mine = records[self.process_rows(len(records))]
    batches = []
    for group in self.mixture.groups:
      for name in group.tasks:
        task = registry.TASKS[name]
        sequences = [sequence.build(task, r, self.vocab, self.layout) for r in mine]
        ids = [registry.TASK_NAMES.index(name)] * len(mine)
        batches.append(sequence.collate(sequences, ids, group.length, self.vocab, self.layout))
    return batches
