"""Per-task evaluation of a generator on shapes_world clips of seeds never trained on (test or validation).

Each task is run on N rendered test examples (`shapes_world.render` of the test split's seeds; the
compositional config's withheld combinations for `text_to_video_withheld`), and its output is scored by
`shapes_scores` from the pixels and samples only. `evaluate` returns a JSON-ready report: per task, per
criterion, the value with its 95% interval and the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from videopoet_jax.data import conditioning, shapes_world_dataset
from videopoet_jax.data import shapes_world as world
from videopoet_jax.decoding import user_tasks
from videopoet_jax.decoding.generator import Generator, Sampling
from videopoet_jax.eval import shapes_scores, video_metrics

# Seconds added by the extension rounds before `extend` is scored.
EXTEND_SECONDS = 3
# Seconds generated before the test clip by `backward` (one extension round).
BACKWARD_SECONDS = 1
TASKS = tuple(shapes_scores.TASK_CRITERIA)


# Splits the evaluation renders from: settings are chosen on validation seeds, scores reported on test seeds.
SPLITS = ("validation", "test")


def split_examples(num: int, withheld: bool = False, split: str = "test", start: int = 0) -> list[dict]:
  """`num` examples (rendered) of `split`'s seeds from its `start`-th on, or the compositional config's
  withheld combinations drawn from them."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}: {SPLITS}")
  first = shapes_world_dataset.SPLIT_SEEDS[split] + start
  if withheld:
    combos = shapes_world_dataset.COMPOSITIONAL_WITHHELD
    return [world.render(first + i, withheld=combos, only_withheld=True) for i in range(num)]
  return [world.render(first + i) for i in range(num)]


# Seconds a story adds to its first clip, one prompt each.
STORY_ROUNDS = 2
MOVES = tuple(d for d in world.DIRECTIONS if d != "still")


def story_directions(example: dict) -> list[str]:
  """The directions of a story's later prompts for a test example: each differs from the one before (a
  pure function of the example's caption, so every run asks the same)."""
  directions, previous = [], example["direction"]
  for i in range(STORY_ROUNDS):
    options = [d for d in MOVES if d != previous]
    previous = options[(len(example["caption"]) + i) % len(options)]
    directions.append(previous)
  return directions


def story_prompt(example: dict, direction: str) -> str:
  """The example's caption with its object moving `direction`."""
  attrs = {k: example[k] for k in ("shape", "size", "color", "background")}
  return world.Attributes(direction=direction, **attrs).caption()


def story_baselines() -> dict:
  """A uniform guess of each later second's direction over the world's directions gets all of them right
  this often."""
  return {"directions": {"chance": (1 / len(world.DIRECTIONS)) ** STORY_ROUNDS}}


def story_truth(gen: Generator, example: dict) -> dict:
  """`truth_from_example` plus `story`: `[(first_frame, stop_frame, direction)]` of each later second."""
  per_round = gen.frames - gen.context_frames
  seconds = [
    (gen.frames + i * per_round, gen.frames + (i + 1) * per_round, d)
    for i, d in enumerate(story_directions(example))
  ]
  return {**shapes_scores.truth_from_example(example), "story": seconds}


def task_truth(gen: Generator, task: str, example: dict) -> dict:
  """What `task`'s scores compare with: `truth_from_example`, plus a story's seconds (`story_truth`) or the
  PSNR of the tokenizer's own round trip of a bridge's last frame (its ceiling)."""
  if task == "story":
    return story_truth(gen, example)
  truth = shapes_scores.truth_from_example(example)
  if task == "bridge":
    last = truth["video"][-1:]
    round_trip = gen.decode_video(gen.encode_video(last[None]))[0]
    truth["last_frame_round_trip_psnr_db"] = float(video_metrics.psnr(last, round_trip)[0])
  return truth


def user_task(task: str) -> str:
  """The user task (`user_tasks.TASKS`) that evaluation task `task` runs."""
  return {"text_to_video_withheld": "text_to_video", "backward": "extend"}.get(task, task)


def run_task(gen: Generator, task: str, examples: list[dict], sampling: dict, seed: int) -> list[np.ndarray]:
  """Generates `task`'s output for each example through the user-task table (`text_to_video_withheld` is
  text_to_video on the withheld combinations): videos `[T, S, S, 3]` uint8, images `[S, S, 3]`, or
  soundtracks `[N]` float32."""
  if task not in TASKS:
    raise ValueError(f"unknown evaluation task {task!r}; known: {', '.join(TASKS)}")
  name = user_task(task)
  request = user_tasks.Request(
    prompts=[e["caption"] for e in examples],
    sampling=sampling,
    seed=seed,
    image=np.stack([e["video"][0] for e in examples]),
    last_image=np.stack([e["video"][-1] for e in examples]) if name == "bridge" else None,
    # A loop is made from the prompt (text_to_video, then a bridge back to its first frame), so that every
    # frame of it is decoded: the test clip's own crisp frames beside decoded ones would make the seam.
    video=None if name in ("bridge", "loop") else np.stack([e["video"] for e in examples]),
    structure=np.stack([conditioning.structure_clip(e) for e in examples]) if name == "stylize" else None,
    seconds={"extend": EXTEND_SECONDS, "backward": BACKWARD_SECONDS}.get(task),
    direction="backward" if task == "backward" else "forward",
  )
  if name == "story":
    request.story = [[story_prompt(e, d) for d in story_directions(e)] for e in examples]
  outputs = user_tasks.run(gen, name, request)
  if user_tasks.get(name).output == "audio":
    return [wave for _, wave in outputs]
  return [frames for frames, _ in outputs]


# Keys of a task's report that are not its criteria.
REPORT_EXTRAS = ("seconds", "baselines", "by_direction")


def criteria_of(task_report: dict) -> dict[str, dict]:
  """The criteria summaries of one task's report (`evaluate`'s `report[task]`)."""
  return {k: v for k, v in task_report.items() if k not in REPORT_EXTRAS}


def evaluate(
  gen: Generator,
  tasks: list[str],
  num: int,
  sampling: Callable[[str], dict[str, Sampling]],
  seed: int = 0,
  batch_size: int = 25,
  log: Callable[[str], None] = print,
  split: str = "test",
) -> dict:
  """Runs and scores every task of `tasks` on `num` examples of `split`, each with the sampling settings
  `sampling(task)`; returns `{task: {criterion: summary, ..., "baselines": ..., "seconds": ...}}`, and for
  tasks scored on direction `by_direction`: `{prompted direction: rate summary}`."""
  report = {}
  examples = {w: split_examples(num, w, split) for w in (False, True)}
  for task in tasks:
    start = time.time()
    chosen = examples[task == "text_to_video_withheld"]
    samples, all_truths = [], []
    for i in range(0, num, batch_size):
      batch = chosen[i : i + batch_size]
      outputs = run_task(gen, task, batch, sampling(task), seed + i)
      truths = [task_truth(gen, task, e) for e in batch]
      all_truths += truths
      samples += [shapes_scores.score_sample(task, o, t) for o, t in zip(outputs, truths, strict=True)]
    report[task] = {
      **shapes_scores.summarize(task, samples),
      "baselines": story_baselines()
      if task == "story"
      else shapes_scores.baselines(task, chosen, all_truths),
      "seconds": round(time.time() - start, 1),
    }
    if any(c.name == "direction" for c in shapes_scores.TASK_CRITERIA[task]):
      report[task]["by_direction"] = shapes_scores.rates_by(samples, all_truths, "direction", "direction")
    log(f"{task}: " + ", ".join(f"{k}={v['value']:.3g}" for k, v in criteria_of(report[task]).items()))
  return report
