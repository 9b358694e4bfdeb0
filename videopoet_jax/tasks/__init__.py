"""Tasks: the registry (registry.py), sequences (sequence.py) and the training mixture (mixture.py)."""

import ml_collections

from videopoet_jax.tasks import registry
from videopoet_jax.vocab import Vocabulary


def vocabulary(config: ml_collections.ConfigDict) -> Vocabulary:
  """The unified vocabulary of an LM config (its `vocab` section, the registry's task tokens)."""
  return Vocabulary(
    video_size=2**config.vocab.video_bits,
    audio_levels=config.vocab.audio_levels,
    audio_codebook_size=config.vocab.audio_codebook_size,
    text_size=config.vocab.text_size,
    task_names=registry.TASK_NAMES,
  )
