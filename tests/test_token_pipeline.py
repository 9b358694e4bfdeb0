"""grain pipeline over token shards: batches, collation, and checkpointable iterator state."""

import numpy as np
import orbax.checkpoint as ocp
import pytest

from videopoet_jax.data import shapes_world_dataset, token_pipeline, token_shards

NUM_EXAMPLES = 23
BATCH = 4
# Batches read before the "interruption", and after it (spans the epoch boundary at 23 // 4 batches).
BEFORE, AFTER = 3, 6


def _record(i):
  rng = np.random.default_rng(i)
  return {
    "index": i,
    "caption": f"clip {i}",
    "video": rng.integers(0, 2**14, (5, 8, 8), dtype=np.int32),
    "text": np.arange(1 + i % 5, dtype=np.int32) + 2,
  }


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  out = tmp_path_factory.mktemp("tokens")
  records = [_record(i) for i in range(NUM_EXAMPLES)]
  for shard, start in enumerate(range(0, NUM_EXAMPLES, 10)):
    token_shards.write_shard(
      token_shards.shard_path(str(out), "train", shard, 3), records[start : start + 10]
    )
  return str(out)


def _dataset(shards, seed=0):
  return token_pipeline.token_dataset(shards, "train", seed=seed, batch_size=BATCH, read_threads=2)


def _indices(batches):
  return [b["index"].tolist() for b in batches]


def test_batches_cover_each_epoch_once_reshuffled(shards):
  it = iter(_dataset(shards))
  per_epoch = NUM_EXAMPLES // BATCH
  first = [next(it) for _ in range(per_epoch)]
  second = [next(it) for _ in range(per_epoch)]
  seen = [i for b in _indices(first) for i in b]
  assert len(set(seen)) == len(seen) == per_epoch * BATCH
  assert _indices(first) != _indices(second)  # each epoch has its own order
  assert _indices(first) != _indices([next(iter(_dataset(shards, seed=1)))] + first[1:])
  batch = first[0]
  assert batch["video"].shape == (BATCH, 5, 8, 8) and batch["video"].dtype == np.int32
  for row, index in enumerate(batch["index"]):
    expected = _record(int(index))
    np.testing.assert_array_equal(batch["video"][row], expected["video"])
    length = batch["text_length"][row]
    np.testing.assert_array_equal(batch["text"][row, :length], expected["text"])
    assert (batch["text"][row, length:] == token_pipeline.PAD_VALUE).all()
    assert batch["caption"][row] == expected["caption"]


def test_state_restore_mid_epoch_sees_the_same_batches(shards, tmp_path):
  uninterrupted = iter(_dataset(shards))
  reference = [next(uninterrupted) for _ in range(BEFORE + AFTER)]

  # Interrupted run: read BEFORE batches, checkpoint the iterator with orbax, "crash".
  it = iter(_dataset(shards))
  for _ in range(BEFORE):
    next(it)
  with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",)) as manager:
    manager.save(BEFORE, args=ocp.args.Composite(data=token_pipeline.checkpoint_args(it)))
    manager.wait_until_finished()
  del it

  # Restarted run: a fresh pipeline restored from the checkpoint.
  restored = iter(_dataset(shards))
  with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",)) as manager:
    step = manager.latest_step()
    manager.restore(
      step, args=ocp.args.Composite(data=token_pipeline.checkpoint_args(restored, restore=True))
    )
  assert step == BEFORE
  after = [next(restored) for _ in range(AFTER)]
  assert _indices(after) == _indices(reference[BEFORE:])
  for a, b in zip(after, reference[BEFORE:], strict=True):
    np.testing.assert_array_equal(a["video"], b["video"])


def test_get_state_set_state(shards):
  it = iter(_dataset(shards))
  next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(2)]
  other = iter(_dataset(shards))
  other.set_state(state)
  assert _indices([next(other) for _ in range(2)]) == _indices(expected)


def test_pipeline_over_a_tfds_source(tmp_path):
  builder = shapes_world_dataset.make_builder(
    "default", str(tmp_path), num_train=6, num_validation=1, num_test=1
  )
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  dataset = token_pipeline.make_dataset(source, seed=0, batch_size=3, num_epochs=1)
  batches = list(dataset)
  assert len(batches) == 2 and batches[0]["video"].shape == (3, 17, 64, 64, 3)
  assert sorted(int(s) for b in batches for s in b["seed"]) == list(range(6))


def test_missing_shards_fail(tmp_path):
  with pytest.raises(FileNotFoundError, match="no token shards"):
    token_pipeline.token_dataset(str(tmp_path), "train", seed=0)
