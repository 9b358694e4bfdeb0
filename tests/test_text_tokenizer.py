"""The sentencepiece text tokenizer trained on shapes_world captions."""

import pytest

from videopoet_jax.data import shapes_world
from videopoet_jax.tokenizers import text


def test_trains_deterministically_and_round_trips(tmp_path):
  captions = [shapes_world.render(seed)["caption"] for seed in range(200)]
  text.train(captions, str(tmp_path / "a.model"))
  text.train(captions, str(tmp_path / "b.model"))
  assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
  tokenizer = text.TextTokenizer(str(tmp_path / "a.model"))
  for caption in captions[:20]:
    ids = tokenizer.encode(caption)
    assert tokenizer.decode(ids) == caption
    assert len(ids) == len(caption.split())  # the closed grammar's words are whole pieces
    assert ids.min() > text.UNK_ID and ids.max() < tokenizer.vocab_size


def test_no_captions_fails(tmp_path):
  with pytest.raises(ValueError, match="no captions"):
    text.train(["", "  "], str(tmp_path / "m.model"))
