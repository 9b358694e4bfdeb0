"""Builds a patch table video tokenizer (`configs/video_tokenizer.py:world_table`) from shapes_world clips.

`train.py --config=configs/video_tokenizer.py:world_table --workdir=DIR` renders `data.num_clips` clips of
the world's training seeds (never a validation or test seed), keeps the most frequent distinct patches of
each kind of latent frame (`tokenizers/patch_table.py`) and writes the export to `DIR/export` with
`table_stats.json`. Nothing is trained by gradient, so there is nothing to resume: a finished export is
kept, a killed build starts again (a few minutes).
"""

from __future__ import annotations

import json
import logging
import os
import time

import ml_collections
import numpy as np
from flax import nnx

from videopoet_jax.data import shapes_world_dataset, tokenizer_clips
from videopoet_jax.tokenizers import patch_table, pretrained
from videopoet_jax.training.progress import format_seconds

STATS_FILE = "table_stats.json"
# Clips rendered between progress lines.
LOG_EVERY = 500


def render_clips(data: ml_collections.ConfigDict) -> np.ndarray:
  """`[num_clips, frames, size, size, 3]` uint8: shapes_world's training seeds, with progress lines."""
  first = shapes_world_dataset.SPLIT_SEEDS["train"]
  clips, start = [], time.time()
  for i in range(data.num_clips):
    clips.append(tokenizer_clips.procedural_clip(first + i, data.frames, data.size))
    if (i + 1) % LOG_EVERY == 0 or i + 1 == data.num_clips:
      rate = (i + 1) / (time.time() - start)
      eta = format_seconds((data.num_clips - i - 1) / rate)
      logging.info("rendered %d/%d clips | %.1f clips/s | ETA %s", i + 1, data.num_clips, rate, eta)
  return np.stack(clips)


def build(config: ml_collections.ConfigDict, workdir: str) -> patch_table.PatchTableTokenizer:
  """Builds the tables into `workdir/export` (kept if already there); returns the tokenizer."""
  folder = os.path.join(workdir, pretrained.EXPORT_SUBDIR)
  if os.path.exists(os.path.join(folder, STATS_FILE)):
    logging.info("%s already holds a built patch table", folder)
    return pretrained.load_video_tokenizer(folder)[0]
  tokenizer = patch_table.PatchTableTokenizer(config.model)
  start = time.time()
  tables, stats = patch_table.build_tables(render_clips(config.data), tokenizer.geometry)
  tokenizer.first.value, tokenizer.later.value = tables["first"], tables["later"]
  stats |= {"num_clips": config.data.num_clips, "rows": tokenizer.geometry.codebook_size}
  stats["seconds"] = round(time.time() - start, 1)
  pretrained.export(folder, nnx.state(tokenizer, nnx.Param), config)
  with open(os.path.join(folder, STATS_FILE), "w") as f:
    json.dump(stats, f, indent=1)
  logging.info("patch table: %s -> %s", stats, folder)
  return tokenizer
