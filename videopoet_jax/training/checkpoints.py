"""Orbax checkpointing: async, atomic, keep-last-N, with the resolved config saved beside every step.

A workdir holds `checkpoints/<step>/{state,config}` (+ the data position for trainers that read through an
iterator); `config` is the JSON of the run's resolved config and is compared with the requested config
before anything is restored.

Data positions: a grain iterator is saved by grain's handler under `data`, one `process_<i>-of-<n>.json` per
process (restorable only with the same process count); a `token_pipeline.GlobalOrder`, whose position is the
same on every process, is saved once as JSON under `data_position` and restores with any process count (a
one-process `data` item written before `data_position` existed is read as its position).

Multi-process: every process calls `save` and `restore` (orbax coordinates them, each process writes its
shards of the arrays, the primary one the metadata and JSON items).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp

from videopoet_jax import config_utils
from videopoet_jax.data import token_pipeline

CHECKPOINT_SUBDIR = "checkpoints"
# Checkpoint items of the data position: grain iterator (per process) / GlobalOrder (once).
GRAIN_ITEM = "data"
POSITION_ITEM = "data_position"
# The file grain's handler writes for process 0 of a one-process run.
ONE_PROCESS_GRAIN_FILE = "process_0-of-1.json"


def _data_save_args(data_iterator) -> dict:
  if isinstance(data_iterator, token_pipeline.GlobalOrder):
    return {POSITION_ITEM: ocp.args.JsonSave(data_iterator.get_state())}
  return {GRAIN_ITEM: token_pipeline.checkpoint_args(data_iterator)}


def _restore_position(manager: ocp.CheckpointManager, step: int, order: token_pipeline.GlobalOrder) -> None:
  """Moves `order` to the position saved with `step` (or a one-process grain iterator's, older runs)."""
  step_dir = os.path.join(str(manager.directory), str(step))
  if os.path.isdir(os.path.join(step_dir, POSITION_ITEM)):
    state = manager.restore(step, args=ocp.args.Composite(**{POSITION_ITEM: ocp.args.JsonRestore()}))
    order.set_state(state[POSITION_ITEM])
    return
  legacy = os.path.join(step_dir, GRAIN_ITEM, ONE_PROCESS_GRAIN_FILE)
  if not os.path.exists(legacy):
    raise FileNotFoundError(f"checkpoint step {step} in {manager.directory} holds no data position")
  with open(legacy) as f:
    order.set_state(json.load(f))


def make_manager(
  workdir: str, keep: int, save_every: int = 1, async_save: bool = True
) -> ocp.CheckpointManager:
  """A CheckpointManager over `workdir/checkpoints` keeping the newest `keep` steps."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep,
    save_interval_steps=save_every,
    enable_async_checkpointing=async_save,
    create=True,
  )
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_SUBDIR)), options=options)


def save(
  manager: ocp.CheckpointManager,
  step: int,
  state: Any,
  config: ml_collections.ConfigDict,
  force: bool = False,
  data_iterator=None,
) -> bool:
  """Saves `state` (any pytree), the config JSON and `data_iterator`'s state (a grain iterator, if given)
  at `step` (asynchronously when enabled)."""
  items = {
    "state": ocp.args.StandardSave(state),
    "config": ocp.args.JsonSave(config_utils.to_json_dict(config)),
  }
  if data_iterator is not None:
    items.update(_data_save_args(data_iterator))
  return manager.save(step, args=ocp.args.Composite(**items), force=force)


def read_config(manager: ocp.CheckpointManager, step: int | None = None) -> dict[str, Any]:
  """The config JSON stored with `step` (default: the latest)."""
  step = manager.latest_step() if step is None else step
  return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config


def restore(
  manager: ocp.CheckpointManager,
  abstract_state: Any,
  config: ml_collections.ConfigDict,
  step: int | None = None,
  data_iterator=None,
) -> tuple[Any, int]:
  """Restores `(state, step)` from `step` (default: latest) after checking the architecture matches.

  `abstract_state` is a pytree of jax.ShapeDtypeStruct (with shardings) that fixes structure and placement.
  A given `data_iterator` (grain iterator or GlobalOrder) is moved to the position saved with the step.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  config_utils.check_architecture(
    read_config(manager, step), config_utils.to_json_dict(config), str(manager.directory)
  )
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  global_order = isinstance(data_iterator, token_pipeline.GlobalOrder)
  if data_iterator is not None and not global_order:
    items[GRAIN_ITEM] = token_pipeline.checkpoint_args(data_iterator, restore=True)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  if global_order:
    _restore_position(manager, step, data_iterator)
  return restored.state, step
