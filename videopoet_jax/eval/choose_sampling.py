"""Chooses a model's sampling settings on validation seeds and writes them into its export (sampling.json).

  python -m videopoet_jax.eval.choose_sampling --checkpoint=runs/lm_demo [--num=32]

Video settings (temperature, top-k, guidance scale) are scored by text_to_video's criteria (a task's score
is the mean of its criteria that have a target), then audio settings by video_to_audio's, on shapes_world
validation seeds only: the test seeds that the report scores are never looked at. Every candidate is
screened on --num clips; the --finalists best are scored again on --final_num clips (a grid of no more
candidates than that goes straight to the final), and the best of those is written to the export folder's
`sampling.json`, which `sample.py` and `python -m videopoet_jax.eval` use when no sampling flag is given.
(On 32 clips alone two settings 0.01 apart swap places by chance: a rate there moves 0.03 with one clip.)
Then each of TASKS_APART (the other video tasks: an image, or a given clip's frame, region, structure or
continuation) is scored with the chosen video settings and each of TASK_GRID on --task_num clips by its own
criteria, and keeps its own settings where one of those beats the chosen ones (a tie keeps them). Prints one
JSON line with every candidate's scores.
"""

import dataclasses
import json
import sys

import numpy as np
from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.decoding import cli
from videopoet_jax.decoding.generator import Sampling, sampling_json, write_sampling
from videopoet_jax.eval import lm_tasks, shapes_scores
from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_integer("num", 32, "Validation examples per screened candidate.")
flags.DEFINE_integer("finalists", 2, "Best screened candidates of each grid scored again on --final_num.")
flags.DEFINE_integer("final_num", 200, "Validation examples per finalist.")
flags.DEFINE_integer("task_num", 64, "Validation examples per candidate of each task scored apart.")
flags.DEFINE_list("tasks_apart", None, "Evaluation tasks scored apart (default: TASKS_APART; none: '').")
FLAGS = flags.FLAGS

# (temperature, top_k, guidance_scale) candidates; top_p stays off.
VIDEO_GRID = (
  (1.0, 0, 1.0),
  (1.0, 0, 1.5),
  (1.0, 0, 3.0),
  (1.0, 16, 1.5),
  (1.0, 64, 1.0),
  (1.0, 64, 1.5),
  (1.0, 64, 2.0),
  (0.85, 0, 1.0),
  (0.7, 32, 1.0),
  (0.7, 32, 2.0),
  (0.7, 32, 4.0),
)
AUDIO_GRID = ((1.0, 0, 1.0), (0.7, 32, 1.0))
# The task each grid is judged on.
VIDEO_TASK, AUDIO_TASK = "text_to_video", "video_to_audio"
# Video tasks scored apart (evaluation task names; `extend`'s choice is the user task's, so backward's too):
# the chosen video settings and TASK_GRID's, each on --task_num clips.
TASKS_APART = ("text_to_image", "image_to_video", "extend", "inpaint", "outpaint", "stylize")
TASK_GRID = ((0.7, 32, 1.0), (1.0, 16, 1.5))


def score(gen, task: str, sampling: dict, num: int) -> tuple[float, dict[str, float]]:
  """The mean of `task`'s targeted criteria (its rates; inpaint/outpaint: the PSNR gain alone) with
  `sampling` on `num` validation examples, and every criterion's value."""
  report = lm_tasks.evaluate(
    gen, [task], num, lambda _: sampling, FLAGS.seed, num, lambda _: None, "validation"
  )
  rates = {k: v["value"] for k, v in lm_tasks.criteria_of(report[task]).items()}
  targeted = [c.name for c in shapes_scores.TASK_CRITERIA[task] if c.target is not None]
  scored = [rates[k] for k in targeted if not np.isnan(rates[k])]  # a rate with no scored clip is nan
  return (float(np.mean(scored)) if scored else 0.0), rates


def main(argv):
  del argv
  quiet_unless_verbose()
  if not FLAGS.checkpoint:
    cli_errors.exit_with("--checkpoint (the LM workdir or export to write sampling.json into) is required")
  tasks_apart = TASKS_APART if FLAGS.tasks_apart is None else FLAGS.tasks_apart
  unknown = sorted(set(tasks_apart) - set(TASKS_APART))
  if unknown:
    cli_errors.exit_with(
      f"--tasks_apart: {unknown} are not video tasks scored apart: {', '.join(TASKS_APART)}"
    )
  try:
    gen = cli.load_generator()
    folder = pretrained.export_folder(FLAGS.checkpoint)
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  candidates = {"video": [], "audio": []}
  best = {}
  for kind, grid, task in (("video", VIDEO_GRID, VIDEO_TASK), ("audio", AUDIO_GRID, AUDIO_TASK)):
    screen = len(grid) > FLAGS.finalists
    for temperature, top_k, guidance in grid:
      chosen = Sampling(temperature=temperature, top_k=top_k, guidance_scale=guidance)
      candidates[kind].append({"sampling": dataclasses.asdict(chosen)})
      if screen:
        value, rates = score(gen, task, {**best, kind: chosen}, FLAGS.num)
        candidates[kind][-1].update(score=value, **{task: rates})
        print(f"{kind} {chosen}: {task} {value:.3f} {rates}", file=sys.stderr, flush=True)
    # Stable sort: on equal screens the earlier candidate of the grid goes first.
    finalists = sorted(candidates[kind], key=lambda c: -c.get("score", 0.0))[: FLAGS.finalists]
    for candidate in finalists:
      chosen = Sampling(**candidate["sampling"])
      value, rates = score(gen, task, {**best, kind: chosen}, FLAGS.final_num)
      candidate["final"] = {"num": FLAGS.final_num, "score": value, task: rates}
      print(f"{kind} finalist {chosen}: {task} {value:.3f} {rates}", file=sys.stderr, flush=True)
    best[kind] = Sampling(**max(finalists, key=lambda c: c["final"]["score"])["sampling"])
  per_task, candidates["tasks"] = {}, {}
  for task in tasks_apart:
    options = [best["video"]] + [
      s for t, k, g in TASK_GRID if (s := Sampling(temperature=t, top_k=k, guidance_scale=g)) != best["video"]
    ]
    scored = []
    for chosen in options:
      value, rates = score(gen, task, {**best, "video": chosen}, FLAGS.task_num)
      scored.append({"sampling": dataclasses.asdict(chosen), "score": value, task: rates})
      print(f"{task} {chosen}: {value:.3f} {rates}", file=sys.stderr, flush=True)
    candidates["tasks"][task] = scored
    winner = max(range(len(options)), key=lambda i: scored[i]["score"])  # the first best: a tie keeps
    if winner:
      per_task[lm_tasks.user_task(task)] = {"video": options[winner]}
  write_sampling(folder, best, per_task)
  print(
    json.dumps(
      {
        "num": FLAGS.num,
        "final_num": FLAGS.final_num,
        "task_num": FLAGS.task_num,
        "split": "validation",
        "chosen": sampling_json(best, per_task),
        "candidates": candidates,
      }
    )
  )


if __name__ == "__main__":
  app.run(main)
