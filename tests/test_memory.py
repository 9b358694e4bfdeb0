"""The per-chip memory estimate (videopoet_jax/memory.py) and the table of it in configs/lm.py."""

import re

import pytest

from videopoet_jax import memory
from videopoet_jax.training import lm

from conftest import REPO, load_config

# A table line of configs/lm.py: size, topology, mesh, batch, microbatches, attention, then the GiB columns.
ROW = re.compile(r"^#\s+(300m|1b|8b)\s+(\S+)\s+(\(\d+, \d+, \d+\))\s+(\d+)\s+(\d+)\s+([a-z]+)\s+([\d.\s]+)$")
COLUMNS = ("params", "moments", "grads", "ema", "activations", "total")
# The table shows two decimals.
TOLERANCE_GIB = 0.006


def _table_rows():
  return [m.groups() for m in map(ROW.match, (REPO / "configs" / "lm.py").read_text().splitlines()) if m]


def test_the_config_table_lists_every_mesh_preset_with_the_computed_estimate():
  import importlib.util

  spec = importlib.util.spec_from_file_location("lm_config", REPO / "configs" / "lm.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  rows = _table_rows()
  assert sorted((size, topology) for size, topology, *_ in rows) == sorted(module.MESHES)
  for size, topology, mesh, batch, microbatches, attention, numbers in rows:
    config = load_config("lm", f"{size},topology={topology}")
    assert str(tuple(config.mesh.shape)) == mesh and config.train.batch_size == int(batch)
    assert config.train.microbatches == int(microbatches) and config.model.attention == attention
    values = [float(x) for x in numbers.split()]
    estimate = memory.estimate(config, config.topology.chips).gib()
    for column, value in zip(COLUMNS, values, strict=False):
      assert estimate[column] == pytest.approx(value, abs=TOLERANCE_GIB), (size, topology, column)
    hbm = config.topology.hbm_bytes / memory.GIB
    assert values[-1] == pytest.approx(hbm, abs=TOLERANCE_GIB)
    assert estimate["total"] < hbm, f"{size} on {topology} does not fit"


def test_state_bytes_are_the_shards_of_the_parameters_and_moments(tiny_lm_config):
  config = tiny_lm_config
  config.train.ema_decay = 0.999
  params = lm.param_count(lm.Trainer(config, data=False).abstract_state.params)
  one = memory.estimate(config, 1)
  assert one.params == one.grads == one.ema == 4 * params
  assert one.moments >= 2 * one.params  # Adam's two moments (plus scalar counts)
  config.mesh.shape = (1, -1, 2)  # embed over fsdp 4, wide dims over tensor 2
  eight = memory.estimate(config, 8)
  assert one.params / 8 <= eight.params < one.params / 4


def test_activations_grow_with_rows_and_shrink_with_remat(tiny_lm_config):
  config = tiny_lm_config
  by_policy = {}
  for remat in ("none", "dots", "full"):
    config.model.remat = remat
    by_policy[remat] = memory.estimate(config, 1).activations
  assert by_policy["full"] < by_policy["dots"] < by_policy["none"]
  config.train.batch_size *= 2
  assert memory.estimate(config, 1).activations > by_policy["full"]


def test_unknown_topology_is_refused():
  with pytest.raises(ValueError, match="known"):
    load_config("lm", "8b,topology=v4-8")
