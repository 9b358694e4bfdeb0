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
