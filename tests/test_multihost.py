"""Multi-process training on this machine: 2 CPU processes x 2 devices vs 1 process x 4 devices.

Both runs execute train.py on the tiny LM config and the same synthetic token shards, with a mesh whose fsdp
axis spans the two processes (parameters and batch rows split across them, tensor within a process).
"""

import json
import os
import socket
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from videopoet_jax import distributed, sharding
from videopoet_jax.data import lm_batches
from videopoet_jax.training import checkpoints, lm

from conftest import REPO, load_config, write_tiny_token_shards

DEVICES = 4
PROCESSES = 2
STEPS = 10
# (data, fsdp, tensor): fsdp over the processes, tensor over each process's two devices.
MESH = "(1,2,2)"
TIMEOUT_S = 300


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _command(tokens_dir, workdir) -> list[str]:
  overrides = {
    "data.tokens_dir": tokens_dir,
    "mesh.shape": MESH,
    "train.steps": STEPS,
    "train.checkpoint_every": STEPS,
    "train.log_every": 2,
    "train.eval_every": STEPS,
  }
  return [sys.executable, "train.py", "--config=configs/lm.py:tiny", f"--workdir={workdir}"] + [
    f"--config.{k}={v}" for k, v in overrides.items()
  ]


def _env(devices: int) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR")}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return env


def _records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _wait(processes, what):
  try:
    results = [p.communicate(timeout=TIMEOUT_S) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
        p.wait()
  for p, (_, err) in zip(processes, results, strict=True):
    assert p.returncode == 0, f"{what} failed ({p.returncode}):\n{err[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Workdirs of the 2-process run and the 1-process reference (started together)."""
  root = tmp_path_factory.mktemp("multihost")
  config = load_config("lm", "tiny")
  tokens = write_tiny_token_shards(root / "tokens", config, examples=(24, 8))
  multi, single = root / "two_processes", root / "one_process"
  address = f"localhost:{_free_port()}"
  launch = lambda command, env: subprocess.Popen(
    command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  processes = [
    launch(
      _command(tokens, multi)
      + [f"--coordinator_address={address}", f"--num_processes={PROCESSES}", f"--process_id={i}"],
      _env(DEVICES // PROCESSES),
    )
    for i in range(PROCESSES)
  ]
  reference = launch(_command(tokens, single), _env(DEVICES))
  _wait(processes, "the 2-process run")
  _wait([reference], "the 1-process run")
  return {"multi": multi, "single": single, "tokens": tokens}


def test_two_processes_train_with_the_losses_of_one(runs):
  multi, single = _records(runs["multi"]), _records(runs["single"])
  losses = lambda records: {r["step"]: r["loss"] for r in records if "loss" in r}
  # One process writes the metrics: every logged step appears once.
  steps = [r["step"] for r in multi if "loss" in r]
  assert steps == list(range(2, STEPS + 1, 2))
  np.testing.assert_allclose(
    [losses(multi)[s] for s in steps], [losses(single)[s] for s in steps], rtol=2e-5, atol=1e-6
  )
  evals = lambda records: [r["eval/loss"] for r in records if "eval/loss" in r]
  np.testing.assert_allclose(evals(multi), evals(single), rtol=2e-5)
  assert len(evals(multi)) == 1


def test_one_checkpoint_with_one_data_position_restores_in_one_process(runs):
  config = load_config("lm", "tiny")
  config.data.tokens_dir = runs["tokens"]
  config.train.steps = STEPS
  config.mesh.shape = (1, 4, 2)  # this process's 8 devices: a different mesh than either run's
  trainer = lm.Trainer(config)
  restored = {}
  for name in ("multi", "single"):
    manager = checkpoints.make_manager(str(runs[name]), 3)
    assert manager.all_steps() == [STEPS]
    step_dir = os.path.join(str(manager.directory), str(STEPS))
    assert checkpoints.POSITION_ITEM in os.listdir(step_dir)
    state, step = checkpoints.restore(
      manager, trainer.abstract_state, config, data_iterator=trainer.data_iterator
    )
    restored[name] = (jax.device_get(state.params), trainer.data_iterator.get_state(), step)
  (params_2, position_2, step_2), (params_1, position_1, step_1) = restored["multi"], restored["single"]
  assert step_2 == step_1 == STEPS
  # The position is the global one (all rows of all 10 batches), not one process's share.
  assert position_2 == position_1
  runs_mixture = lm_batches.TaskBatches(config, data_parallel=2).mixture  # the runs' (data, fsdp) = (1, 2)
  expected = sum(runs_mixture.draw(s).group.batch_size for s in range(1, STEPS + 1))
  assert position_2[trainer.data_iterator.STATE_KEY] == expected
  for a, b in zip(jax.tree.leaves(params_2), jax.tree.leaves(params_1), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_process_rows_of_a_mesh_replicated_over_tensor():
  mesh = sharding.make_mesh(
    ml_collections.ConfigDict({"shape": (1, 2, 4), "axes": ("data", "fsdp", "tensor")})
  )
  batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(sharding.BATCH_AXES))
  # One process holds every device: all rows.
  assert sharding.process_rows(batch, 8) == slice(0, 8)


def test_process_spec_from_flags_and_environment():
  assert distributed.process_spec("env", environ={}) is None
  assert distributed.process_spec("off", "host:1", 2, 0, environ={}) is None
  env = {distributed.COORDINATOR_ENV: "10.0.0.1:1234", distributed.NUM_PROCESSES_ENV: "4"}
  spec = distributed.process_spec("env", process_id=3, environ=env)
  assert spec == distributed.ProcessSpec("10.0.0.1:1234", 4, 3)
  # Flags win over the environment.
  assert distributed.process_spec("env", "h:1", 2, 1, environ=env) == distributed.ProcessSpec("h:1", 2, 1)
  # auto: jax detects whatever is not given (TPU pods, SLURM).
  assert distributed.process_spec("auto", environ={}) == distributed.ProcessSpec()
  with pytest.raises(ValueError, match="coordinator"):
    distributed.process_spec("env", num_processes=2, environ={})


def test_global_order_rows_are_the_one_process_iterator_order(tmp_path):
  from videopoet_jax.data import token_pipeline

  config = load_config("lm", "tiny")
  tokens = write_tiny_token_shards(tmp_path / "tokens", config, examples=(6, 2))
  iterator = iter(token_pipeline.token_dataset(tokens, "train", seed=3))
  expected = [next(iterator)["index"] for _ in range(16)]  # past the first epoch: reshuffled
  order = token_pipeline.token_order(tokens, "train", seed=3, read_threads=2)
  # Two "processes" read their halves of each 4-example batch at the same position.
  got = []
  for _ in range(4):
    got += [r["index"] for r in order.read(0, 2)] + [r["index"] for r in order.read(2, 4)]
    order.advance(4)
  assert got == expected
  assert order.get_state() == iterator.get_state()


def test_a_one_process_grain_checkpoint_restores_its_position_into_a_global_order(tmp_path):
  import jax.numpy as jnp
  import orbax.checkpoint as ocp

  from videopoet_jax import config_utils
  from videopoet_jax.data import token_pipeline

  config = load_config("lm", "tiny")
  tokens = write_tiny_token_shards(tmp_path / "tokens", config, examples=(6, 2))
  iterator = iter(token_pipeline.token_dataset(tokens, "train", seed=0))
  for _ in range(5):
    next(iterator)
  manager = checkpoints.make_manager(str(tmp_path / "run"), 3, async_save=False)
  state = {"w": jnp.arange(3.0)}
  items = {
    "state": ocp.args.StandardSave(state),
    "config": ocp.args.JsonSave(config_utils.to_json_dict(config)),
    checkpoints.GRAIN_ITEM: token_pipeline.checkpoint_args(iterator),  # as runs before data_position
  }
  manager.save(1, args=ocp.args.Composite(**items))
  manager.wait_until_finished()
  order = token_pipeline.token_order(tokens, "train", seed=0)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
  checkpoints.restore(manager, abstract, config, data_iterator=order)
  assert order.get_state() == {order.STATE_KEY: 5}
