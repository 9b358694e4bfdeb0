"""Orbax checkpointing: async, atomic, keep-last-N, with the resolved config saved beside every step.

A workdir holds `checkpoints/<step>/{state,config}` (+ `data`, the grain iterator's position, for trainers
that read through one); `config` is the JSON of the run's resolved config and is compared with the
requested config before anything is restored.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp

from videopoet_jax import config_utils
from videopoet_jax.data import token_pipeline

CHECKPOINT_SUBDIR = "checkpoints"


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
    items["data"] = token_pipeline.checkpoint_args(data_iterator)
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
  A given `data_iterator` (grain) is moved to the position saved with the step.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  config_utils.check_architecture(
    read_config(manager, step), config_utils.to_json_dict(config), str(manager.directory)
  )
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iterator is not None:
    items["data"] = token_pipeline.checkpoint_args(data_iterator, restore=True)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return restored.state, step
