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

A step whose loss or gradient is NaN/inf leaves the state as it was and sets its NONFINITE metric (every
trainer's step does so); the loop counts such steps in a row and stops the run once that reaches
config.train.max_nonfinite_steps (the checkpoints hold the last good state), and the logged means leave
them out. Step metrics are read on the host only at log, evaluation and checkpoint steps, so the host
prepares the next batches while the device runs.
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
# Metrics entry: 1 where the step was skipped because its loss or gradient was not finite, else 0.
NONFINITE = "nonfinite"


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
  window, unchecked, in_a_row = [], [], 0
  try:
    for step in range(start + 1, total + 1):
      state, metrics = trainer.step_fn(state, trainer.put_batch(next(batches)))
      window.append(metrics)
      unchecked.append((step, metrics.get(NONFINITE)))
      # A signal is acted on at one point: read once here, so a step that stops is also saved (one that
      # arrives later in this step is acted on after the next one).
      stopping = stop["signal"]
      logs = step % config.train.log_every == 0 or step == total
      saves = step % config.train.checkpoint_every == 0 or step == total or stopping
      evaluates = eval_every and (step % eval_every == 0 or step == total)
      if logs or saves or evaluates:
        in_a_row = _check_finite(unchecked, in_a_row, config.train.max_nonfinite_steps, workdir)
        unchecked = []
      if logs:
        logger.log(step, trainer.summarize(window))
        window = []
      if evaluates:
        logger.log(step, trainer.evaluate(state), timed=False)
      if saves:
        checkpoints.save(manager, step, state, config, force=True, data_iterator=data_iterator)
        export_dir = os.path.join(workdir, pretrained.EXPORT_SUBDIR)
        pretrained.export(export_dir, trainer.export_params(state), config)
        if hasattr(trainer, "export_assets") and distributed.is_primary():
          trainer.export_assets(export_dir)
      if stopping:
        logging.warning("signal %d: saved step %d, stopping", stopping, step)
        break
  finally:
    manager.wait_until_finished()
    logger.close()
    for s, handler in previous.items():
      signal.signal(s, handler)
  return state


def _check_finite(steps: list[tuple[int, jax.Array | None]], in_a_row: int, limit: int, workdir: str) -> int:
  """Counts skipped steps in a row over `(step, NONFINITE flag)` in order; raises TrainingDivergedError
  when the count reaches `limit`. Returns the count after the last step."""
  for step, flag in steps:
    in_a_row = in_a_row + 1 if flag is not None and int(flag) else 0
    if in_a_row >= limit:
      raise TrainingDivergedError(
        f"{in_a_row} steps in a row had a non-finite loss or gradient (up to step {step}); stopped. "
        f"The last checkpoint in {workdir} holds the last good state: lower the learning rate or "
        "check the data, then run the same command to resume from it."
      )
  return in_a_row


def mean_metrics(window: list[dict]) -> dict[str, float]:
  """Mean of every scalar metric over the window's steps that were not skipped (all of them NaN if every
  step was), and the number of skipped steps."""
  skipped = [bool(jax.device_get(m.get(NONFINITE, 0))) for m in window]
  kept = [m for m, s in zip(window, skipped, strict=True) if not s] or window
  means = {k: float(np.mean([jax.device_get(m[k]) for m in kept])) for k in window[0] if k != NONFINITE}
  return {**means, NONFINITE: float(sum(skipped))}
