"""LM training batches: token-shard examples through grain, turned into task sequences by the mixture.

Each step's plan (length group, tasks, guidance drops) is a pure function of (seed, step); the examples
come from a grain iterator over this process's share of the shards (reshuffled every epoch), whose position
is saved with every checkpoint. Each process builds its own rows of the global batch.
"""

from __future__ import annotations

import jax
import ml_collections

from videopoet_jax import tasks
from videopoet_jax.data import token_pipeline, token_shards
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
  streams = set(manifest["streams"]) | ({"text"} if "text_embedding" in manifest["streams"] else set())
  for name, weight in config.mixture.weights.items():
    missing = set(registry.get(name).streams) - streams
    if weight > 0 and missing:
      problems.append(f"task {name} needs streams {sorted(missing)}: set config.mixture.weights.{name}=0")
  if problems:
    raise ValueError(f"the token shards in {tokens_dir} do not fit the config: " + "; ".join(problems))


def layout_for(config: ml_collections.ConfigDict, manifest: dict) -> sequence.Layout:
  """The config's layout with the token masks of the masked conditioning streams from the manifest."""
  return sequence.Layout.from_config(config.layout, manifest.get("token_masks", {}))


class TaskBatches:
  """`batch(step)` -> this process's rows of step's `sequence.Batch`; `iterator` is the grain iterator."""

  def __init__(self, config: ml_collections.ConfigDict, data_parallel: int):
    self.tokens_dir = tokens_dir = config.data.tokens_dir
    manifest = token_shards.read_manifest(tokens_dir)
    check_manifest(config, manifest, tokens_dir)
    self.vocab = tasks.vocabulary(config)
    self.layout = layout_for(config, manifest)
    self.mixture = mixture_lib.Mixture(
      config.mixture, self.layout, config.train.batch_size, data_parallel, config.train.steps, config.seed
    )
    self.process_index, self.process_count = jax.process_index(), jax.process_count()
    self.iterator = iter(
      token_pipeline.token_dataset(
        tokens_dir,
        config.data.train_split,
        seed=config.seed,
        read_threads=config.data.read_threads,
        shard_index=self.process_index,
        shard_count=self.process_count,
      )
    )

  def batch(self, step: int) -> sequence.Batch:
    draw = self.mixture.draw(step)
    rows = draw.group.batch_size // self.process_count
    mine = slice(self.process_index * rows, (self.process_index + 1) * rows)
    sequences, task_ids = [], []
    for name, drop in zip(draw.tasks[mine], draw.drops[mine], strict=True):
      sequences.append(
        sequence.build(registry.TASKS[name], next(self.iterator), self.vocab, self.layout, drop)
      )
      task_ids.append(registry.TASK_NAMES.index(name))
    return sequence.collate(sequences, task_ids, draw.group.length, self.vocab, self.layout)

  def eval_batches(self, split: str, examples: int) -> list[sequence.Batch]:
    """One batch per trained task over the first `examples` examples of `split` (nothing dropped), padded
    to its group's length (this process's rows)."""
    paths = token_shards.shard_paths(self.tokens_dir, split)
    records = [r for path in paths for r in token_shards.read_shard(path)][:examples]
    rows = len(records) // self.process_count
    mine = records[self.process_index * rows : (self.process_index + 1) * rows]
    batches = []
    for group in self.mixture.groups:
      for name in group.tasks:
        task = registry.TASKS[name]
        sequences = [sequence.build(task, r, self.vocab, self.layout) for r in mine]
        ids = [registry.TASK_NAMES.index(name)] * len(mine)
        batches.append(sequence.collate(sequences, ids, group.length, self.vocab, self.layout))
    return batches
