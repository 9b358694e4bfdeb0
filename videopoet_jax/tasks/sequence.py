"""Task + an example's token streams -> one sequence (tokens, loss mask, prefix length, segment ids).

Streams are the token-shard record's arrays (videopoet_jax/data/token_shards.py): `video` `[t, h, w]`,
`audio` `[levels, frames]`, `text` `[L]` sentencepiece ids or `text_embedding` `[L, D]` floats, and the
conditioning videos `inpaint_video` / `outpaint_video` / `structure_video` `[t, h, w]`. Video ids are
flattened in raster order (t, h, w); audio level-major (all frames of level 0, then level 1, ...).
COMMIT-style conditioning: the tokens of a masked stream that cover the masked pixels (`Layout.token_masks`)
are replaced by `<mask>`, so the mask itself is in the prefix.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from videopoet_jax.tasks.registry import Part, Task
from videopoet_jax.vocab import Vocabulary

# Boundary tokens of a part: (modality, is_output) -> (begin, end).
BOUNDARIES = {
  ("text", False): ("<bot_i>", "<eot_i>"),
  ("video", False): ("<bov_i>", "<eov_i>"),
  ("audio", False): ("<boa_i>", "<eoa_i>"),
  ("video", True): ("<bov_o>", "<eov_o>"),
  ("audio", True): ("<boa_o>", "<eoa_o>"),
}
# Segment id of <bos>, <task> and the boundary tokens; the i-th part of a task (inputs, then the output)
# has segment id i + 1.
STRUCTURE_SEGMENT = 0
# `text_slots` value of positions that do not hold an external text embedding.
NO_SLOT = -1
# Stand-in for masked tokens in `parse`'s result.
MASKED = -1


@dataclasses.dataclass(frozen=True)
class Layout:
  """How many tokens each stream has in one model (from the LM config's `layout` section)."""

  latent_shape: tuple[int, int, int]  # video ids per clip (t, h, w)
  audio_levels: int
  audio_frames: int
  text_budget: int  # text tokens at most; longer captions are cut
  context_frames: int  # latent frames conditioning a continuation
  token_masks: dict = dataclasses.field(default_factory=dict)  # stream -> [h, w] bool (True = masked)

  @classmethod
  def from_config(cls, layout: ml_collections.ConfigDict, token_masks: dict | None = None) -> Layout:
    return cls(
      latent_shape=tuple(layout.latent_shape),
      audio_levels=layout.audio_levels,
      audio_frames=layout.audio_frames,
      text_budget=layout.text_budget,
      context_frames=layout.context_frames,
      token_masks={k: np.asarray(v, bool) for k, v in (token_masks or {}).items()},
    )

  def frame_range(self, frames: str) -> tuple[int, int]:
    """Latent frame `(start, stop)` of a video part's `frames` selection."""
    t = self.latent_shape[0]
    return {
      "all": (0, t),
      "first": (0, 1),
      "context": (0, self.context_frames),
      "after_first": (1, t),
      "after_context": (self.context_frames, t),
    }[frames]

  def part_length(self, part: Part) -> int:
    """Tokens of `part` between its boundary tokens (text: the budget, i.e. at most)."""
    if part.modality == "text":
      return self.text_budget
    if part.modality == "audio":
      return self.audio_levels * self.audio_frames
    start, stop = self.frame_range(part.frames)
    return (stop - start) * self.latent_shape[1] * self.latent_shape[2]


@dataclasses.dataclass
class Sequence:
  """One example's sequence; every array is `[S]`."""

  tokens: np.ndarray  # int32 global ids
  loss_mask: np.ndarray  # bool: the output tokens (what is predicted)
  prefix_length: int  # positions [0, prefix_length) are the bidirectional prefix
  segment_ids: np.ndarray  # int32: STRUCTURE_SEGMENT or 1 + part index (inputs, then output)
  text_slots: np.ndarray  # int32: row of the example's text embedding at this position, or NO_SLOT
  text_embedding: np.ndarray | None = None  # [L, D] float32 when the text part is an external embedding
  # float32: each position's weight in the training loss (None: the loss mask's)
  loss_weight: np.ndarray | None = None


def output_length(task: Task, layout: Layout) -> int:
  """The positions the loss covers in `task`'s sequences: its output ids, and when the task is closed its
  end token and <eos>."""
  return layout.part_length(task.output) + (2 if task.closed else 0)


def max_length(task: Task, layout: Layout) -> int:
  """The longest sequence `task` makes under `layout` (full text budget, nothing dropped)."""
  length = 2  # <bos> <task>
  for part in task.inputs:
    length += layout.part_length(part) + 2
  return length + 1 + output_length(task, layout)  # output begin token, then what the loss covers


def _part_ids(part: Part, record: dict, vocab: Vocabulary, layout: Layout) -> tuple[np.ndarray, int]:
  """Global ids of `part` `[n]` and how many leading text-embedding rows it uses (0 unless embedded)."""
  if part.modality == "text":
    if "text_embedding" in record:  # the caption's precomputed embedding stands for every text stream
      rows = min(len(record["text_embedding"]), layout.text_budget)
      return np.full(rows, vocab.special("<emb>"), np.int32), rows
    text = np.asarray(record[part.stream])[: layout.text_budget]
    return vocab.text_to_global(text).astype(np.int32), 0
  if part.modality == "audio":
    audio = np.asarray(record["audio"])
    expected = (layout.audio_levels, layout.audio_frames)
    if audio.shape != expected:
      raise ValueError(f"audio ids are {audio.shape}, the layout expects {expected}")
    return vocab.audio_to_global(audio).astype(np.int32), 0
  video = np.asarray(record[part.stream])
  if video.shape != tuple(layout.latent_shape):
    raise ValueError(f"{part.stream} ids are {video.shape}, the layout expects {tuple(layout.latent_shape)}")
  start, stop = layout.frame_range(part.frames)
  ids = vocab.video_to_global(video[start:stop])
  if part.stream in layout.token_masks:
    ids = np.where(layout.token_masks[part.stream][None], vocab.special("<mask>"), ids)
  return ids.reshape(-1).astype(np.int32), 0


def build_prefix(
  task: Task, record: dict, vocab: Vocabulary, layout: Layout, drop: tuple[str, ...] = ()
) -> Sequence:
  """The prefix of `task` on `record` (its input streams only), ending with the output's begin token:
  what sampling feeds the model. `drop`: input streams left out (guidance dropout, optional inputs)."""
  tokens = [vocab.special("<bos>"), vocab.task(task.name)]
  segments = [STRUCTURE_SEGMENT] * 2
  text_slots = [NO_SLOT] * 2
  embedding = None
  for index, part in enumerate(task.inputs):
    if part.stream in drop:
      continue
    begin, end = BOUNDARIES[(part.modality, False)]
    ids, embedded = _part_ids(part, record, vocab, layout)
    if embedded:
      embedding = np.asarray(record["text_embedding"][:embedded], np.float32)
    tokens += [vocab.special(begin), *ids.tolist(), vocab.special(end)]
    segments += [STRUCTURE_SEGMENT, *[index + 1] * len(ids), STRUCTURE_SEGMENT]
    text_slots += [NO_SLOT, *(range(embedded) if embedded else [NO_SLOT] * len(ids)), NO_SLOT]
  tokens.append(vocab.special(BOUNDARIES[(task.output.modality, True)][0]))
  segments.append(STRUCTURE_SEGMENT)
  text_slots.append(NO_SLOT)
  return Sequence(
    tokens=np.asarray(tokens, np.int32),
    loss_mask=np.zeros(len(tokens), bool),
    prefix_length=len(tokens),
    segment_ids=np.asarray(segments, np.int32),
    text_slots=np.asarray(text_slots, np.int32),
    text_embedding=embedding,
  )


def build(
  task: Task,
  record: dict,
  vocab: Vocabulary,
  layout: Layout,
  drop: tuple[str, ...] = (),
  output_weights: np.ndarray | None = None,
) -> Sequence:
  """The training sequence of `task` on `record`: `build_prefix`, then the output ids (and, when the task
  is closed, its end token and <eos>), which the loss mask covers. `output_weights` (`[part_length(output)]`
  float32) weigh the output ids in the training loss (`loss_weight`; the end tokens weigh 1)."""
  prefix = build_prefix(task, record, vocab, layout, drop)
  output = _part_ids(task.output, record, vocab, layout)[0]
  loss_weight = None
  if output_weights is not None:
    if len(output_weights) != len(output):
      raise ValueError(f"{len(output_weights)} output weights for {len(output)} output ids of {task.name}")
    ends = 2 if task.closed else 0
    loss_weight = np.concatenate([np.zeros(prefix.prefix_length), output_weights, np.ones(ends)]).astype(
      np.float32
    )
  if task.closed:
    end = BOUNDARIES[(task.output.modality, True)][1]
    output = np.concatenate([output, [vocab.special(end), vocab.special("<eos>")]]).astype(np.int32)
  structure = np.full(len(output), STRUCTURE_SEGMENT, np.int32)
  structure[: layout.part_length(task.output)] = len(task.inputs) + 1
  return Sequence(
    tokens=np.concatenate([prefix.tokens, output]),
    loss_mask=np.arange(prefix.prefix_length + len(output)) >= prefix.prefix_length,
    prefix_length=prefix.prefix_length,
    segment_ids=np.concatenate([prefix.segment_ids, structure]),
    text_slots=np.concatenate([prefix.text_slots, np.full(len(output), NO_SLOT, np.int32)]),
    text_embedding=prefix.text_embedding,
    loss_weight=loss_weight,
  )


def to_local(part: Part, ids: np.ndarray, vocab: Vocabulary, layout: Layout) -> np.ndarray:
  """A part's global ids `[n]` -> its local ids: video `[frames, h, w]` (masked tokens -> MASKED), audio
  `[levels, frames]`, text `[n]` (embedding placeholders -> MASKED)."""
  ids = np.asarray(ids)
  if part.modality == "text":
    embedded = ids == vocab.special("<emb>")
    if embedded.any():
      return np.where(embedded, MASKED, ids)
    return vocab.global_to_text(ids)
  if part.modality == "audio":
    return vocab.global_to_audio(ids, layout.audio_levels)
  masked = ids == vocab.special("<mask>")
  local = vocab.global_to_video(np.where(masked, vocab.video_base, ids))
  return np.where(masked, MASKED, local).reshape(-1, *layout.latent_shape[1:])


def parse(task: Task, tokens: np.ndarray, vocab: Vocabulary, layout: Layout) -> dict[str, np.ndarray]:
  """Inverse of `build`: `[S]` tokens (trailing `<pad>` allowed) -> `{part.name: local ids}` for every part
  present (inputs and output), checking every structural token on the way."""
  tokens = [int(t) for t in np.asarray(tokens)]
  while tokens and tokens[-1] == vocab.special("<pad>"):
    tokens.pop()
  position = 0

  def expect(name: str) -> None:
    nonlocal position
    if position >= len(tokens) or tokens[position] != vocab.special(name):
      found = tokens[position] if position < len(tokens) else "the end"
      raise ValueError(f"{task.name}: expected {name} at position {position}, found {found}")
    position += 1

  def take(count: int) -> list[int]:
    nonlocal position
    if position + count > len(tokens):
      raise ValueError(f"{task.name}: sequence ends inside a part at position {len(tokens)}")
    position += count
    return tokens[position - count : position]

  expect("<bos>")
  if take(1) != [vocab.task(task.name)]:
    raise ValueError(f"{task.name}: position 1 is not this task's token")
  parts = {}
  for part in task.inputs:
    begin, end = BOUNDARIES[(part.modality, False)]
    if position < len(tokens) and tokens[position] == vocab.special(begin):
      position += 1
      if part.modality == "text":
        count = tokens.index(vocab.special(end), position) - position
      else:
        count = layout.part_length(part)
      parts[part.name] = to_local(part, take(count), vocab, layout)
      expect(end)
  begin, end = BOUNDARIES[(task.output.modality, True)]
  expect(begin)
  parts[task.output.name] = to_local(task.output, take(layout.part_length(task.output)), vocab, layout)
  if task.closed:
    expect(end)
    expect("<eos>")
  if position != len(tokens):
    raise ValueError(f"{task.name}: {len(tokens) - position} tokens after the end of the sequence")
  return parts


def output_segments(task: Task, vocab: Vocabulary, layout: Layout) -> list[tuple[int, int, int]]:
  """What may be generated after the prefix, as `(lo, hi, count)` runs of allowed global-id ranges
  `[lo, hi)`: the output ids (each RVQ level in its own range), then the forced end tokens."""
  part = task.output
  if part.modality == "audio":
    k = vocab.audio_codebook_size
    runs = [
      (vocab.audio_base + level * k, vocab.audio_base + (level + 1) * k, layout.audio_frames)
      for level in range(layout.audio_levels)
    ]
  else:
    runs = [(vocab.video_base, vocab.audio_base, layout.part_length(part))]
  if task.closed:
    _, end = BOUNDARIES[(part.modality, True)]
    runs += [(vocab.special(name), vocab.special(name) + 1, 1) for name in (end, "<eos>")]
  return runs


@dataclasses.dataclass
class Batch:
  """Sequences padded with `<pad>` to one length `S`; arrays are `[B, S]` unless noted."""

  tokens: np.ndarray  # int32
  loss_mask: np.ndarray  # bool
  prefix_length: np.ndarray  # [B] int32
  segment_ids: np.ndarray  # int32
  text_slots: np.ndarray  # int32
  task_ids: np.ndarray  # [B] int32: index in registry.TASK_NAMES
  text_embedding: np.ndarray | None  # [B, text_budget, D] float32 or None
  # float32 weights of the training loss, where any sequence has its own (the others' are their masks)
  loss_weight: np.ndarray | None = None

  def as_dict(self) -> dict[str, np.ndarray]:
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def collate(
  sequences: list[Sequence], task_ids: list[int], length: int, vocab: Vocabulary, layout: Layout
) -> Batch:
  """Pads `sequences` to `length` (<pad> tokens, no loss, no slot)."""
  batch = len(sequences)
  tokens = np.full((batch, length), vocab.special("<pad>"), np.int32)
  loss_mask = np.zeros((batch, length), bool)
  segments = np.full((batch, length), STRUCTURE_SEGMENT, np.int32)
  slots = np.full((batch, length), NO_SLOT, np.int32)
  embedded = [s.text_embedding for s in sequences if s.text_embedding is not None]
  embedding = None
  if embedded:
    embedding = np.zeros((batch, layout.text_budget, embedded[0].shape[-1]), np.float32)
  for i, seq in enumerate(sequences):
    n = len(seq.tokens)
    if n > length:
      raise ValueError(f"a sequence of {n} tokens does not fit the batch length {length}")
    tokens[i, :n], loss_mask[i, :n], segments[i, :n], slots[i, :n] = (
      seq.tokens,
      seq.loss_mask,
      seq.segment_ids,
      seq.text_slots,
    )
    if seq.text_embedding is not None:
      embedding[i, : len(seq.text_embedding)] = seq.text_embedding
  loss_weight = None
  if any(s.loss_weight is not None for s in sequences):
    loss_weight = loss_mask.astype(np.float32)
    for i, seq in enumerate(sequences):
      if seq.loss_weight is not None:
        loss_weight[i, : len(seq.loss_weight)] = seq.loss_weight
  return Batch(
    tokens=tokens,
    loss_mask=loss_mask,
    prefix_length=np.asarray([s.prefix_length for s in sequences], np.int32),
    segment_ids=segments,
    text_slots=slots,
    task_ids=np.asarray(task_ids, np.int32),
    text_embedding=embedding,
    loss_weight=loss_weight,
  )
