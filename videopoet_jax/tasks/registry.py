"""The task registry: each task is data (its prefix parts and its output part), nothing else.

A task's sequence is (videopoet_spec.md 1.5; the absent modalities and their boundary tokens are dropped):

  <bos> <task> [<bot_i> text <eot_i>] [<bov_i> video <eov_i>] [<boa_i> audio <eoa_i>] <bov_o> | output...

The prefix ends with the output's begin token (`<bov_o>` or `<boa_o>`) and is attended bidirectionally;
the output (ids, then `<eov_o>`/`<eoa_o>` and `<eos>` unless the task leaves them open) is causal and is
what the loss covers. `sequence.py` turns a task and an example's token streams into a sequence.

Each task has its own task token (the paper shares one per output type; a separate token per task costs
nothing and tells a small model which input variation it got).
"""

from __future__ import annotations

import dataclasses

# Which latent frames of a video stream a part takes: all of them, the first one (an image), the first
# `Layout.context_frames` (the condition of a continuation), or the ones after those.
FRAMES = ("all", "first", "context", "after_first", "after_context")
MODALITIES = ("text", "video", "audio")


@dataclasses.dataclass(frozen=True)
class Part:
  """One stream of an example as it enters a sequence.

  stream: the token-shard key it is read from ("text", "video", "audio", "inpaint_video", ...).
  modality: "text" | "video" | "audio" (picks the id range and the boundary tokens).
  frames: video only, which latent frames (see FRAMES).
  """

  stream: str
  modality: str
  frames: str = "all"

  def __post_init__(self):
    if self.modality not in MODALITIES:
      raise ValueError(f"unknown modality {self.modality!r}: {MODALITIES}")
    if self.frames not in FRAMES or (self.frames != "all" and self.modality != "video"):
      raise ValueError(f"frames={self.frames!r} is not valid for a {self.modality} part")

  @property
  def name(self) -> str:
    """`stream` or `stream[frames]`: the key of this part in `sequence.parse`'s result."""
    return self.stream if self.frames == "all" else f"{self.stream}[{self.frames}]"


@dataclasses.dataclass(frozen=True)
class Task:
  """A task: prefix `inputs` in order, one `output`.

  guidance_inputs: streams of `inputs` that classifier-free guidance drops (in training, for a configured
    fraction of examples; in sampling, for the unconditional branch). Optional inputs are listed here too:
    a dropped input is simply absent from the sequence.
  closed: the output ends with its end token and <eos>; text_to_image leaves both out so that generation can
    go on into a video (VideoPoet 4.1).
  """

  name: str
  inputs: tuple[Part, ...]
  output: Part
  guidance_inputs: tuple[str, ...] = ()
  closed: bool = True

  def __post_init__(self):
    streams = [p.stream for p in self.inputs]
    if set(self.guidance_inputs) - set(streams):
      raise ValueError(f"{self.name}: guidance inputs {self.guidance_inputs} are not among {streams}")
    if self.output.modality == "text":
      raise ValueError(f"{self.name}: text outputs are not supported")

  @property
  def streams(self) -> tuple[str, ...]:
    """Token-shard streams an example needs for this task."""
    return tuple(dict.fromkeys([p.stream for p in self.inputs] + [self.output.stream]))


TEXT = Part("text", "text")
NEXT_TEXT = Part("next_text", "text")
VIDEO = Part("video", "video")
AUDIO = Part("audio", "audio")

TASKS: dict[str, Task] = {
  task.name: task
  for task in (
    Task("unconditional_video", (), VIDEO),
    Task("text_to_video", (TEXT,), VIDEO, guidance_inputs=("text",)),
    Task("text_to_image", (TEXT,), Part("video", "video", "first"), guidance_inputs=("text",), closed=False),
    Task(
      "image_to_video",
      (TEXT, Part("video", "video", "first")),
      Part("video", "video", "after_first"),
      guidance_inputs=("text",),
    ),
    # Clip extension: the first latent frames (the first second at 8 fps) condition the rest, prompted by
    # the caption of what follows them (`next_text`: a new direction in shapes_world's turning clips).
    Task(
      "continuation",
      (NEXT_TEXT, Part("video", "video", "context")),
      Part("video", "video", "after_context"),
      guidance_inputs=(NEXT_TEXT.stream,),
    ),
    Task("inpaint", (TEXT, Part("inpaint_video", "video")), VIDEO, guidance_inputs=("text",)),
    Task("outpaint", (TEXT, Part("outpaint_video", "video")), VIDEO, guidance_inputs=("text",)),
    Task("stylize", (TEXT, Part("structure_video", "video")), VIDEO, guidance_inputs=("text",)),
    Task("video_to_audio", (VIDEO,), AUDIO),
    Task("audio_to_video", (AUDIO,), VIDEO),
    # The footage between a first and a last frame (the output starts after the given first frame, as in
    # image_to_video); the last frame is the first latent frame of the clip played backwards (an image,
    # encoded alone by the causal tokenizer).
    Task(
      "bridge",
      (TEXT, Part("video", "video", "first"), Part("reversed_video", "video", "first")),
      Part("video", "video", "after_first"),
      guidance_inputs=("text",),
    ),
    # Backward extension: continuation in reversed time. The clip played backwards: its first latent frames
    # (the given clip's first second, reversed) condition the rest (the second before it, reversed).
    Task(
      "backward",
      (TEXT, Part("reversed_video", "video", "context")),
      Part("reversed_video", "video", "after_context"),
      guidance_inputs=("text",),
    ),
  )
}
# The vocabulary's task tokens, in a fixed order (append new tasks at the end: the order fixes their ids).
TASK_NAMES = tuple(TASKS)


def get(name: str) -> Task:
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
  return TASKS[name]
