"""Training progress: a log line (step, metrics, steps/s, ETA), TensorBoard scalars, metrics.jsonl."""

from __future__ import annotations

import json
import logging
import os
import time

from tensorboardX import SummaryWriter


def quiet_library_logs() -> None:
  """Drops orbax's per-save INFO chatter from the absl log, keeping its warnings and errors."""
  logging.getLogger("absl").addFilter(
    lambda record: record.levelno >= logging.WARNING or "/orbax/" not in record.pathname
  )


def quiet_unless_verbose() -> None:
  """For the user-facing programs: library INFO lines (checkpoint loading, dataset building) are shown only
  when `--verbosity` is given (absl's flag: 0 = INFO, 1 = DEBUG); otherwise warnings and errors only, so a
  run prints the program's own lines."""
  from absl import flags
  from absl import logging as absl_logging

  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  quiet_library_logs()


def format_seconds(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLogger:
  """Writes metrics every call; speed and ETA are measured between calls (compile time excluded).

  `write=False` (every process but the primary one of a multi-process run) writes and logs nothing.
  """

  def __init__(self, workdir: str, total_steps: int, start_step: int, write: bool = True):
    self.total_steps = total_steps
    self.write = write
    self.writer = SummaryWriter(os.path.join(workdir, "tensorboard")) if write else None
    # Closed in close().
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a") if write else None  # noqa: SIM115
    self.last_step, self.last_time = start_step, None
    self.started = time.time()

  def log(self, step: int, metrics: dict[str, float], timed: bool = True) -> None:
    """Writes `metrics` at `step`; `timed=False` (e.g. evaluation) reports no speed and does not reset the
    speed measurement."""
    now = time.time()
    rate = float("nan")
    if timed:
      rate = (step - self.last_step) / (now - self.last_time) if self.last_time else float("nan")
      self.last_step, self.last_time = step, now
    eta = (self.total_steps - step) / rate if rate == rate and rate > 0 else float("nan")
    if not self.write:
      return
    for key, value in metrics.items():
      self.writer.add_scalar(key, value, step)
    if rate == rate:  # the first call has no speed yet
      self.writer.add_scalar("steps_per_s", rate, step)
    self.writer.flush()
    record = {"step": step, "steps_per_s": rate, "wall_s": now - self.started, **metrics}
    self.jsonl.write(json.dumps(record) + "\n")
    self.jsonl.flush()
    shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    eta_text = format_seconds(eta) if eta == eta else "?"
    logging.info("step %d/%d %s | %.2f steps/s | ETA %s", step, self.total_steps, shown, rate, eta_text)

  def close(self) -> None:
    if self.write:
      self.writer.close()
      self.jsonl.close()
