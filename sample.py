"""Generates with the multimodal LM: `python sample.py --task=TASK [inputs] --output=PATH`.

  python sample.py --task=text_to_video --prompt="a small red circle moving left" --output=out.mp4
  python sample.py --task=story --prompts="p1|p2|p3" --output=out.mp4           # one second more per prompt
  python sample.py --task=text_to_image --prompt="..." --output=out.png
  python sample.py --task=image_to_video --image=first.png [--prompt=...] --output=out.mp4
  python sample.py --task=extend --video=in.mp4 --seconds=3 [--prompt=...] --output=out.mp4
  python sample.py --task=extend --direction=backward --video=in.mp4 --seconds=1 --output=out.mp4
  python sample.py --task=bridge --image=first.png --last_image=last.png [--prompt=...] --output=out.mp4
  python sample.py --task=bridge --video=a.mp4 --next_video=b.mp4 --output=out.mp4   # a, transition, b
  python sample.py --task=loop --prompt="..." --output=out.mp4                      # or --video=in.mp4
  python sample.py --task=inpaint --video=in.mp4 [--box=x0,y0,x1,y1 | --mask=mask.png] --output=out.mp4
  python sample.py --task=outpaint --video=in.mp4 [--box=... | --mask=...] --output=out.mp4
  python sample.py --task=stylize --video=in.mp4 --prompt="..." --output=out.mp4
  python sample.py --task=video_to_audio --video=in.mp4 --output=out.wav      # + out.mp4 with the audio
  python sample.py --task=text_to_audio --prompt="..." --output=out.wav       # text_to_video, then audio
  python sample.py --task=super_resolve --video=in.mp4 [--prompt=...] --output=out.mp4   # 2x, SR stage

--super_resolve also runs any task's output through the SR stage (2x its size).

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
from videopoet_jax.data import media
from videopoet_jax.decoding import cli, inputs, user_tasks
from videopoet_jax.decoding.generator import DIRECTIONS, Generator
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_enum("task", None, user_tasks.NAMES, "What to generate.", required=True)
flags.DEFINE_string("output", None, "Where to write the result (.mp4, .gif, .png or .wav).", required=True)
flags.DEFINE_string("prompt", None, "Text prompt.")
flags.DEFINE_string("prompts", None, 'story: its prompts, "|"-separated (a clip, then a second per prompt).')
flags.DEFINE_string("prompts_file", None, "story: a text file of its prompts, one per line.")
flags.DEFINE_string("negative_prompt", None, "Prompt of the guidance's unconditional branch.")
flags.DEFINE_string("image", None, "Input image (image_to_video; bridge: the first frame).")
flags.DEFINE_string("last_image", None, "bridge: the last frame.")
flags.DEFINE_string("video", None, "Input video.")
flags.DEFINE_string("next_video", None, "bridge: the video the transition from --video leads into.")
flags.DEFINE_enum(
  "direction", "forward", DIRECTIONS, "extend: after the clip, or backward (the footage leading into it)."
)
flags.DEFINE_string(
  "mask", None, "PNG of the input's size, white = the region (inpaint: regenerate; outpaint: keep)."
)
flags.DEFINE_list("box", None, "x0,y0,x1,y1 in input pixels: the region (as --mask).")
flags.DEFINE_float("seconds", None, "text_to_video: total length; extend: seconds to add.")
flags.DEFINE_integer("num_samples", 1, "Samples to generate.")
flags.DEFINE_bool("super_resolve", False, "Raise the output 2x with the model's super-resolution stage.")
flags.DEFINE_integer("display_size", None, "Upscale written videos to this many pixels (nearest).")
FLAGS = flags.FLAGS


def paths(n: int) -> list[str]:
  stem, ext = os.path.splitext(FLAGS.output)
  return [FLAGS.output] if n == 1 else [f"{stem}_{i}{ext}" for i in range(n)]


def output_extensions(task: str) -> tuple[str, ...]:
  """The file endings `task`'s --output may have (the first is the usual one)."""
  kind = user_tasks.get(task).output
  return {"image": media.IMAGE_OUTPUTS, "audio": media.AUDIO_OUTPUTS, "video": media.VIDEO_OUTPUTS}[kind]


def story_prompts() -> list[str] | None:
  """--prompts / --prompts_file as a list (blank lines dropped); None when neither is given."""
  if FLAGS.prompts_file:
    media.check_readable(FLAGS.prompts_file)
    with open(FLAGS.prompts_file) as f:
      return [line.strip() for line in f if line.strip()]
  return [p.strip() for p in FLAGS.prompts.split("|")] if FLAGS.prompts is not None else None


def check_flags() -> None:
  """Raises ValueError / MediaError (one line) for any flag that would fail later: missing or unreadable
  inputs, an output that cannot be written, numbers out of range. Runs before the model loads."""
  if FLAGS.task == "story":
    story = story_prompts() or []
    if FLAGS.prompt is not None or len(story) < 2 or not all(story):
      raise ValueError('--task=story needs --prompts="p1|p2|..." or --prompts_file: two or more, none empty')
  elif FLAGS.prompts is not None or FLAGS.prompts_file:
    raise ValueError("--prompts and --prompts_file are for --task=story")
  task = user_tasks.get(FLAGS.task)
  given = {name for name in user_tasks.INPUTS if name in FLAGS and FLAGS[name].value}
  missing = [] if task.name == "story" else user_tasks.unmet(task.name, given)  # a story's: checked above
  if missing:
    raise ValueError(
      f"--task={FLAGS.task} {user_tasks.needs_message(task.name, missing, lambda n: f'--{n}')}"
    )
  unused = [
    f"--{name}" for name in ("last_image", "next_video") if FLAGS[name].value and name not in task.takes
  ]
  if FLAGS.direction != "forward" and task.name != "extend":
    unused.append("--direction")
  if unused:
    raise ValueError(f"{' and '.join(unused)}: not an input of --task={FLAGS.task}")
  if FLAGS.prompt is not None and not FLAGS.prompt.strip():
    raise ValueError("the prompt is empty")
  if FLAGS.box and FLAGS.mask:
    raise ValueError("give --box or --mask, not both")
  if FLAGS.box and (len(FLAGS.box) != 4 or not all(v.strip().lstrip("-").isdigit() for v in FLAGS.box)):
    raise ValueError(f"--box={','.join(FLAGS.box)}: give four whole numbers x0,y0,x1,y1")
  cli_errors.check_at_least(num_samples=1, display_size=1)
  if FLAGS.seconds is not None and not FLAGS.seconds > 0:
    raise ValueError(f"--seconds={FLAGS.seconds:g}: must be > 0")
  cli.check_sampling_flags()
  for name in ("image", "last_image", "video", "next_video", "mask"):
    if FLAGS[name].value:
      media.check_readable(FLAGS[name].value)
  for path in paths(FLAGS.num_samples):
    media.check_writable(path, output_extensions(FLAGS.task))


def check_prompts(gen: Generator) -> None:
  """Reports prompts longer than the model reads (they are cut)."""
  for prompt in (FLAGS.prompt, FLAGS.negative_prompt, *(story_prompts() or [])):
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


def request(gen: Generator) -> user_tasks.Request:
  """The --task's inputs read from the flags' files and brought to the model's clip format."""
  n, task = FLAGS.num_samples, user_tasks.get(FLAGS.task)
  story = story_prompts() if task.name == "story" else None
  req = user_tasks.Request(
    prompts=[story[0] if story else FLAGS.prompt] * n,
    sampling=cli.sampling(gen.sampling_for(task.name)),
    seed=FLAGS.seed,
    negative_prompt=FLAGS.negative_prompt,
    seconds=FLAGS.seconds,
    story=[story[1:]] * n if story else None,
    direction=FLAGS.direction,
    super_resolve=FLAGS.super_resolve,
    progress=round_progress,
  )
  for name in ("image", "last_image"):
    if FLAGS[name].value:
      path = FLAGS[name].value
      setattr(req, name, np.repeat(note(inputs.read_image(path, gen.size), path).frames, n, 0))
  if FLAGS.next_video:
    prepared = note(inputs.read_clip(FLAGS.next_video, gen.size, gen.fps, min_frames=1), FLAGS.next_video)
    req.next_video = np.repeat(prepared.frames[None], n, 0)
  if FLAGS.video:
    length = {"min_frames": gen.context_frames} if task.whole_video else {"frames": gen.frames}
    prepared = note(inputs.read_clip(FLAGS.video, gen.size, gen.fps, **length), FLAGS.video)
    req.video = np.repeat(prepared.frames[None], n, 0)
    if FLAGS.mask:
      req.region = inputs.read_mask(FLAGS.mask, prepared, gen.size)
    elif FLAGS.box:
      req.region = inputs.box_mask(tuple(int(v) for v in FLAGS.box), prepared, gen.size)
  return req


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
    written = write(user_tasks.run(gen, FLAGS.task, request(gen)), gen)
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  print(f"wrote {', '.join(written)} in {time.time() - start:.1f} s")


if __name__ == "__main__":
  app.run(main)
