"""The per-task evaluation end to end on a tiny untrained bundle at shapes_world's clip format."""

import json
import math
import os
import subprocess
import sys

import pytest

from videopoet_jax.decoding.generator import Generator, Sampling
from videopoet_jax.eval import lm_tasks, shapes_scores

from conftest import REPO, make_tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  captions = [e["caption"] for e in lm_tasks.split_examples(4)]
  return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), captions, frames=17, size=64, fps=8)


def test_every_task_is_generated_and_scored(bundle):
  gen = Generator.load(bundle["lm"], bundle["video_tokenizer"], bundle["audio_tokenizer"])
  sampling = {"video": Sampling(temperature=1.0), "audio": Sampling(temperature=1.0)}
  report = lm_tasks.evaluate(
    gen, list(lm_tasks.TASKS), num=2, sampling=sampling, batch_size=2, log=lambda _: None
  )
  assert set(report) == set(shapes_scores.TASK_CRITERIA)
  for task, criteria in shapes_scores.TASK_CRITERIA.items():
    for criterion in criteria:
      summary = report[task][criterion.name]
      assert summary["n"] == 2 and summary["target"] == criterion.target
      if criterion.kind == "rate":
        assert 0 <= summary["value"] <= 1 and summary["low"] <= summary["value"] <= summary["high"]
      else:
        assert math.isfinite(summary["value"])


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
