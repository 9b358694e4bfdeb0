"""The text tokenizer: a sentencepiece model trained on a dataset's captions.

Ids are sentencepiece's own (0 = pad, 1 = unk); the LM's vocabulary object maps them into its global
id range and adds its own begin/end tokens, so the model has no bos/eos of its own.
"""

from __future__ import annotations

import io

import numpy as np
import sentencepiece as spm

DEFAULT_VOCAB_SIZE = 512
PAD_ID = 0
UNK_ID = 1


def train(captions: list[str], path: str, vocab_size: int = DEFAULT_VOCAB_SIZE) -> None:
  """Trains a BPE model on `captions` and writes it to `path` (deterministic: one thread)."""
  captions = [c for c in captions if c.strip()]
  if not captions:
    raise ValueError("cannot train a text tokenizer: the dataset has no captions")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(captions),
    model_writer=model,
    vocab_size=vocab_size,
    hard_vocab_limit=False,  # small caption sets have fewer pieces than vocab_size
    model_type="bpe",  # on a closed caption grammar BPE merges up to whole words; unigram keeps fragments
    character_coverage=1.0,
    pad_id=PAD_ID,
    unk_id=UNK_ID,
    bos_id=-1,
    eos_id=-1,
    num_threads=1,
    minloglevel=2,
  )
  with open(path, "wb") as f:
    f.write(model.getvalue())


class TextTokenizer:
  """`encode(text) -> [L] int32 ids`, `decode(ids) -> text`, `vocab_size`."""

  def __init__(self, path: str):
    self.processor = spm.SentencePieceProcessor(model_file=path)

  @property
  def vocab_size(self) -> int:
    return self.processor.get_piece_size()

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self.processor.encode(text), np.int32)

  def encode_batch(self, texts: list[str | None], length: int) -> np.ndarray:
    """`[N, length]` int32 ids of each text, cut or padded with PAD_ID (None or "": all padding)."""
    out = np.full((len(texts), length), PAD_ID, np.int32)
    for row, piece_text in zip(out, texts, strict=True):
      ids = self.encode(piece_text or "")[:length]
      row[: len(ids)] = ids
    return out

  def decode(self, ids) -> str:
    return self.processor.decode([int(i) for i in ids])
