"""The per-task evaluation end to end on a tiny untrained bundle at shapes_world's clip format."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from videopoet_jax.decoding.generator import Generator, Sampling
from videopoet_jax.eval import choose_sampling, lm_tasks, shapes_scores
from videopoet_jax.tokenizers import pretrained

from conftest import REPO, make_tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  captions = [e["caption"] for e in lm_tasks.split_examples(4)]
  return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), captions, frames=17, size=64, fps=8)


def test_every_task_is_generated_and_scored(bundle):
  gen = Generator.load(bundle["lm"], bundle["video_tokenizer"], bundle["audio_tokenizer"])
  sampling = {"video": Sampling(temperature=1.0), "audio": Sampling(temperature=1.0)}
  report = lm_tasks.evaluate(
    gen, list(lm_tasks.TASKS), num=2, sampling=lambda _: sampling, batch_size=2, log=lambda _: None
  )
  assert set(report) == set(shapes_scores.TASK_CRITERIA)
  bounces = sum(bool(e["bounce_frames"]) for e in lm_tasks.split_examples(2))
  for task, criteria in shapes_scores.TASK_CRITERIA.items():
    assert set(report[task]["baselines"]) <= {c.name for c in criteria}
    for criterion in criteria:
      summary = report[task][criterion.name]
      # Clicks are scored on clips with a bounce only.
      assert summary["n"] == (bounces if criterion.name == "clicks" else 2)
      assert summary["target"] == criterion.target
      if criterion.kind == "rate" and summary["n"]:
        assert 0 <= summary["value"] <= 1 and summary["low"] <= summary["value"] <= summary["high"]
      else:
        assert math.isfinite(summary["value"])
  # Direction is also reported per prompted direction; the groups add up to the whole.
  truths = [e["objects"][0]["direction"] for e in lm_tasks.split_examples(2)]
  by_direction = report["text_to_video"]["by_direction"]
  assert sorted(by_direction) == sorted(set(truths))
  assert sum(g["n"] for g in by_direction.values()) == report["text_to_video"]["direction"]["n"]
  assert "by_direction" not in report["text_to_image"]


def test_backward_and_bridge_are_asked_what_they_are_scored_on(bundle):
  """backward generates one round before the whole test clip; bridge goes from its first to its last frame."""
  gen = Generator.load(bundle["lm"], bundle["video_tokenizer"], bundle["audio_tokenizer"])
  sampling = {"video": Sampling(temperature=0.0), "audio": Sampling(temperature=0.0)}
  example = lm_tasks.split_examples(1)[0]
  (backward,) = lm_tasks.run_task(gen, "backward", [example], sampling, seed=0)
  assert len(backward) == gen.frames + gen.frames - gen.context_frames  # one round, then the clip
  np.testing.assert_array_equal(backward[-gen.frames :], example["video"])
  (bridge,) = lm_tasks.run_task(gen, "bridge", [example], sampling, seed=0)
  assert len(bridge) == gen.frames
  first = gen.decode_video(gen.encode_video(example["video"][None, :1]))[0, 0]
  np.testing.assert_array_equal(bridge[0], first)  # the given first frame, through the tokenizer


def test_the_command_writes_a_report_and_refuses_unknown_tasks(bundle, tmp_path):
  paths = [f"--{k}={v}" for k, v in bundle.items() if k != "lm_no_stylize"]
  paths = [p.replace("--lm=", "--checkpoint=") for p in paths]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  command = [sys.executable, "-m", "videopoet_jax.eval", "--num=1", f"--out={tmp_path / 'r.json'}", *paths]
  run = lambda *args: subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True)
  done = run("--tasks=text_to_image")
  assert done.returncode == 0, done.stderr[-2000:]
  report = json.loads((tmp_path / "r.json").read_text())
  assert report["text_to_image"]["color"]["n"] == 1 and report["settings"]["num"] == 1
  bad = run("--tasks=smell")
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown tasks")
  for args, message in ((("--out=r.txt",), "r.txt: .txt; use .json"), (("--top_p=2",), "--top_p=2 is out")):
    bad = run("--tasks=text_to_image", *args)
    assert bad.returncode == 1 and message in bad.stderr.strip().splitlines()[-1], bad.stderr[-2000:]


def test_sampling_settings_are_chosen_on_validation_seeds_and_written_into_the_export(bundle, tmp_path):
  model = tmp_path / "lm"
  pretrained.copy_export(bundle["lm"], str(model))
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  command = [
    sys.executable,
    "-m",
    "videopoet_jax.eval.choose_sampling",
    f"--checkpoint={model}",
    "--num=1",
    "--finalists=2",
    "--final_num=2",
    "--task_num=1",
    "--tasks_apart=text_to_image,outpaint",
  ]
  bad = subprocess.run([*command, "--tasks_apart=smell"], cwd=REPO, env=env, capture_output=True, text=True)
  assert bad.returncode == 1 and "--tasks_apart: ['smell']" in bad.stderr.strip().splitlines()[-1]
  done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result["split"] == "validation"
  assert len(result["candidates"]["video"]) == len(choose_sampling.VIDEO_GRID)
  assert len(result["candidates"]["audio"]) == len(choose_sampling.AUDIO_GRID)
  gen = Generator.load(str(model))
  chosen = gen.default_sampling
  for kind in ("video", "audio"):
    # The two best screened candidates (the earlier in the grid first on a tie) are scored again on 2
    # clips; the better of those (the better screened on a tie) is chosen. A grid of two goes straight there.
    screened = sorted(result["candidates"][kind], key=lambda c: -c.get("score", 0.0))
    finalists = [c for c in screened if "final" in c]
    assert finalists == screened[:2] and all(c["final"]["num"] == 2 for c in finalists)
    assert ("score" in screened[0]) == (len(screened) > 2)
    best = max(finalists, key=lambda c: c["final"]["score"])
    assert chosen[kind] == Sampling(**best["sampling"])
  # Each task scored apart: the chosen video settings first, then TASK_GRID's; it keeps its own settings
  # only where one of those scored higher than the chosen ones.
  assert set(result["candidates"]["tasks"]) == {"text_to_image", "outpaint"}
  for task, scored in result["candidates"]["tasks"].items():
    assert Sampling(**scored[0]["sampling"]) == chosen["video"] and len(scored) >= len(
      choose_sampling.TASK_GRID
    )
    top = max(scored, key=lambda c: c["score"])
    own = gen.sampling_for(lm_tasks.user_task(task))["video"]
    assert own == (chosen["video"] if top["score"] == scored[0]["score"] else Sampling(**top["sampling"]))
