"""Generates with the multimodal LM: `python sample.py --task=TASK [inputs] --output=PATH`.

  python sample.py --task=text_to_video --prompt="a small red circle moving left" --output=out.mp4
  python sample.py --task=text_to_image --prompt="..." --output=out.png
  python sample.py --task=image_to_video --image=first.png [--prompt=...] --output=out.mp4
  python sample.py --task=extend --video=in.mp4 --seconds=3 [--prompt=...] --output=out.mp4
  python sample.py --task=inpaint --video=in.mp4 [--box=x0,y0,x1,y1 | --mask=mask.png] --output=out.mp4
  python sample.py --task=outpaint --video=in.mp4 [--box=... | --mask=...] --output=out.mp4
  python sample.py --task=stylize --video=in.mp4 --prompt="..." --output=out.mp4
  python sample.py --task=video_to_audio --video=in.mp4 --output=out.wav      # + out.mp4 with the audio
  python sample.py --task=text_to_audio --prompt="..." --output=out.wav       # text_to_video, then audio

Without --checkpoint the bundled model is used. Inputs of any size, fps and length are brought to the
model's clip format (a message says what was done). --num_samples=N writes PATH_0 ... PATH_{N-1}.
"""

import os
import sys
import time

import numpy as np
import tqdm
from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.data import media, structure
from videopoet_jax.decoding import cli, inputs
from videopoet_jax.decoding.generator import Generator
from videopoet_jax.training.progress import quiet_unless_verbose

TASKS = (
  "text_to_video",
  "text_to_image",
  "image_to_video",
  "extend",
  "inpaint",
  "outpaint",
  "stylize",
  "video_to_audio",
  "text_to_audio",
)
NEEDS = {  # task -> flags it requires
  "text_to_video": ("prompt",),
  "text_to_image": ("prompt",),
  "image_to_video": ("image",),
  "extend": ("video",),
  "inpaint": ("video",),
  "outpaint": ("video",),
  "stylize": ("video", "prompt"),
  "video_to_audio": ("video",),
  "text_to_audio": ("prompt",),
}
flags.DEFINE_enum("task", None, TASKS, "What to generate.", required=True)
flags.DEFINE_string("output", None, "Where to write the result (.mp4, .gif, .png or .wav).", required=True)
flags.DEFINE_string("prompt", None, "Text prompt.")
flags.DEFINE_string("negative_prompt", None, "Prompt of the guidance's unconditional branch.")
flags.DEFINE_string("image", None, "Input image (image_to_video).")
flags.DEFINE_string("video", None, "Input video.")
flags.DEFINE_string(
  "mask", None, "PNG of the input's size, white = the region (inpaint: regenerate; outpaint: keep)."
)
flags.DEFINE_list("box", None, "x0,y0,x1,y1 in input pixels: the region (as --mask).")
flags.DEFINE_float("seconds", None, "text_to_video: total length; extend: seconds to add.")
flags.DEFINE_integer("num_samples", 1, "Samples to generate.")
flags.DEFINE_integer("display_size", None, "Upscale written videos to this many pixels (nearest).")
FLAGS = flags.FLAGS


def paths(n: int) -> list[str]:
  stem, ext = os.path.splitext(FLAGS.output)
  return [FLAGS.output] if n == 1 else [f"{stem}_{i}{ext}" for i in range(n)]


def output_extensions(task: str) -> tuple[str, ...]:
  """The file endings `task`'s --output may have (the first is the usual one)."""
  if task == "text_to_image":
    return media.IMAGE_OUTPUTS
  return media.AUDIO_OUTPUTS if task in ("video_to_audio", "text_to_audio") else media.VIDEO_OUTPUTS


def check_flags() -> None:
  """Raises ValueError / MediaError (one line) for any flag that would fail later: missing or unreadable
  inputs, an output that cannot be written, numbers out of range. Runs before the model loads."""
  missing = [f"--{name}" for name in NEEDS[FLAGS.task] if not FLAGS[name].value]
  if missing:
    raise ValueError(f"--task={FLAGS.task} needs {' and '.join(missing)}")
  if FLAGS.prompt is not None and not FLAGS.prompt.strip():
    raise ValueError("the prompt is empty")
  if FLAGS.box and FLAGS.mask:
    raise ValueError("give --box or --mask, not both")
  if FLAGS.box and (len(FLAGS.box) != 4 or not all(v.strip().lstrip("-").isdigit() for v in FLAGS.box)):
    raise ValueError(f"--box={','.join(FLAGS.box)}: give four whole numbers x0,y0,x1,y1")
  cli_errors.check_at_least(num_samples=1, display_size=1)
  if FLAGS.seconds is not None and not FLAGS.seconds > 0:
    raise ValueError(f"--seconds={FLAGS.seconds:g}: must be > 0")
  if FLAGS.task == "extend" and FLAGS.seconds is None:
    raise ValueError("--task=extend needs --seconds > 0 (the seconds to add)")
  cli.check_sampling_flags()
  for name in ("image", "video", "mask"):
    if FLAGS[name].value:
      media.check_readable(FLAGS[name].value)
  for path in paths(FLAGS.num_samples):
    media.check_writable(path, output_extensions(FLAGS.task))


def check_prompts(gen: Generator) -> None:
  """Reports prompts longer than the model reads (they are cut)."""
  for prompt in (FLAGS.prompt, FLAGS.negative_prompt):
    if prompt:
      kept, cut = gen.encode_text(prompt)
      if cut:
        print(
          f"note: the prompt is {len(kept) + cut} text tokens, the model reads {len(kept)}: kept "
          f"{gen.text_tokenizer.decode(kept)!r}",
          file=sys.stderr,
        )


def note(prepared: inputs.Prepared, what: str) -> inputs.Prepared:
  for line in prepared.notes:
    print(f"note: {what}: {line}", file=sys.stderr)
  return prepared


def run(gen: Generator) -> list[tuple[np.ndarray, np.ndarray | None]]:
  """Runs --task; returns per sample `(frames [T, S, S, 3] uint8 or image, wave [N] or None)`."""
  task, n, seed = FLAGS.task, FLAGS.num_samples, FLAGS.seed
  settings = cli.sampling(gen.default_sampling)
  prompts = [FLAGS.prompt] * n
  read_video = lambda **kw: note(inputs.read_clip(FLAGS.video, gen.size, gen.fps, **kw), FLAGS.video)
  if task in ("text_to_video", "text_to_audio"):
    clips = gen.text_to_video(prompts, settings, seed, FLAGS.negative_prompt)
    extra = (FLAGS.seconds or 0) - gen.frames / gen.fps if task == "text_to_video" else 0
    if extra > 0:
      clips = gen.extend(clips, extra, prompts, settings, seed + 1, progress=round_progress)
    if task == "text_to_audio":
      return list(zip(clips, gen.video_to_audio(clips, settings, seed), strict=True))
    return [(c, None) for c in clips]
  if task == "text_to_image":
    return [(i, None) for i in gen.text_to_image(prompts, settings, seed, FLAGS.negative_prompt)]
  if task == "image_to_video":
    image = note(inputs.read_image(FLAGS.image, gen.size), FLAGS.image).frames
    return [(c, None) for c in gen.image_to_video(np.repeat(image, n, 0), prompts, settings, seed)]
  if task == "extend":
    clip = read_video(min_frames=gen.context_frames).frames
    out = gen.extend(np.repeat(clip[None], n, 0), FLAGS.seconds, prompts, settings, seed, round_progress)
    return [(c, None) for c in out]
  prepared = read_video(frames=gen.frames)
  clips = np.repeat(prepared.frames[None], n, 0)
  if task in ("inpaint", "outpaint"):
    if FLAGS.mask:
      region = inputs.read_mask(FLAGS.mask, prepared, gen.size)
    elif FLAGS.box:
      region = inputs.box_mask(tuple(int(v) for v in FLAGS.box), prepared, gen.size)
    else:
      region = inputs.default_mask(gen.size)
    return [(c, None) for c in gen.paint(task, clips, region, prompts, settings, seed)]
  if task == "stylize":
    guide = structure.structure_video(
      structure.farneback_flow(prepared.frames), structure.edge_map(prepared.frames)
    )
    return [(c, None) for c in gen.stylize(np.repeat(guide[None], n, 0), prompts, settings, seed)]
  return list(zip(clips, gen.video_to_audio(clips, settings, seed), strict=True))  # video_to_audio


def round_progress(done: int, total: int) -> None:
  if sys.stderr.isatty():
    print(f"extension round {done}/{total}", file=sys.stderr)


def write(results, gen: Generator) -> list[str]:
  written = []
  for path, (frames, wave) in zip(paths(len(results)), results, strict=True):
    if frames.ndim == 3:  # an image
      media.write_image(path, frames, FLAGS.display_size)
    elif wave is not None:
      media.write_audio(path, wave, gen.sample_rate)
      movie = os.path.splitext(path)[0] + ".mp4"
      media.write_video_with_audio(movie, frames, gen.fps, wave, gen.sample_rate, FLAGS.display_size)
      written.append(movie)
    else:
      media.write_video(path, frames, gen.fps, FLAGS.display_size)
    written.append(path)
  return written


def main(argv):
  del argv
  quiet_unless_verbose()
  start = time.time()
  try:
    check_flags()
    gen = cli.load_generator()
    check_prompts(gen)
    if sys.stderr.isatty():
      gen.progress = lambda total: tqdm.tqdm(total=total, desc=FLAGS.task, unit="tok", file=sys.stderr)
    written = write(run(gen), gen)
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  print(f"wrote {', '.join(written)} in {time.time() - start:.1f} s")


if __name__ == "__main__":
  app.run(main)
