import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet_jax.training import checkpoints
from videopoet_jax.training import video_tokenizer as trainer_lib


def test_save_restore_is_bitwise(tiny_video_config, tmp_path):
  trainer = trainer_lib.Trainer(tiny_video_config)
  state = trainer.init()
  state, _ = trainer.step_fn(
    state,
    trainer.put_batch(
      np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (8, 5, 16, 16, 3), minval=-1, maxval=1))
    ),
  )
  saved = jax.device_get(state)
  manager = checkpoints.make_manager(str(tmp_path), keep=2)
  checkpoints.save(manager, 1, state, tiny_video_config)
  manager.wait_until_finished()
  restored, step = checkpoints.restore(
    checkpoints.make_manager(str(tmp_path), keep=2), trainer.abstract_state, tiny_video_config
  )
  assert step == 1
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(restored), strict=True):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  assert (
    restored.params["encoder"]["conv_in"]["conv"]["kernel"].sharding
    == trainer.abstract_state.params["encoder"]["conv_in"]["conv"]["kernel"].sharding
  )


def test_keeps_last_n(tmp_path, tiny_video_config):
  manager = checkpoints.make_manager(str(tmp_path), keep=2)
  for step in range(1, 5):
    checkpoints.save(manager, step, {"x": jnp.full((3,), step)}, tiny_video_config)
  manager.wait_until_finished()
  assert list(manager.all_steps()) == [3, 4]


def test_architecture_mismatch_is_a_readable_error(tmp_path, tiny_video_config):
  manager = checkpoints.make_manager(str(tmp_path), keep=1)
  checkpoints.save(manager, 1, {"x": jnp.zeros(3)}, tiny_video_config)
  manager.wait_until_finished()
  changed = tiny_video_config.copy_and_resolve_references()
  changed.model.base_channels = 16
  changed.train.steps = 999  # not architecture: allowed
  with pytest.raises(ValueError, match=r"model\.base_channels: 8 -> 16"):
    checkpoints.restore(manager, {"x": jax.ShapeDtypeStruct((3,), jnp.float32)}, changed)


def test_an_export_copied_in_bfloat16_loads_as_the_rounded_float32_weights(tiny_video_config, tmp_path):
  from flax import nnx

  from videopoet_jax.tokenizers import pretrained
  from videopoet_jax.tokenizers.video import VideoTokenizer

  module = VideoTokenizer(tiny_video_config.model, rngs=nnx.Rngs(0))
  exported = nnx.state(module, pretrained.EXPORTED_VARIABLES)
  pretrained.export(str(tmp_path / "fp32"), exported, tiny_video_config)
  (tmp_path / "fp32" / "MODEL_CARD.md").write_text("card")
  pretrained.copy_export(str(tmp_path / "fp32"), str(tmp_path / "bf16"), "bfloat16")
  assert (tmp_path / "bf16" / "MODEL_CARD.md").read_text() == "card"
  size = lambda p: sum(f.stat().st_size for f in (p / "params").rglob("*") if f.is_file())
  assert size(tmp_path / "bf16") < 0.7 * size(tmp_path / "fp32")
  loaded, _ = pretrained.load_video_tokenizer(str(tmp_path / "bf16"))
  original = jax.tree.leaves(exported)
  restored = jax.tree.leaves(nnx.state(loaded, pretrained.EXPORTED_VARIABLES))
  for a, b in zip(original, restored, strict=True):
    assert b.dtype == a.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(a.astype(jnp.bfloat16).astype(jnp.float32)), np.asarray(b))
  assert any(not np.array_equal(a, b) for a, b in zip(original, restored, strict=True))
  # Nested exports: a model's tokenizers keep their float32, its SR stage takes the model's dtype.
  import shutil

  for name in (pretrained.TOKENIZER_SUBDIRS[0], pretrained.SR_SUBDIR):
    shutil.copytree(tmp_path / "fp32", tmp_path / "model" / name)
  pretrained.export(str(tmp_path / "model"), exported, tiny_video_config)
  pretrained.copy_export(str(tmp_path / "model"), str(tmp_path / "model_bf16"), "bfloat16")
  copied = tmp_path / "model_bf16"
  assert size(copied / pretrained.TOKENIZER_SUBDIRS[0]) > 0.95 * size(tmp_path / "fp32")
  assert size(copied / pretrained.SR_SUBDIR) < 0.7 * size(tmp_path / "fp32")
  with pytest.raises(FileNotFoundError):
    pretrained.copy_export(str(tmp_path / "nothing"), str(tmp_path / "out"))
