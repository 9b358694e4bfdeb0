import numpy as np
import pytest

from videopoet_jax import vocab
from videopoet_jax.vocab import Vocabulary

from conftest import load_config

TASKS = ("text_to_video", "image_to_video", "video_to_audio")


def _demo_vocab(text_size=500):
  return Vocabulary.from_configs(
    load_config("video_tokenizer", "demo").model,
    load_config("audio_tokenizer", "demo").model,
    text_size,
    TASKS,
  )


def test_videopoet_sizes():
  paper = Vocabulary.from_configs(
    load_config("video_tokenizer", "paper").model,
    load_config("audio_tokenizer", "paper").model,
    33_560,
    TASKS,
  )
  assert (paper.video_base, paper.audio_base) == (256, 256 + 2**18)
  assert paper.audio_size == 4096 and paper.text_base == 256 + 2**18 + 4096
  assert paper.size == 256 + 2**18 + 4096 + 33_560


def test_ranges_tile_the_id_space_without_overlap():
  v = _demo_vocab()
  ranges = v.ranges()
  assert ranges["special"] == (0, len(vocab.SPECIAL_TOKENS))
  assert ranges["task"][1] <= v.reserved == ranges["video"][0]
  ordered = [ranges[k] for k in ("video", "audio", "text")]
  assert [a[1] for a in ordered[:-1]] == [b[0] for b in ordered[1:]] and ordered[-1][1] == v.size
  ids = [v.special(s) for s in vocab.SPECIAL_TOKENS] + [v.task(t) for t in TASKS]
  assert len(set(ids)) == len(ids) and max(ids) < v.reserved


def test_round_trips_and_level_major_audio():
  v = _demo_vocab()
  rng = np.random.default_rng(0)
  video = rng.integers(0, v.video_size, (5, 8, 8))
  np.testing.assert_array_equal(v.global_to_video(v.video_to_global(video)), video)
  audio = rng.integers(0, v.audio_codebook_size, (2, 4, 106))
  tokens = v.audio_to_global(audio)
  assert tokens.shape == (2, 4 * 106)
  # Level-major: the first 106 tokens are level 0, the next 106 level 1, each level in its own range.
  np.testing.assert_array_equal(tokens[:, :106], v.audio_base + audio[:, 0])
  np.testing.assert_array_equal(tokens[:, 106:212], v.audio_base + v.audio_codebook_size + audio[:, 1])
  np.testing.assert_array_equal(v.global_to_audio(tokens, 4), audio)
  text = rng.integers(0, v.text_size, 12)
  np.testing.assert_array_equal(v.global_to_text(v.text_to_global(text)), text)
  kinds = v.modality(
    np.concatenate(
      [
        [v.special("<bos>"), v.task("image_to_video")],
        v.video_to_global(video[0, 0]),
        tokens[0, :3],
        v.text_to_global(text[:2]),
      ]
    )
  )
  np.testing.assert_array_equal(kinds, [0, 1] + [2] * 8 + [3] * 3 + [4] * 2)


def test_bad_ids_and_names_raise():
  v = _demo_vocab()
  with pytest.raises(ValueError, match="video ids"):
    v.video_to_global(np.array([v.video_size]))
  with pytest.raises(ValueError, match="video ids"):
    v.global_to_video(np.array([v.audio_base]))  # an audio token is not a video token
  with pytest.raises(ValueError, match="audio ids"):
    v.audio_to_global(np.zeros((5, 3), np.int64))  # 5 levels > 4
  with pytest.raises(ValueError, match="level-major"):
    v.global_to_audio(v.audio_to_global(np.zeros((4, 3), np.int64))[::-1], 4)  # levels out of order
  with pytest.raises(KeyError, match="unknown special token"):
    v.special("<bov>")
  with pytest.raises(KeyError, match="unknown task"):
    v.task("text_to_music")
  with pytest.raises(ValueError, match="do not fit"):
    Vocabulary(16, 0, 0, 0, tuple(f"t{i}" for i in range(300)))
  with pytest.raises(ValueError, match="repeat"):
    Vocabulary(16, 0, 0, 0, ("a", "a"))


def test_without_audio_the_text_follows_video():
  v = Vocabulary.from_configs(load_config("video_tokenizer", "tiny").model, None, 10, TASKS)
  assert v.audio_size == 0 and v.text_base == v.audio_base == v.video_base + 2**8
  assert v.modality(np.array([v.text_base])) == [4]
