"""Test setup: 8 host CPU devices, so every sharded code path runs on a real mesh."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib.util  # noqa: E402
import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
assert jax.device_count() == 8, "XLA_FLAGS was set too late: jax was imported before conftest"


def load_config(file: str, arg: str | None = None):
  """Loads `configs/<file>.py` and returns `get_config(arg)`."""
  spec = importlib.util.spec_from_file_location(f"configs_{file}", REPO / "configs" / f"{file}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture
def tiny_video_config():
  return load_config("video_tokenizer", "tiny")
