"""The unified vocabulary: one object that owns every id range (VideoPoet appendix A.5.1).

Layout of global ids, in order:
  [0, reserved)                          special tokens, then one task token per task, then unused
  [video_base, video_base + V)           video ids (V = 2^code_bits of the video tokenizer)
  [audio_base, audio_base + L * K)       audio: level l, code c -> audio_base + l * K + c (disjoint levels)
  [text_base, text_base + T)             text pieces (the sentencepiece model's vocabulary)

No other module writes a literal id: they ask this object. Audio sequences are laid out level-major (all
frames of level 0, then level 1, ...), as VideoPoet found best.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

# VideoPoet's special tokens (Table 4), plus padding, a mask token for COMMIT-style conditioning, a
# duration token and `<emb>`, the placeholder at positions that an external text embedding fills. Their
# order fixes their ids: append, never reorder.
SPECIAL_TOKENS = (
  "<pad>",
  "<bos>",
  "<task>",
  "<bot_i>",
  "<eot_i>",
  "<bov_i>",
  "<eov_i>",
  "<boa_i>",
  "<eoa_i>",
  "<source>",
  "<res>",
  "<bov_o>",
  "<eov_o>",
  "<boa_o>",
  "<eoa_o>",
  "<eos>",
  "<mask>",
  "<dur>",
  "<emb>",
)
# Ids reserved for special and task tokens before the first media id (VideoPoet reserves 256).
RESERVED_IDS = 256


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Id ranges of one model. Sizes come from the tokenizers' configs (`from_configs`)."""

  video_size: int
  audio_levels: int
  audio_codebook_size: int
  text_size: int
  task_names: tuple[str, ...]
  reserved: int = RESERVED_IDS

  def __post_init__(self):
    if len(SPECIAL_TOKENS) + len(self.task_names) > self.reserved:
      raise ValueError(
        f"{len(SPECIAL_TOKENS)} special + {len(self.task_names)} task tokens do not fit {self.reserved} ids"
      )
    if len(set(self.task_names)) != len(self.task_names):
      raise ValueError(f"task names repeat: {self.task_names}")
    for name in ("video_size", "audio_levels", "audio_codebook_size", "text_size"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

  @classmethod
  def from_configs(
    cls,
    video_model: ml_collections.ConfigDict,
    audio_model: ml_collections.ConfigDict | None,
    text_size: int,
    task_names: tuple[str, ...],
  ) -> Vocabulary:
    """From the video tokenizer's and audio tokenizer's `model` config sections (audio may be absent)."""
    return cls(
      video_size=2**video_model.code_bits,
      audio_levels=audio_model.levels if audio_model is not None else 0,
      audio_codebook_size=audio_model.codebook_size if audio_model is not None else 0,
      text_size=text_size,
      task_names=tuple(task_names),
    )

  # Range starts and the total size.
  @property
  def video_base(self) -> int:
    return self.reserved

  @property
  def audio_base(self) -> int:
    return self.video_base + self.video_size

  @property
  def audio_size(self) -> int:
    return self.audio_levels * self.audio_codebook_size

  @property
  def text_base(self) -> int:
    return self.audio_base + self.audio_size

  @property
  def size(self) -> int:
    return self.text_base + self.text_size

  def ranges(self) -> dict[str, tuple[int, int]]:
    """`{name: (start, stop)}` for special, task, video, audio and text ids."""
    tasks_start = len(SPECIAL_TOKENS)
    return {
      "special": (0, tasks_start),
      "task": (tasks_start, tasks_start + len(self.task_names)),
      "video": (self.video_base, self.audio_base),
      "audio": (self.audio_base, self.text_base),
      "text": (self.text_base, self.size),
    }

  def video_cell_ranges(self) -> tuple[tuple[int, int], ...]:
    """`[start, stop)` ranges of the ids that fill a latent frame's cells in a sequence: video ids, and the
    `<mask>` that stands for a masked video id (the LM's `model.video_cell_ids`)."""
    mask = self.special("<mask>")
    return (self.ranges()["video"], (mask, mask + 1))

  # Special and task tokens.
  def special(self, name: str) -> int:
    """Id of special token `name`, e.g. "<bos>"."""
    if name not in SPECIAL_TOKENS:
      raise KeyError(f"unknown special token {name!r}; known: {', '.join(SPECIAL_TOKENS)}")
    return SPECIAL_TOKENS.index(name)

  def task(self, name: str) -> int:
    """Id of the task token of task `name`."""
    if name not in self.task_names:
      raise KeyError(f"unknown task {name!r}; known: {', '.join(self.task_names)}")
    return len(SPECIAL_TOKENS) + self.task_names.index(name)

  # Modality-local ids <-> global ids.
  def video_to_global(self, ids: np.ndarray) -> np.ndarray:
    """Video ids in [0, video_size) (any shape) -> global ids."""
    return _offset(ids, self.video_base, self.video_size, "video")

  def global_to_video(self, tokens: np.ndarray) -> np.ndarray:
    return _offset(tokens, -self.video_base, self.video_size, "video", local=False)

  def audio_to_global(self, ids: np.ndarray) -> np.ndarray:
    """Audio ids `[..., L, F]` (level l in [0, K)) -> level-major global ids `[..., L * F]`."""
    ids = np.asarray(ids)
    if ids.ndim < 2 or ids.shape[-2] > self.audio_levels:
      raise ValueError(f"audio ids must be [..., 1..{self.audio_levels} levels, frames], got {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= self.audio_codebook_size):
      raise ValueError(f"audio ids must lie in [0, {self.audio_codebook_size})")
    levels = np.arange(ids.shape[-2])[:, None] * self.audio_codebook_size
    return (self.audio_base + levels + ids).reshape(*ids.shape[:-2], -1)

  def global_to_audio(self, tokens: np.ndarray, levels: int) -> np.ndarray:
    """Level-major global audio ids `[..., levels * F]` -> `[..., levels, F]` ids in [0, K)."""
    tokens = np.asarray(tokens)
    if tokens.shape[-1] % levels:
      raise ValueError(f"{tokens.shape[-1]} audio tokens do not split into {levels} levels")
    ids = tokens.reshape(*tokens.shape[:-1], levels, -1) - self.audio_base
    offsets = np.arange(levels)[:, None] * self.audio_codebook_size
    if ids.size and ((ids < offsets).any() or (ids >= offsets + self.audio_codebook_size).any()):
      raise ValueError("tokens are not level-major audio ids of this vocabulary")
    return ids - offsets

  def text_to_global(self, ids: np.ndarray) -> np.ndarray:
    """Text piece ids in [0, text_size) -> global ids."""
    return _offset(ids, self.text_base, self.text_size, "text")

  def global_to_text(self, tokens: np.ndarray) -> np.ndarray:
    return _offset(tokens, -self.text_base, self.text_size, "text", local=False)

  def modality(self, tokens: np.ndarray) -> np.ndarray:
    """Global ids (any shape) -> the index of their range in `ranges()` order (special=0 ... text=4)."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= self.size):
      raise ValueError(f"global ids must lie in [0, {self.size})")
    starts = np.array([start for start, _ in self.ranges().values()])
    # Unused reserved ids (after the task tokens) count as task-range neighbours: map them to "task".
    return np.searchsorted(starts, tokens, side="right") - 1


def _offset(ids: np.ndarray, shift: int, size: int, name: str, local: bool = True) -> np.ndarray:
  """Adds `shift` after checking the ids lie in their range ([0, size) locally, or the global range)."""
  ids = np.asarray(ids)
  low = 0 if local else -shift
  if ids.size and (ids.min() < low or ids.max() >= low + size):
    raise ValueError(f"{name} ids must lie in [{low}, {low + size})")
  return ids + shift
