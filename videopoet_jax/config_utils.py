"""Helpers for ml_collections configs: variant strings, JSON snapshots, architecture checks.

Config files live in `configs/` and expose `get_config(arg)`; `arg` is the text after the colon in
`--config=configs/video_tokenizer.py:demo` (big_vision style: `variant,key=value,...`).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import ml_collections

# Config sections whose values fix the shapes of the parameters: a checkpoint written with one value
# cannot be loaded with another.
ARCHITECTURE_SECTIONS = ("model",)
# Keys of those sections that change how the model computes, not its parameters (free to differ).
COMPUTE_ONLY_KEYS = (
  "model.logits_chunk",
  "model.remat",
  "model.dtype",
  "model.attention",
  "model.attention_chunk",
)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses `"demo,batch=4"` into a ConfigDict, filling and type-casting `defaults`.

  A bare first item sets the first default key (conventionally `variant`).
  """
  result = ml_collections.ConfigDict(dict(defaults))
  if not arg:
    return result
  keys = list(defaults)
  for i, item in enumerate(x for x in arg.split(",") if x):
    if "=" in item:
      key, value = item.split("=", 1)
    elif i == 0 and keys:
      key, value = keys[0], item
    else:
      raise ValueError(f"config argument item {item!r} is not key=value")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
    default = defaults[key]
    if isinstance(default, bool):
      result[key] = value.lower() in ("1", "true", "yes")
    elif default is None:
      result[key] = value
    else:
      result[key] = type(default)(value)
  return result


def tokenizer_train_section(**values: Any) -> ml_collections.ConfigDict:
  """The `train` section the tokenizer trainers read; every key must be given (no silent defaults).

  Keys: steps, batch_size, learning_rate, warmup_steps, b1, b2 (Adam; warmup then cosine decay to 0),
  disc_lr_scale (discriminator learning rate / generator's), grad_clip (global norm), ema_decay (of the
  exported weights), log_every, checkpoint_every (steps), keep_checkpoints (newest N kept), init_from (an
  export or workdir of the same architecture whose weights a fresh run starts from; "" = random init),
  trainable ("all", or "decoder": the encoder and any codebooks stay `init_from`'s, so every input keeps its
  ids and an LM trained on them stays valid; `videopoet_jax.training.optimizers.TRAINABLE`),
  max_nonfinite_steps (skipped NaN/inf steps in a row that stop the run).
  """
  keys = (
    "steps batch_size learning_rate warmup_steps b1 b2 disc_lr_scale grad_clip ema_decay log_every "
    "checkpoint_every keep_checkpoints init_from trainable max_nonfinite_steps"
  ).split()
  if set(values) != set(keys):
    raise ValueError(
      f"train section keys: missing {sorted(set(keys) - set(values))}, unknown "
      f"{sorted(set(values) - set(keys))}"
    )
  return ml_collections.ConfigDict({key: values[key] for key in keys})


def data_parallel_mesh() -> ml_collections.ConfigDict:
  """Mesh section of a data-parallel trainer: every device on the data axis (-1 is auto-filled)."""
  return ml_collections.ConfigDict({"shape": (-1, 1, 1), "axes": ("data", "fsdp", "tensor")})


def to_json_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Returns the resolved config as plain JSON-serialisable data (tuples become lists)."""
  return json.loads(config.to_json())


def _diff(saved: Any, current: Any, path: str, skip: tuple[str, ...]) -> list[str]:
  """`key: saved -> current` for every leaf under `path` that differs, skipping the keys (or whole
  sections) named in `skip`."""
  if path in skip:
    return []
  if isinstance(saved, dict) and isinstance(current, dict):
    return [
      line
      for key in sorted(set(saved) | set(current))
      for line in _diff(
        saved.get(key, "<missing>"), current.get(key, "<missing>"), f"{path}.{key}" if path else key, skip
      )
    ]
  return [] if saved == current else [f"{path}: {saved!r} -> {current!r}"]


# Architecture keys added after some exports were written, with the value those exports were built with
# (the modules read them with the same default).
LATER_ARCHITECTURE_KEYS = {
  "model.decoder_patch_hidden": 0,
  "model.video_grid": [],
  "model.video_cell_ids": [],
}


def _with_later_defaults(config: dict[str, Any]) -> dict[str, Any]:
  config = {section: dict(values) for section, values in config.items() if isinstance(values, dict)}
  for key, default in LATER_ARCHITECTURE_KEYS.items():
    section, name = key.split(".")
    config.setdefault(section, {}).setdefault(name, default)
  return config


def architecture_diff(
  saved: dict[str, Any], current: dict[str, Any], may_differ: tuple[str, ...] = ()
) -> list[str]:
  """Lists `key: saved -> current` for every architecture value that differs, beside the keys in
  `may_differ`."""
  saved, current = _with_later_defaults(saved), _with_later_defaults(current)
  skip = (*COMPUTE_ONLY_KEYS, *may_differ)
  return [
    line
    for section in ARCHITECTURE_SECTIONS
    for line in _diff(saved.get(section, {}), current.get(section, {}), section, skip)
  ]


# Config keys (or whole sections) that change how a run is logged, saved or laid out, not what it computes:
# free to differ when a workdir is resumed. Any other difference changes the run (see `run_diff`).
RUN_NEUTRAL_KEYS = (
  *COMPUTE_ONLY_KEYS,
  "train.log_every",
  "train.checkpoint_every",
  "train.keep_checkpoints",
  "train.eval_every",
  "train.eval_examples",
  "train.max_nonfinite_steps",
  "data.read_threads",
  "mesh",
  "sharding",
  "topology",
)


def run_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Lists `key: saved -> current` for every config value outside RUN_NEUTRAL_KEYS that differs: what a
  resumed run would do differently from the run that wrote its checkpoints (seed, data, mixture, steps,
  batch, optimizer, schedule, architecture)."""
  return _diff(saved, current, "", RUN_NEUTRAL_KEYS)


def check_architecture(
  saved: dict[str, Any], current: dict[str, Any], where: str, may_differ: tuple[str, ...] = ()
) -> None:
  """Raises a readable ValueError when `current` cannot load parameters saved under `saved` (beside the
  keys in `may_differ`)."""
  diffs = architecture_diff(saved, current, may_differ)
  if diffs:
    lines = "\n  ".join(diffs)
    raise ValueError(
      f"the checkpoint in {where} was written with a different architecture "
      f"(saved -> requested):\n  {lines}\n"
      "Use the config it was trained with, or a fresh --workdir."
    )


def from_json_dict(data: dict[str, Any]) -> ml_collections.ConfigDict:
  """Rebuilds a ConfigDict from `to_json_dict` output (lists stay lists)."""
  return ml_collections.ConfigDict(data)


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """Imports the config file at `path` and returns its `get_config(arg)` (as `--config=path:arg` would)."""
  spec = importlib.util.spec_from_file_location("videopoet_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
