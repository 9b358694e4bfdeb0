"""What the web page does when a button is pressed, without the page: inputs checked and brought to the
model's format, the user task run (`decoding/user_tasks.py`), results written where the page can serve
them, and the `sample.py` command that gives the same result.

  studio = Studio(Generator.load(), out_dir="/tmp/videopoet_app")
  result = studio.run("text_to_video", Inputs(prompt="a large red square moves right ..."), Controls(seed=3))
  result.video, result.downloads, result.command

Bad input raises `cli_errors.BAD_INPUT` with a one-line message (the page shows it); nothing is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shlex
import threading

import numpy as np

from videopoet_jax.data import media
from videopoet_jax.decoding import inputs, user_tasks
from videopoet_jax.decoding.generator import Generator, override_sampling

# Inputs that are uploaded files.
UPLOADS = ("image", "last_image", "video", "next_video")
# The largest upload the page takes (also Gradio's own limit, `launch(max_file_size=...)`).
MAX_UPLOAD_MB = 50


@dataclasses.dataclass(frozen=True)
class Inputs:
  """What the user gave: a prompt, uploaded file paths, a box "x0,y0,x1,y1" in the video's pixels, seconds,
  a story's later prompts (one per line) and an extension's direction."""

  prompt: str | None = None
  image: str | None = None
  video: str | None = None
  box: str | None = None
  seconds: float | None = None
  story: str | None = None
  last_image: str | None = None
  next_video: str | None = None
  direction: str | None = None

  def story_prompts(self) -> list[str]:
    return [line.strip() for line in (self.story or "").splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True)
class Controls:
  """Sampling controls; None keeps the model's own (its sampling.json)."""

  seed: int = 0
  temperature: float | None = None
  top_k: int | None = None
  guidance_scale: float | None = None


@dataclasses.dataclass
class Result:
  """Files of one generation: `video` (mp4, with its sound for the audio tasks), `image` (png), `audio`
  (wav), `downloads` (every file written), `command` (the sample.py line that makes the same output) and
  `notes` (what was done to the inputs)."""

  video: str | None
  image: str | None
  audio: str | None
  downloads: list[str]
  command: str
  notes: list[str]


def parse_box(text: str) -> tuple[int, int, int, int]:
  """ "x0,y0,x1,y1" -> four ints; ValueError (one line) otherwise."""
  parts = [p.strip() for p in text.split(",")]
  if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
    raise ValueError(f"box {text!r}: give four whole numbers x0,y0,x1,y1")
  return tuple(int(p) for p in parts)


def check_upload(path: str) -> None:
  """MediaError (one line) for an upload that is missing, empty or over MAX_UPLOAD_MB."""
  media.check_readable(path)
  megabytes = os.path.getsize(path) / 2**20
  if megabytes > MAX_UPLOAD_MB:
    raise media.MediaError(f"{os.path.basename(path)} is {megabytes:.0f} MB; the limit is {MAX_UPLOAD_MB} MB")


def sample_command(task: str, given: Inputs, controls: Controls, output: str) -> str:
  """The `python sample.py ...` line that reproduces a page result (uploads named by their file names)."""
  args = [f"--task={task}"]
  if given.prompt:
    args.append(f"--prompt={given.prompt}")
  for name in UPLOADS:
    if getattr(given, name):
      args.append(f"--{name}={os.path.basename(getattr(given, name))}")
  if given.direction and given.direction != "forward":
    args.append(f"--direction={given.direction}")
  if given.box:
    args.append(f"--box={given.box.replace(' ', '')}")
  if given.seconds:
    args.append(f"--seconds={given.seconds:g}")
  if given.story_prompts():
    args = [args[0], "--prompts=" + "|".join([given.prompt or "", *given.story_prompts()])] + args[2:]
  args.append(f"--seed={controls.seed}")
  for name in ("temperature", "top_k", "guidance_scale"):
    value = getattr(controls, name)
    if value is not None:
      args.append(f"--{name}={value:g}")
  args.append(f"--output={output}")
  return "python sample.py " + " ".join(shlex.quote(a) for a in args)


class Studio:
  """The model loaded once, and where its results go; one `run` at a time (the page queues the rest)."""

  def __init__(self, gen: Generator, out_dir: str):
    self.gen = gen
    self.out_dir = out_dir
    os.makedirs(out_dir, exist_ok=True)
    self._count = itertools.count()
    # One generation at a time, also past a cancel: Gradio stops waiting for a cancelled call, but its
    # thread finishes the generation it started before the next one may use the model.
    self._lock = threading.Lock()

  def request(self, task: str, given: Inputs, controls: Controls) -> tuple[user_tasks.Request, list[str]]:
    """The checked request of `task` and the notes on what was done to the inputs."""
    spec, gen = user_tasks.get(task), self.gen
    prompt = given.prompt.strip() if given.prompt else None
    if "prompt" in spec.needs and not prompt:
      raise ValueError(f"{task} needs a prompt: the prompt is empty")
    if given.seconds is not None and not given.seconds > 0:
      raise ValueError(f"seconds must be > 0, got {given.seconds:g}")
    if controls.seed < 0:
      raise ValueError(f"seed must be >= 0, got {controls.seed}")
    req = user_tasks.Request(
      prompts=[prompt],
      sampling=override_sampling(
        gen.sampling_for(task),
        temperature=controls.temperature,
        top_k=controls.top_k,
        guidance_scale=controls.guidance_scale,
      ),
      seed=controls.seed,
      seconds=given.seconds if "seconds" in spec.needs or task == "text_to_video" else None,
      story=[given.story_prompts()] if "story" in spec.needs else None,
      direction=given.direction or "forward",
    )
    notes = []
    for name in ("image", "last_image"):
      if name in spec.takes and getattr(given, name):
        check_upload(getattr(given, name))
        prepared = inputs.read_image(getattr(given, name), gen.size)
        setattr(req, name, prepared.frames)
        notes += prepared.notes
    for name in ("video", "next_video"):
      if name in spec.takes and getattr(given, name):
        check_upload(getattr(given, name))
        length = {"min_frames": gen.context_frames} if spec.whole_video else {"frames": gen.frames}
        prepared = inputs.read_clip(getattr(given, name), gen.size, gen.fps, **length)
        setattr(req, name, prepared.frames[None])
        notes += prepared.notes
        if name == "video" and given.box and given.box.strip() and task in ("inpaint", "outpaint"):
          req.region = inputs.box_mask(parse_box(given.box), prepared, gen.size)
    missing = user_tasks.missing_inputs(task, req)
    if missing:
      raise ValueError(f"{task} {user_tasks.needs_message(task, missing)}")
    return req, notes

  def run(self, task: str, given: Inputs, controls: Controls, progress=None, display_size=None) -> Result:
    """Generates one sample of `task` and writes it (video tasks: mp4 and gif; image: png; audio: wav and
    the mp4 it sounds). `progress(total)` -> a tqdm-like bar the token loop updates (`Generator.progress`);
    with one, generation runs token by token (the page's path, compiled apart from the one-loop path)."""
    req, notes = self.request(task, given, controls)
    with self._lock:
      self.gen.progress = progress
      try:
        (frames, wave), *_ = user_tasks.run(self.gen, task, req)
      finally:
        self.gen.progress = None
    kind = user_tasks.get(task).output
    stem = os.path.join(self.out_dir, f"{next(self._count):04d}_{task}_seed{controls.seed}")
    video = image = audio = None
    gen = self.gen
    if kind == "image":
      image = stem + ".png"
      media.write_image(image, frames, display_size)
      downloads = [image]
    elif kind == "audio":
      audio, video = stem + ".wav", stem + ".mp4"
      media.write_audio(audio, np.asarray(wave), gen.sample_rate)
      media.write_video_with_audio(video, frames, gen.fps, wave, gen.sample_rate, display_size)
      downloads = [video, audio]
    else:
      video = stem + ".mp4"
      media.write_video(video, frames, gen.fps, display_size)
      media.write_video(stem + ".gif", frames, gen.fps, display_size)
      downloads = [video, stem + ".gif"]
    output = os.path.basename(downloads[-1] if kind == "audio" else downloads[0])
    if req.seconds is None or task == "text_to_video" and req.seconds <= gen.frames / gen.fps:
      given = dataclasses.replace(given, seconds=None)  # the command leaves out what changed nothing
    return Result(video, image, audio, downloads, sample_command(task, given, controls, output), notes)
