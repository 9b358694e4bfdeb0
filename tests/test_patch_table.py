"""The patch table video tokenizer (configs/video_tokenizer.py:world_table): exact on its own patches,
causal, an image is the first latent frame, the most frequent patches kept, export/load, bad geometry."""

import jax.numpy as jnp
import numpy as np
import pytest

from videopoet_jax.data import media, tokenizer_clips
from videopoet_jax.tokenizers import patch_table, pretrained
from videopoet_jax.training import patch_table as patch_table_training


@pytest.fixture
def table_config(tiny_video_config):
  """16x16 clips of 5 frames -> 2 x 2 x 2 ids of 8 bits (256 rows per table), built from 4 clips."""
  config = tiny_video_config
  config.model.kind = patch_table.KIND
  config.model.patch_size = 8
  config.model.spatial_downsample = (False, False)
  config.data.num_clips = 4
  return config


@pytest.fixture
def built(table_config, tmp_path):
  return patch_table_training.build(table_config, str(tmp_path)), tmp_path


def _clips(config, seeds) -> np.ndarray:
  return np.stack([tokenizer_clips.procedural_clip(s, config.data.frames, config.data.size) for s in seeds])


def test_the_clips_a_table_was_built_from_come_back_exactly(table_config, built):
  tokenizer, _ = built
  clips = patch_table_training.render_clips(table_config.data)
  ids = tokenizer.encode(media.to_model_range(clips))
  assert ids.shape == (4, 2, 2, 2)
  np.testing.assert_array_equal(media.from_model_range(tokenizer.decode(ids)), clips)


def test_encoding_is_causal_and_an_image_is_the_first_latent_frame(table_config, built):
  tokenizer, _ = built
  clips = media.to_model_range(_clips(table_config, [11, 12]))
  ids = np.asarray(tokenizer.encode(clips))
  changed = np.concatenate([clips[:, :1], clips[::-1, 1:]], axis=1)  # each clip's later frames swapped
  other = np.asarray(tokenizer.encode(changed))
  np.testing.assert_array_equal(other[:, 0], ids[:, 0])
  assert not np.array_equal(other[:, 1:], ids[:, 1:])
  np.testing.assert_array_equal(np.asarray(tokenizer.encode(clips[:, :1])), ids[:, :1])
  assert tokenizer.decode(ids[:, :1]).shape == (2, 1, 16, 16, 3)


def test_the_table_keeps_the_most_frequent_rows_and_pads_with_the_first():
  rows = np.array([[1, 1], [2, 2], [2, 2], [3, 3], [2, 2], [3, 3]], np.uint8)
  table, distinct = patch_table.most_frequent_rows(rows, 2)
  assert distinct == 3
  np.testing.assert_array_equal(table, [[2, 2], [3, 3]])
  table, _ = patch_table.most_frequent_rows(rows, 5)
  np.testing.assert_array_equal(table[3:], [[2, 2], [2, 2]])
  # A padded copy of row 0 is never the nearest row: ties go to the first.
  np.testing.assert_array_equal(patch_table.nearest_rows(np.array([[2.0, 2.0], [1.2, 0.9]]), table), [0, 2])


@pytest.mark.parametrize("exact_share", [1.0, 0.9, 0.0])
def test_lookup_finds_the_nearest_row_whether_few_or_all_queries_are_table_rows(exact_share):
  """The hash lookup with its miss search (few misses) or the full search (many) equals `nearest_rows`,
  ties to the first row included (the table pads with copies of row 0)."""
  rng = np.random.default_rng(0)
  table = np.concatenate([rng.integers(0, 256, (40, 12)), np.zeros((8, 12))]).astype(np.uint8)
  table[41:] = table[0]
  queries = rng.integers(0, 256, (200, 12)).astype(np.float32)
  exact = rng.random(200) < exact_share
  queries[exact] = table[rng.integers(0, 48, exact.sum())]
  found = np.asarray(patch_table.lookup_rows(queries, table))
  np.testing.assert_array_equal(found, patch_table.nearest_rows(queries, table))
  assert np.all(found < 41)


@pytest.mark.parametrize("coarse_hash", [False, True])
@pytest.mark.parametrize("absent", [5, 40])
def test_repeated_queries_look_up_as_the_search_even_when_hashes_collide(absent, coarse_hash, monkeypatch):
  """Few distinct queries (each looked up once, then spread back), few or most of them absent from the
  table (their misses searched, or all of them), give `nearest_rows`' ids; with a hash that collides often
  (distinct queries share one), the lookup falls back to every query and is still exact."""
  if coarse_hash:
    monkeypatch.setattr(patch_table, "row_hashes", lambda rows: jnp.sum(rows.astype(jnp.uint32), -1) % 4)
  rng = np.random.default_rng(1)
  table = rng.integers(0, 256, (40, 12)).astype(np.uint8)
  pool = np.concatenate([table[:2], rng.integers(0, 256, (absent, 12))]).astype(np.float32)
  queries = pool[rng.integers(0, len(pool), 300)]
  assert len(np.unique(queries, axis=0)) <= patch_table.DISTINCT_BUDGET * len(queries)
  found = np.asarray(patch_table.lookup_rows(queries.reshape(3, 100, 12), table))
  np.testing.assert_array_equal(found.reshape(-1), patch_table.nearest_rows(queries, table))


def test_an_export_loads_back_and_a_second_build_keeps_it(table_config, built):
  tokenizer, workdir = built
  loaded, config = pretrained.load_video_tokenizer(str(workdir))
  assert isinstance(loaded, patch_table.PatchTableTokenizer) and config.model.kind == patch_table.KIND
  clips = media.to_model_range(_clips(table_config, [21, 22]))
  np.testing.assert_array_equal(np.asarray(loaded.encode(clips)), np.asarray(tokenizer.encode(clips)))
  table_config.data.num_clips = 1  # ignored: the finished export is kept
  again = patch_table_training.build(table_config, str(workdir))
  np.testing.assert_array_equal(np.asarray(again.first.value), np.asarray(tokenizer.first.value))


def test_a_table_refuses_strided_downsampling(table_config):
  table_config.model.spatial_downsample = (True, False)
  with pytest.raises(ValueError, match="takes its patches whole"):
    patch_table.PatchTableTokenizer(table_config.model)
