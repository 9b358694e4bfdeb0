"""Test setup: 8 host CPU devices, so every sharded code path runs on a real mesh."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from videopoet_jax import config_utils  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
assert jax.device_count() == 8, "XLA_FLAGS was set too late: jax was imported before conftest"
# Trainers built in several tests compile the same step: share compilations through a persistent cache.
jax.config.update(
  "jax_compilation_cache_dir", os.path.join(os.environ.get("TMPDIR", "/tmp"), "videopoet_jax_xla_cache")
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_config(file: str, arg: str | None = None):
  """Loads `configs/<file>.py` and returns `get_config(arg)`."""
  return config_utils.load_config_file(str(REPO / "configs" / f"{file}.py"), arg)


@pytest.fixture
def tiny_video_config():
  """The tiny video tokenizer config on a one-device mesh (sharding tests build their own meshes)."""
  config = load_config("video_tokenizer", "tiny")
  config.mesh.shape = (1, 1, 1)
  return config


@pytest.fixture
def tiny_audio_config():
  """The tiny audio tokenizer config on a one-device mesh."""
  config = load_config("audio_tokenizer", "tiny")
  config.mesh.shape = (1, 1, 1)
  return config
