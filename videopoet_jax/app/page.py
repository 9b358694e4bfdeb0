"""The Gradio page: one tab per user task (`decoding/user_tasks.py`), its inputs, an "advanced" fold of
sampling controls, the result playing in the page with its downloads, the seed and the equivalent
`sample.py` command, and this session's history.

One generation runs at a time (every task's event shares one concurrency slot: the model); the others wait
in Gradio's queue, which shows their position. A running request can be cancelled. Each task is also an API
endpoint named after it (`gradio_client.Client(url).predict(..., api_name="/text_to_video")`).
"""

from __future__ import annotations

import inspect

import gradio as gr

from videopoet_jax import cli_errors
from videopoet_jax.app.handlers import Controls, Inputs, Studio
from videopoet_jax.decoding import user_tasks
from videopoet_jax.decoding.generator import DIRECTIONS

# Inputs a task's tab shows besides the ones it needs (an optional prompt steers the video tasks).
OPTIONAL_PROMPT = ("image_to_video", "extend", "inpaint", "outpaint", "super_resolve")
PAINT_TASKS = ("inpaint", "outpaint")
# Entries of the per-session history shown at once (newest first).
HISTORY_LENGTH = 20
# Results are written upscaled to this many pixels (nearest: the model's pixels stay sharp), at least.
DISPLAY_SIZE = 256
TITLE = "videopoet-jax"


def _controls(seed, temperature, top_k, guidance) -> Controls:
  return Controls(
    seed=int(seed or 0),
    temperature=None if temperature is None else float(temperature),
    top_k=None if top_k is None else int(top_k),
    guidance_scale=None if guidance is None else float(guidance),
  )


# A tab's inputs (those it shows, in this order), then its sampling controls and the session's history.
INPUT_NAMES = ("prompt", "story", "image", "last_image", "video", "next_video", "box", "seconds", "direction")
CONTROL_NAMES = ("seed", "temperature", "top_k", "guidance", "history")


def make_handler(studio: Studio, task: str, shown: list[str]):
  """The event function of `task`'s tab: (its `shown` inputs of INPUT_NAMES, then CONTROL_NAMES) ->
  (video, image, audio, downloads, info, history, history files). Its signature names exactly those
  values, so the API endpoint's parameters carry their names."""
  names = [*shown, *CONTROL_NAMES]

  def handle(*values):
    *values, progress = values  # Gradio passes the progress tracker last (the signature's default).
    given = dict.fromkeys(INPUT_NAMES) | dict(zip(names, values, strict=True))
    bar = lambda total: Reporter(progress, total)  # noqa: E731
    try:
      controls = _controls(given["seed"], given["temperature"], given["top_k"], given["guidance"])
      inputs = Inputs(**{k: given[k] for k in INPUT_NAMES})
      result = studio.run(task, inputs, controls, bar, max(DISPLAY_SIZE, studio.gen.size))
    except cli_errors.BAD_INPUT as e:
      raise gr.Error(cli_errors.one_line(e).removeprefix("error: "), print_exception=False) from None
    info = f"seed {controls.seed} · the same with the command line:\n```\n{result.command}\n```"
    if result.notes:
      info += "\n\n" + "\n".join(f"- note: {n}" for n in result.notes)
    history = [*result.downloads, *(given["history"] or [])][: HISTORY_LENGTH * 2]
    return result.video, result.image, result.audio, result.downloads, info, history, history

  parameter = lambda name, **kw: inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, **kw)  # noqa: E731
  # Gradio finds the progress bar by this default (its documented way).
  handle.__signature__ = inspect.Signature(
    [*(parameter(n) for n in names), parameter("progress", default=gr.Progress())]
  )
  return handle


class Reporter:
  """A tqdm-like bar (update/close, context manager) that moves `progress(fraction, desc=...)`: the page's
  progress bar (a `gr.Progress`), or nothing (`lambda *a, **k: None`: the warm-up)."""

  def __init__(self, progress, total: int):
    self.progress, self.total, self.done = progress, max(total, 1), 0

  def update(self, n: int = 1) -> None:
    self.done += n
    self.progress(self.done / self.total, desc=f"tokens {self.done}/{self.total}")

  def close(self) -> None:
    self.progress(1.0, desc="decoding")

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _inputs(task: user_tasks.UserTask, gen) -> dict:
  """`{name: component}` of the inputs (INPUT_NAMES) `task`'s tab shows: only those it takes, so they are
  also exactly its API endpoint's."""
  needs, takes, name = task.needs, task.takes, task.name
  extend = name == "extend"
  # Inputs of `instead` are offered as the other way to give the task what it needs.
  other = lambda input_name: "or, instead: " if input_name in task.instead else ""  # noqa: E731
  shown = {}
  if "prompt" in takes or name in OPTIONAL_PROMPT:
    optional = "" if "prompt" in needs and not task.instead else " (optional)"
    shown["prompt"] = gr.Textbox(label="prompt" + optional, elem_id=f"{name}-prompt")
  if "story" in takes:
    shown["story"] = gr.Textbox(label="then, one second per prompt (one per line)", lines=3)
  if "image" in takes:
    shown["image"] = gr.Image(label="first frame", type="filepath")
  if "last_image" in takes:
    shown["last_image"] = gr.Image(label="last frame", type="filepath")
  if "video" in takes:
    shown["video"] = gr.Video(label=other("video") + "input video")
  if "next_video" in takes:
    shown["next_video"] = gr.Video(label=other("next_video") + "the video it leads into")
  if name in PAINT_TASKS:
    shown["box"] = gr.Textbox(label="box x0,y0,x1,y1 in the video's pixels (empty: the central square)")
  if name in ("extend", "text_to_video"):
    shown["seconds"] = gr.Number(
      label="seconds" + (" to add" if extend else " in all (longer extends the clip)"),
      value=1.0 if extend else gen.frames / gen.fps,
    )
  if extend:
    shown["direction"] = gr.Radio(list(DIRECTIONS), value="forward", label="direction")
  return shown


def build(studio: Studio) -> gr.Blocks:
  """The page over `studio`'s model."""
  gen = studio.gen
  with gr.Blocks(title=TITLE) as page:
    gr.Markdown(
      f"# {TITLE}\nClips of {gen.frames} frames at {gen.fps:g} fps, {gen.size}x{gen.size} pixels. "
      "Pick a task, give its inputs, press Generate."
    )
    history = gr.State([])
    for task in user_tasks.TASKS.values():
      if task.name == "super_resolve" and gen.super_resolver is None:
        continue  # a model without an SR stage has no such tab
      with gr.Tab(task.name.replace("_", " "), id=task.name):
        shown = _inputs(task, gen)
        # Pre-filled with the model's own settings (its sampling.json: what the evaluation measured).
        model = gen.sampling_for(task.name)["audio" if task.output == "audio" else "video"]
        with gr.Accordion("advanced", open=False):
          seed = gr.Number(label="seed", value=0, precision=0, minimum=0)
          temperature = gr.Number(label="temperature (0 = greedy)", value=model.temperature, minimum=0)
          top_k = gr.Number(label="top-k (0 = off)", value=model.top_k, precision=0, minimum=0)
          guidance = gr.Number(label="guidance scale (1 = off)", value=model.guidance_scale, minimum=0)
        with gr.Row():
          run = gr.Button("Generate", variant="primary", elem_id=f"{task.name}-run")
          cancel = gr.Button("Cancel", elem_id=f"{task.name}-cancel")
        out_video = gr.Video(
          label="result",
          visible=task.output != "image",
          elem_id=f"{task.name}-video",
          height=DISPLAY_SIZE + 64,
        )
        out_image = gr.Image(
          label="result",
          visible=task.output == "image",
          elem_id=f"{task.name}-image",
          height=DISPLAY_SIZE + 64,
        )
        out_audio = gr.Audio(label="sound", visible=task.output == "audio")
        downloads = gr.File(label="download", file_count="multiple")
        info = gr.Markdown(elem_id=f"{task.name}-info")
        with gr.Accordion("this session's results", open=False):
          past = gr.File(label="history", file_count="multiple", interactive=False)
        event = run.click(
          make_handler(studio, task.name, list(shown)),
          [*shown.values(), seed, temperature, top_k, guidance, history],
          [out_video, out_image, out_audio, downloads, info, history, past],
          api_name=task.name,
          concurrency_id="model",
          concurrency_limit=1,
        )
        cancel.click(None, cancels=[event])
  return page
