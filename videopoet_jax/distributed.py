"""Multi-process runs: `jax.distributed` initialization and the process that writes the shared files.

Every process of a run executes the same `train.py`. A run is multi-process when a coordinator is given by
flag (`--coordinator_address`, `--num_processes`, `--process_id`) or by the environment
(`JAX_COORDINATOR_ADDRESS` with `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`), or when `--distributed=auto`
asks jax to detect the cluster (TPU pod VMs, SLURM, Open MPI: `jax.distributed.initialize()` with no
arguments). Otherwise nothing is initialized and the run is one process, as before.

On CPU the cross-process collectives go through gloo (set before initialization; jax 0.10's default).
Collective work (every jitted step, orbax saves and restores, the export's parameter write) runs on every
process; files that are one per run (log lines, metrics.jsonl, TensorBoard, the export's config.json and
assets) are written by the primary process only (`is_primary()`).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import jax

# Environment variables naming the coordinator (jax.distributed reads the first itself) and this process.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
# `--distributed` values: "off" never initializes, "auto" always does (cluster auto-detection when no
# coordinator is given), "env" (default) initializes when a coordinator is given by flag or environment.
MODES = ("off", "env", "auto")
CPU_COLLECTIVES = "gloo"


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
  """What `jax.distributed.initialize` is called with (None: jax detects it from the cluster)."""

  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None


def _first_int(*values) -> int | None:
  """The first of `values` that is set (not None, "" or -1), as an int."""
  for value in values:
    if value not in (None, "", -1, "-1"):
      return int(value)
  return None


def process_spec(
  mode: str = "env",
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  environ=None,
) -> ProcessSpec | None:
  """The initialization this process needs, or None for a single-process run.

  Flag values win over the environment; -1 / None / "" mean unset.
  """
  if mode not in MODES:
    raise ValueError(f"distributed mode {mode!r}; known: {MODES}")
  if mode == "off":
    return None
  environ = os.environ if environ is None else environ
  spec = ProcessSpec(
    coordinator_address or environ.get(COORDINATOR_ENV) or None,
    _first_int(num_processes, environ.get(NUM_PROCESSES_ENV)),
    _first_int(process_id, environ.get(PROCESS_ID_ENV)),
  )
  if mode == "env" and spec.coordinator_address is None:
    if spec.num_processes is not None or spec.process_id is not None:
      raise ValueError(
        "num_processes / process_id given without a coordinator address: set --coordinator_address "
        f"(or {COORDINATOR_ENV}), or --distributed=auto on a cluster jax detects"
      )
    return None
  return spec


def define_flags() -> None:
  """Defines --distributed, --coordinator_address, --num_processes and --process_id (the programs that run
  as several processes, train.py and tokenizers/encode.py, call it once at import; encode.py reads only
  the process count and index: its processes never talk)."""
  from absl import flags

  flags.DEFINE_enum(
    "distributed",
    "env",
    MODES,
    "off: one process. env: jax.distributed when a coordinator is given by flag or JAX_COORDINATOR_ADDRESS. "
    "auto: always jax.distributed, detecting the cluster (TPU pod, SLURM) when no coordinator is given.",
  )
  flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (default: JAX_COORDINATOR_ADDRESS)."
  )
  flags.DEFINE_integer(
    "num_processes", None, "Processes in the run (default: JAX_NUM_PROCESSES or detected)."
  )
  flags.DEFINE_integer("process_id", None, "This process's index (default: JAX_PROCESS_ID or detected).")


def initialize_from_flags() -> None:
  """`initialize` with what `define_flags`'s flags (or the environment) say."""
  from absl import flags

  given = flags.FLAGS
  initialize(
    process_spec(given.distributed, given.coordinator_address, given.num_processes, given.process_id)
  )


def initialize(spec: ProcessSpec | None) -> None:
  """Initializes jax.distributed for `spec` (nothing for None); call before anything touches a device."""
  if spec is None:
    return
  # CPU processes exchange collectives over TCP; harmless on accelerators (only the CPU client reads it).
  jax.config.update("jax_cpu_collectives_implementation", CPU_COLLECTIVES)
  jax.distributed.initialize(
    coordinator_address=spec.coordinator_address,
    num_processes=spec.num_processes,
    process_id=spec.process_id,
  )
  logging.info(
    "jax.distributed: process %d of %d, %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def is_primary() -> bool:
  """Whether this process writes the run's single-copy files (logs, metrics, exported config)."""
  return jax.process_index() == 0
