"""The training loop every trainer shares: resume, step, log, checkpoint, export, stop on a signal.

A trainer object provides:
  config          the resolved run config (train.steps / log_every / checkpoint_every / keep_checkpoints)
  abstract_state  the state's jax.ShapeDtypeStruct pytree, with shardings (fixes what a restore loads)
  init(batch)     a fresh sharded state (the first batch is there for data-dependent init, e.g. k-means)
  step_fn         jitted `(state, batch) -> (state, metrics)`; metrics["code_counts"] is summed over the
                  log window and summarised by `usage_stats(counts) -> dict`
  put_batch(x)    places a host batch on the mesh
  export_params(state)  the nnx.State written to `<workdir>/export` at every checkpoint
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
from collections.abc import Callable, Iterator

import jax
import numpy as np

from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training import checkpoints
from videopoet_jax.training.progress import ProgressLogger

# Metrics entry holding per-step code counts (summed over a log window, not averaged).
CODE_COUNTS = "code_counts"


def fit(trainer, workdir: str, make_batches: Callable[[int], Iterator[np.ndarray]]):
  """Trains (or resumes) in `workdir` until config.train.steps; returns the final state.

  `make_batches(start_step)` yields the host batches of steps start_step + 1, start_step + 2, ...
  """
  config = trainer.config
  os.makedirs(workdir, exist_ok=True)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  batches = make_batches(manager.latest_step() or 0)
  if manager.latest_step() is not None:
    state, start = checkpoints.restore(manager, trainer.abstract_state, config)
    logging.info("resumed from step %d in %s", start, workdir)
  else:
    first = next(batches)
    state, start = trainer.init(trainer.put_batch(first)), 0
    batches = itertools.chain([first], batches)
  total = config.train.steps
  logger = ProgressLogger(workdir, total, start)
  stop = {"signal": None}
  previous = {
    s: signal.signal(s, lambda num, _: stop.update(signal=num)) for s in (signal.SIGINT, signal.SIGTERM)
  }
  window, code_counts = [], 0
  try:
    for step in range(start + 1, total + 1):
      state, metrics = trainer.step_fn(state, trainer.put_batch(next(batches)))
      code_counts = code_counts + np.asarray(metrics.pop(CODE_COUNTS))
      window.append(metrics)
      if step % config.train.log_every == 0 or step == total:
        means = {k: float(np.mean([jax.device_get(m[k]) for m in window])) for k in window[0]}
        logger.log(step, {**means, **trainer.usage_stats(code_counts)})
        window, code_counts = [], 0
      if step % config.train.checkpoint_every == 0 or step == total or stop["signal"]:
        checkpoints.save(manager, step, state, config, force=True)
        pretrained.export(
          os.path.join(workdir, pretrained.EXPORT_SUBDIR), trainer.export_params(state), config
        )
      if stop["signal"]:
        logging.warning("signal %d: saved step %d, stopping", stop["signal"], step)
        break
  finally:
    manager.wait_until_finished()
    logger.close()
    for s, handler in previous.items():
      signal.signal(s, handler)
  return state
