"""The table of user tasks: name -> the inputs it needs -> the `Generator` calls that make its output.

One table serves every front end: `sample.py` (inputs read from files), the evaluation
(`eval/lm_tasks.py`, inputs rendered from shapes_world) and the web page. A front end fills a `Request`
with inputs already in the model's clip format and calls `run`:

  request = user_tasks.Request(prompts=["a red square moves right ..."] * 2, sampling=..., seed=0)
  outputs = user_tasks.run(gen, "text_to_video", request)  # [(frames [T, S, S, 3] uint8, None), ...]

Each output is `(frames, wave)`: frames `[T, S, S, 3]` uint8 (an image task: `[S, S, 3]`), wave `[N]`
float32 in [-1, 1] at `gen.sample_rate` for the audio tasks (whose frames are the video it sounds) and
None otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from videopoet_jax.data import structure
from videopoet_jax.decoding import inputs
from videopoet_jax.decoding.generator import DIRECTIONS, Generator, Sampling

# What a task's output is, and so which files it can be written to.
OUTPUT_KINDS = ("video", "image", "audio")
# Inputs a task can need (the names of `Request` fields a front end must fill; `prompt` is `prompts`).
INPUTS = ("prompt", "image", "video", "seconds", "story", "last_image", "next_video")
Output = tuple[np.ndarray, np.ndarray | None]


@dataclasses.dataclass
class Request:
  """The inputs of one call, for N samples, in the model's clip format (`inputs.read_clip` et al.).

  prompts: N prompts (None or "" where a sample has none).
  image: `[N, S, S, 3]` uint8 first frames (image_to_video, bridge).
  last_image: `[N, S, S, 3]` uint8 last frames (bridge).
  video: `[N, T, S, S, 3]` uint8 clips: `gen.frames` frames, or at least `gen.context_frames` (extend,
    bridge, loop: any length).
  next_video: `[N, U, S, S, 3]` uint8 clips a bridge leads into (U >= 1).
  region: `[S, S]` bool (inpaint: the pixels to regenerate; outpaint: the pixels to keep); None: the
    default central box.
  structure: `[N, gen.frames, S, S, 3]` uint8 structure videos (stylize); None: made from `video`.
  seconds: text_to_video: the total length (longer than one clip extends it); extend: seconds to add.
  story: per sample, a story's later prompts, one per extension round (its first prompt is `prompts`'s;
    every sample has as many).
  direction: extend: "forward" (after the clip) or "backward" (the footage leading into it).
  super_resolve: every output's frames also go through the model's SR stage (2x their size).
  progress: called with (round, rounds) after each extension round.
  """

  prompts: list[str | None]
  sampling: dict[str, Sampling]
  seed: int = 0
  negative_prompt: str | None = None
  image: np.ndarray | None = None
  last_image: np.ndarray | None = None
  video: np.ndarray | None = None
  next_video: np.ndarray | None = None
  region: np.ndarray | None = None
  structure: np.ndarray | None = None
  seconds: float | None = None
  story: list[list[str]] | None = None
  direction: str = "forward"
  super_resolve: bool = False
  progress: Callable[[int, int], None] | None = None


@dataclasses.dataclass(frozen=True)
class UserTask:
  """A task as users call it.

  needs: the inputs (of INPUTS) a call must give.
  instead: another set of inputs that serves instead of `needs` (bridge: a video and the next video
    instead of a first and a last image).
  output: "video" | "image" | "audio".
  whole_video: the task takes the input video at any length (extend, bridge, loop), not cut to one clip.
  generate: (generator, request) -> N outputs.
  """

  name: str
  needs: tuple[str, ...]
  output: str
  generate: Callable[[Generator, Request], list[Output]]
  whole_video: bool = False
  instead: tuple[str, ...] = ()

  def __post_init__(self):
    if set(self.needs + self.instead) - set(INPUTS) or self.output not in OUTPUT_KINDS:
      raise ValueError(f"{self.name}: needs {self.needs} must be among {INPUTS}, output in {OUTPUT_KINDS}")

  @property
  def takes(self) -> tuple[str, ...]:
    """Every input a call may give (`needs`, then `instead`)."""
    return tuple(dict.fromkeys(self.needs + self.instead))


def _videos(clips) -> list[Output]:
  return [(c, None) for c in clips]


def _text_to_video(gen: Generator, r: Request) -> list[Output]:
  clips = gen.text_to_video(r.prompts, r.sampling, r.seed, r.negative_prompt)
  extra = (r.seconds or 0) - gen.frames / gen.fps
  if extra > 0:
    clips = gen.extend(clips, extra, r.prompts, r.sampling, r.seed + 1, r.progress)
  return _videos(clips)


def _story(gen: Generator, r: Request) -> list[Output]:
  """A story: text_to_video on the first prompt, then one extension round (conditioned on the last second
  so far) per later prompt, each round following its own prompt. The clip grows by `gen.frames -
  gen.context_frames` frames a round."""
  clips = gen.text_to_video(r.prompts, r.sampling, r.seed, r.negative_prompt)
  one_round = (gen.frames - gen.context_frames) / gen.fps
  rounds = len(r.story[0])
  for i in range(rounds):
    clips = gen.extend(clips, one_round, [later[i] for later in r.story], r.sampling, r.seed + 1 + i)
    if r.progress:
      r.progress(i + 1, rounds)
  return _videos(clips)


def _bridge(gen: Generator, r: Request) -> list[Output]:
  """From a first to a last image, or (a transition) from a video into the next one."""
  if r.image is not None and r.last_image is not None:
    return _videos(gen.bridge(r.image, r.last_image, r.prompts, r.sampling, r.seed))
  return _videos(gen.transition(r.video, r.next_video, r.prompts, r.sampling, r.seed))


def _loop(gen: Generator, r: Request) -> list[Output]:
  """A given video, or text_to_video's clip of the prompt, closed into a loop by a bridge back to its
  first frame."""
  clips = r.video
  if clips is None:
    clips = gen.text_to_video(r.prompts, r.sampling, r.seed, r.negative_prompt)
  return _videos(gen.loop(clips, r.prompts, r.sampling, r.seed + 1))


def _paint(kind: str) -> Callable[[Generator, Request], list[Output]]:
  def generate(gen: Generator, r: Request) -> list[Output]:
    region = inputs.default_mask(gen.size) if r.region is None else r.region
    return _videos(gen.paint(kind, r.video, region, r.prompts, r.sampling, r.seed))

  return generate


def _stylize(gen: Generator, r: Request) -> list[Output]:
  guides = r.structure
  if guides is None:
    guides = np.stack(
      [structure.structure_video(structure.farneback_flow(v), structure.edge_map(v)) for v in r.video]
    )
  return _videos(gen.stylize(guides, r.prompts, r.sampling, r.seed))


def _with_sound(gen: Generator, clips: np.ndarray, r: Request, seed: int) -> list[Output]:
  return list(zip(clips, gen.video_to_audio(clips, r.sampling, seed), strict=True))


def _text_to_audio(gen: Generator, r: Request) -> list[Output]:
  """The soundtrack of a generated clip: text_to_video, then video_to_audio on it with the next seed."""
  clips = np.stack([frames for frames, _ in _text_to_video(gen, r)])
  return _with_sound(gen, clips, r, r.seed + 1)


TASKS: dict[str, UserTask] = {
  t.name: t
  for t in (
    UserTask("text_to_video", ("prompt",), "video", _text_to_video),
    UserTask("story", ("prompt", "story"), "video", _story),
    UserTask(
      "text_to_image",
      ("prompt",),
      "image",
      lambda gen, r: _videos(gen.text_to_image(r.prompts, r.sampling, r.seed, r.negative_prompt)),
    ),
    UserTask(
      "image_to_video",
      ("image",),
      "video",
      lambda gen, r: _videos(gen.image_to_video(r.image, r.prompts, r.sampling, r.seed)),
    ),
    UserTask(
      "extend",
      ("video", "seconds"),
      "video",
      lambda gen, r: _videos(
        gen.extend(r.video, r.seconds, r.prompts, r.sampling, r.seed, r.progress, r.direction)
      ),
      whole_video=True,
    ),
    UserTask(
      "bridge", ("image", "last_image"), "video", _bridge, whole_video=True, instead=("video", "next_video")
    ),
    UserTask("loop", ("prompt",), "video", _loop, whole_video=True, instead=("video",)),
    UserTask("inpaint", ("video",), "video", _paint("inpaint")),
    UserTask("outpaint", ("video",), "video", _paint("outpaint")),
    UserTask("stylize", ("video", "prompt"), "video", _stylize),
    UserTask("video_to_audio", ("video",), "audio", lambda gen, r: _with_sound(gen, r.video, r, r.seed)),
    UserTask("text_to_audio", ("prompt",), "audio", _text_to_audio),
    UserTask(
      "super_resolve",
      ("video",),
      "video",
      lambda gen, r: _videos(gen.super_resolve(r.video, r.prompts, r.seed)),
      whole_video=True,
    ),
  )
}
NAMES = tuple(TASKS)


def get(name: str) -> UserTask:
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {', '.join(NAMES)}")
  return TASKS[name]


def unmet(name: str, given: set[str]) -> list[str]:
  """The inputs of `needs` that `given` (input names) lacks, or none when `given` has all of `instead`."""
  task = get(name)
  missing = [i for i in task.needs if i not in given]
  if missing and task.instead and all(i in given for i in task.instead):
    return []
  return missing


def needs_message(name: str, missing: list[str], spell: Callable[[str], str] = str) -> str:
  """ "needs A and B (or C and D)": what a call of `name` lacks, and the other inputs that would do instead;
  `spell` writes an input's name (sample.py: as its flag)."""
  instead = get(name).instead
  message = "needs " + " and ".join(spell(i) for i in missing)
  return message + (f" (or {' and '.join(spell(i) for i in instead)})" if instead else "")


def missing_inputs(name: str, request: Request) -> list[str]:
  """The inputs `name` needs that `request` lacks (a prompt counts when any sample has a non-blank one)."""
  present = {
    "prompt": any(p and p.strip() for p in request.prompts),
    "image": request.image is not None,
    "video": request.video is not None,
    "last_image": request.last_image is not None,
    "next_video": request.next_video is not None,
    "seconds": request.seconds is not None and request.seconds > 0,
    "story": bool(request.story)
    and len(request.story) == len(request.prompts)
    and len({len(later) for later in request.story}) == 1
    and all(p and p.strip() for later in request.story for p in later),
  }
  return unmet(name, {i for i, given in present.items() if given})


def run(gen: Generator, name: str, request: Request) -> list[Output]:
  """Runs task `name` on `request`; returns one `(frames, wave)` per prompt. Raises ValueError naming the
  missing inputs."""
  missing = missing_inputs(name, request)
  if missing:
    raise ValueError(f"{name} {needs_message(name, missing)}")
  if request.direction not in DIRECTIONS:
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {request.direction!r}")
  if request.super_resolve or name == "super_resolve":
    gen.check_super_resolver()  # before anything is generated
  outputs = get(name).generate(gen, request)
  if request.super_resolve and name != "super_resolve":
    outputs = _super_resolved(gen, outputs, request)
  return outputs


def _super_resolved(gen: Generator, outputs: list[Output], r: Request) -> list[Output]:
  """`outputs` with their frames (an image as a one-frame clip) through the SR stage."""
  frames = np.stack([f if f.ndim == 4 else f[None] for f, _ in outputs])
  high = gen.super_resolve(frames, r.prompts, r.seed)
  return [(h if f.ndim == 4 else h[0], wave) for h, (f, wave) in zip(high, outputs, strict=True)]
