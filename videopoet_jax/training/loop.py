"""The training loop every trainer shares: resume, step, log, checkpoint, export, stop on a signal.

A trainer object provides:
  config          the resolved run config (train.steps / log_every / checkpoint_every / keep_checkpoints)
  abstract_state  the state's jax.ShapeDtypeStruct pytree, with shardings (fixes what a restore loads)
  init(batch)     a fresh sharded state (the first batch is there for data-dependent init, e.g. k-means)
  step_fn         jitted `(state, batch) -> (state, metrics)`
  summarize(window)     the metrics of the steps since the last log line -> `{name: float}` to log
  put_batch(x)    places a host batch on the mesh
  export_params(state)  the nnx.State written to `<workdir>/export` at every checkpoint
and optionally:
  data_iterator   a grain iterator or token_pipeline.GlobalOrder whose position is saved with every
                  checkpoint and restored on resume
  export_assets(path)   writes files the export needs besides parameters and config (e.g. a text model)
  evaluate(state) -> `{name: float}`, logged every config.train.eval_every steps

Multi-process runs: every process runs `fit` (steps, evaluation, checkpoints and the export's parameters
are collective); metrics.jsonl, TensorBoard, the log lines and the export's config and assets are written
by the primary process only.

A step whose metrics hold NONFINITE_IN_A_ROW (steps skipped in a row for a NaN/inf loss or gradient) stops
the run once that reaches config.train.max_nonfinite_steps, without writing the bad state.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
from collections.abc import Callable, Iterator

import jax
import numpy as np

from videopoet_jax import distributed
from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training import checkpoints
from videopoet_jax.training.progress import ProgressLogger

# Metrics entry holding per-step code counts (summed over a log window, not averaged).
CODE_COUNTS = "code_counts"
# Metrics entry: consecutive steps skipped because their loss or gradient was not finite.
NONFINITE_IN_A_ROW = "nonfinite_in_a_row"


class TrainingDivergedError(RuntimeError):
  """Too many consecutive non-finite steps; the last checkpoint is the last good state."""


def fit(trainer, workdir: str, make_batches: Callable[[int], Iterator[np.ndarray]]):
  """Trains (or resumes) in `workdir` until config.train.steps; returns the final state.

  `make_batches(start_step)` yields the host batches of steps start_step + 1, start_step + 2, ... (it is
  called before the data iterator is restored and must not read it until its first batch is asked for).
  """
  config = trainer.config
  data_iterator = getattr(trainer, "data_iterator", None)
  os.makedirs(workdir, exist_ok=True)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  batches = make_batches(manager.latest_step() or 0)
  if manager.latest_step() is not None:
    state, start = checkpoints.restore(manager, trainer.abstract_state, config, data_iterator=data_iterator)
    logging.info("resumed from step %d in %s", start, workdir)
  else:
    first = next(batches)
    state, start = trainer.init(trainer.put_batch(first)), 0
    batches = itertools.chain([first], batches)
  total = config.train.steps
  eval_every = config.train.get("eval_every", 0) if hasattr(trainer, "evaluate") else 0
  logger = ProgressLogger(workdir, total, start, write=distributed.is_primary())
  stop = {"signal": None}
  previous = {
    s: signal.signal(s, lambda num, _: stop.update(signal=num)) for s in (signal.SIGINT, signal.SIGTERM)
  }
  window = []
  try:
    for step in range(start + 1, total + 1):
      state, metrics = trainer.step_fn(state, trainer.put_batch(next(batches)))
      window.append(metrics)
      if NONFINITE_IN_A_ROW in metrics:
        in_a_row = int(metrics[NONFINITE_IN_A_ROW])
        if in_a_row >= config.train.max_nonfinite_steps:
          raise TrainingDivergedError(
            f"{in_a_row} steps in a row had a non-finite loss or gradient (up to step {step}); stopped. "
            f"The last checkpoint in {workdir} holds the last good state: lower the learning rate or "
            "check the data, then run the same command to resume from it."
          )
      if step % config.train.log_every == 0 or step == total:
        logger.log(step, trainer.summarize(window))
        window = []
      if eval_every and (step % eval_every == 0 or step == total):
        logger.log(step, trainer.evaluate(state), timed=False)
      if step % config.train.checkpoint_every == 0 or step == total or stop["signal"]:
        checkpoints.save(manager, step, state, config, force=True, data_iterator=data_iterator)
        export_dir = os.path.join(workdir, pretrained.EXPORT_SUBDIR)
        pretrained.export(export_dir, trainer.export_params(state), config)
        if hasattr(trainer, "export_assets") and distributed.is_primary():
          trainer.export_assets(export_dir)
      if stop["signal"]:
        logging.warning("signal %d: saved step %d, stopping", stop["signal"], step)
        break
  finally:
    manager.wait_until_finished()
    logger.close()
    for s, handler in previous.items():
      signal.signal(s, handler)
  return state


def mean_metrics(window: list[dict]) -> dict[str, float]:
  """Mean of every scalar metric over the window's steps."""
  return {k: float(np.mean([jax.device_get(m[k]) for m in window])) for k in window[0]}
