"""sample.py and the Generator on a tiny untrained bundle (LM + tokenizers that fit each other)."""

import importlib.util
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile
from PIL import Image

from videopoet_jax import cli_errors
from videopoet_jax.data import media
from videopoet_jax.decoding import cli, sampler, user_tasks
from videopoet_jax.decoding.generator import Generator, Sampling, sampling_json, settings_for, write_sampling
from videopoet_jax.decoding.schedule import schedule_from_segments
from videopoet_jax.tasks import registry, sequence
from videopoet_jax.tokenizers import pretrained

from conftest import REPO, make_tiny_bundle

FPS, FRAMES, SIZE = 8, 9, 16  # the tiny video tokenizer's clip: 9 frames -> 3 x 2 x 2 ids
CAPTIONS = ["a small red circle moving left", "a big blue square moving up", "a green triangle moving right"]
GREEDY = {"video": Sampling(temperature=0.0), "audio": Sampling(temperature=0.0)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  """Paths of a tiny bundle: video and audio tokenizer exports, an LM export, one without stylize."""
  return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), CAPTIONS, FRAMES, SIZE, FPS)


@pytest.fixture(scope="module")
def generator(bundle):
  return Generator.load(bundle["lm"], bundle["video_tokenizer"], bundle["audio_tokenizer"])


@pytest.fixture(scope="module")
def media_files(tmp_path_factory):
  """An input video (24 fps, 40x30, 2 s), a png image and a png mask of the video's size."""
  root = tmp_path_factory.mktemp("media")
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 255, (48, 30, 40, 3), np.uint8)
  media.write_video(str(root / "in.mp4"), frames, 24)
  Image.fromarray(frames[0]).save(root / "image.png")
  mask = np.zeros((30, 40), np.uint8)
  mask[5:20, 10:30] = 255
  Image.fromarray(mask).save(root / "mask.png")
  Image.fromarray(mask[:10]).save(root / "small_mask.png")
  return {
    k: str(root / f) for k, f in (("video", "in.mp4"), ("image", "image.png"), ("mask", "mask.png"))
  } | {
    "small_mask": str(root / "small_mask.png"),
    "root": str(root),
  }


def _load_sample():
  spec = importlib.util.spec_from_file_location("sample_cli", REPO / "sample.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


SAMPLE = _load_sample()


def _run(bundle, *args, checkpoint=None):
  """Runs sample.py's main in this process (the tokenizers come from inside the LM export); returns its
  printed summary (SystemExit propagates)."""
  argv = ["sample.py", f"--checkpoint={checkpoint or bundle['lm']}"]
  SAMPLE.FLAGS.unparse_flags()
  SAMPLE.FLAGS([*argv, *args])
  SAMPLE.main([])


def _frames(path):
  return media.read_video(str(path)).frames


CASES = {
  "text_to_video": (["--prompt=a red circle"], "out.mp4", FRAMES),
  "story": (
    ["--prompts=a red circle|a blue square|a red circle"],
    "out.mp4",
    FRAMES + 2 * 4,
  ),  # 2 rounds of 4
  "text_to_image": (["--prompt=a red circle"], "out.png", None),
  "image_to_video": (["--image={image}"], "out.mp4", FRAMES),
  "extend": (["--video={video}", "--seconds=1"], "out.mp4", 16 + 8),  # 2 s at 8 fps, one round of 8 frames
  "bridge": (["--image={image}", "--last_image={image}"], "out.mp4", FRAMES),
  "loop": (["--prompt=a red circle"], "out.mp4", FRAMES + FRAMES - 2),  # the clip, the bridge's inside
  "inpaint": (["--video={video}"], "out.mp4", FRAMES),
  "outpaint": (["--video={video}"], "out.mp4", FRAMES),
  "stylize": (["--video={video}", "--prompt=a blue square"], "out.mp4", FRAMES),
  "video_to_audio": (["--video={video}"], "out.wav", FRAMES),
  "text_to_audio": (["--prompt=a red circle"], "out.wav", FRAMES),
  "super_resolve": (["--video={video}"], "out.mp4", 16),  # the whole 2 s at 8 fps, 2x the size
}
# Other input sets of the same tasks: (arguments, output frames).
VARIANTS = {
  # 16 frames, the round of 8 frames that leads into them.
  "extend backward": (["--task=extend", "--video={video}", "--seconds=1", "--direction=backward"], 16 + 8),
  # a's 16 frames, the bridge without its ends (9 - 2), b's 16 frames.
  "transition": (["--task=bridge", "--video={video}", "--next_video={video}"], 16 + FRAMES - 2 + 16),
  "loop of a video": (["--task=loop", "--video={video}"], 16 + FRAMES - 2),
  "text_to_video, super-resolved": (["--task=text_to_video", "--prompt=red", "--super_resolve"], FRAMES),
  "text_to_image, super-resolved": (["--task=text_to_image", "--prompt=red", "--super_resolve"], None),
}
# Outputs of the SR stage are twice the base size.
SUPER_RESOLVED = ("super_resolve", "--super_resolve")


def _size(arguments) -> int:
  return 2 * SIZE if any(a.endswith(SUPER_RESOLVED) for a in arguments) else SIZE


def _check_outputs(paths, frames, size=SIZE):
  for path in paths:
    if str(path).endswith(".png"):
      assert np.asarray(Image.open(path)).shape == (size, size, 3)
    elif str(path).endswith(".wav"):
      wave, rate = soundfile.read(path)
      assert rate == 16_000 and len(wave) == 6 * 40  # 6 audio frames of the tiny hop
      assert _frames(str(path).replace(".wav", ".mp4")).shape[:2] == (frames, SIZE)
    else:
      assert _frames(path).shape == (frames, size, size, 3)


@pytest.mark.parametrize("task", list(CASES))
def test_every_task_writes_its_outputs(task, bundle, media_files, tmp_path, capsys):
  arguments, name, frames = CASES[task]
  out = tmp_path / name
  arguments = [a.format(**media_files) for a in arguments]
  _run(bundle, f"--task={task}", *arguments, f"--output={out}", "--num_samples=2")
  assert "wrote" in capsys.readouterr().out
  outputs = [tmp_path / name.replace(".", f"_{i}.") for i in range(2)]
  _check_outputs(outputs, frames, _size([f"--task={task}"]))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_other_input_sets_write_their_outputs(variant, bundle, media_files, tmp_path):
  arguments, frames = VARIANTS[variant]
  out = tmp_path / ("out.png" if frames is None else "out.mp4")
  _run(bundle, *[a.format(**media_files) for a in arguments], f"--output={out}")
  _check_outputs([out], frames, _size(arguments))


def test_super_resolution_joins_runs_of_one_clip_and_needs_an_sr_stage(generator, bundle, monkeypatch):
  """A clip longer than the model's goes through the SR stage in runs of `gen.frames` frames, each as its
  own clip (greedy: a run's output is the same alone); a model without the stage says so."""
  from videopoet_jax.decoding import super_resolution

  greedy = super_resolution.SRSampling(steps=3, temperature=0.0, text_guidance=1.0, low_res_guidance=1.0)
  monkeypatch.setattr(generator.super_resolver, "default_sampling", greedy)
  clips = np.random.default_rng(5).integers(0, 255, (1, FRAMES + 3, SIZE, SIZE, 3), np.uint8)
  prompt = ["a red circle"]
  high = generator.super_resolve(clips, prompt, seed=0)
  assert high.shape == (1, FRAMES + 3, 2 * SIZE, 2 * SIZE, 3) and high.dtype == np.uint8
  # Equal up to one uint8 level: the run and the clip alone decode in batches of different shapes, whose float
  # sums XLA may order differently on some CPUs (one pixel in 27,648 rounded the other way on one machine).
  same = lambda a, b: np.testing.assert_allclose(a.astype(int), b.astype(int), rtol=0, atol=1)  # noqa: E731
  same(high[:, :FRAMES], generator.super_resolve(clips[:, :FRAMES], prompt, 1))
  last = np.concatenate([clips[:, FRAMES:], np.repeat(clips[:, -1:], FRAMES - 3, axis=1)], axis=1)
  same(high[:, FRAMES:], generator.super_resolve(last, prompt, 2)[:, :3])
  without = Generator.load(bundle["lm_no_stylize"])
  with pytest.raises(ValueError, match="^this model has no super-resolution stage"):
    without.super_resolve(clips, [None], 0)


def test_joins_keep_the_given_frames(generator):
  """Backward extension ends with the given clip, a transition starts with the first clip and ends with
  the next one, a loop starts with its clip: the given frames are kept exactly, the new ones go where the
  docstrings say."""
  rng = np.random.default_rng(3)
  a, b = (rng.integers(0, 255, (1, 12, SIZE, SIZE, 3), np.uint8) for _ in range(2))
  backward = generator.extend(a, 1.0, [None], GREEDY, 0, direction="backward")
  assert backward.shape[1] == 12 + 8
  np.testing.assert_array_equal(backward[:, 8:], a)
  joined = generator.transition(a, b, [None], GREEDY, 0)
  np.testing.assert_array_equal(joined[:, :11], a[:, :11])
  np.testing.assert_array_equal(joined[:, -12:], b)
  bridge = generator.bridge(a[:, -1], b[:, 0], [None], GREEDY, 0)
  np.testing.assert_array_equal(joined[:, 11 : 11 + FRAMES - 1], bridge[:, :-1])
  looped = generator.loop(a, [None], GREEDY, 0)
  np.testing.assert_array_equal(looped[:, :12], a)
  np.testing.assert_array_equal(
    looped[:, 12:], generator.bridge(a[:, -1], a[:, 0], [None], GREEDY, 0)[:, 1:-1]
  )


def test_one_task_table_names_every_task_and_its_missing_inputs():
  assert set(CASES) == set(user_tasks.NAMES)  # sample.py's --task choices are the table's
  request = user_tasks.Request(prompts=[" "], sampling=GREEDY, seconds=0.0)
  with pytest.raises(ValueError, match="^stylize needs video and prompt$"):
    user_tasks.run(None, "stylize", request)  # refused before any model call
  assert user_tasks.missing_inputs("extend", request) == ["video", "seconds"]


def test_generation_is_deterministic_under_a_seed(generator):
  sampling = {"video": Sampling(temperature=1.0)}
  first = generator.text_to_video(CAPTIONS[:2], sampling, seed=3)
  np.testing.assert_array_equal(first, generator.text_to_video(CAPTIONS[:2], sampling, seed=3))
  assert not np.array_equal(first, generator.text_to_video(CAPTIONS[:2], sampling, seed=4))
  assert first.shape == (2, FRAMES, SIZE, SIZE, 3) and first.dtype == np.uint8


def test_the_models_sampling_settings_are_what_sample_py_uses_without_flags(bundle, tmp_path):
  model = tmp_path / "lm"
  pretrained.copy_export(bundle["lm"], str(model))
  defaults = {"video": Sampling(temperature=0.0), "audio": Sampling(0.5, 4, 1.0, 2.0)}
  # text_to_video chosen apart from the per-kind settings (greedy), every other task with those.
  own = {"text_to_video": {"video": Sampling(temperature=0.0)}}
  write_sampling(str(model), {**defaults, "video": Sampling(temperature=1.0)}, own)
  loaded = Generator.load(str(model))
  assert loaded.default_sampling == {**defaults, "video": Sampling(temperature=1.0)}
  assert loaded.sampling_for("text_to_video") == defaults
  assert loaded.sampling_for("inpaint") == loaded.default_sampling
  # Only what a task changes is written: with greedy video as the default, text_to_video changes nothing.
  assert sampling_json(loaded.default_sampling, own)["tasks"] == {
    "text_to_video": {"video": GREEDY["video"].__dict__}
  }
  assert "tasks" not in sampling_json(defaults, own)
  loaded = defaults
  # The export's greedy setting for the task: any seed gives the same clip; a --temperature flag overrides it.
  outputs = {}
  for seed, flags in ((0, ()), (1, ()), (0, ("--temperature=1",)), (1, ("--temperature=1",))):
    out = tmp_path / f"t2v_{seed}_{len(flags)}.mp4"
    _run(
      bundle,
      "--task=text_to_video",
      "--prompt=red",
      f"--output={out}",
      f"--seed={seed}",
      *flags,
      checkpoint=model,
    )
    outputs[seed, len(flags)] = _frames(out)
  np.testing.assert_array_equal(outputs[0, 0], outputs[1, 0])
  assert not np.array_equal(outputs[0, 1], outputs[1, 1])
  SAMPLE.FLAGS.unparse_flags()
  SAMPLE.FLAGS(
    ["sample.py", "--task=text_to_video", "--output=x.mp4", "--top_k=7", "--audio_temperature=0.9"]
  )
  chosen = cli.sampling(loaded)
  assert chosen["video"] == Sampling(0.0, 7, 1.0, 1.0) and chosen["audio"] == Sampling(0.9, 7, 1.0, 2.0)


def test_structural_tokens_are_forced_and_ids_stay_in_their_ranges(generator):
  vocab, layout = generator.vocab, generator.layout
  for name in ("text_to_video", "video_to_audio"):
    task = registry.get(name)
    record = {"text": generator.encode_text(CAPTIONS[0])[0], "video": np.zeros(layout.latent_shape, int)}
    prompt = sequence.build_prefix(task, record, vocab, layout).tokens[None]
    schedule = schedule_from_segments(sequence.output_segments(task, vocab, layout))
    settings = settings_for({"video": Sampling(temperature=5.0)})
    tokens = np.asarray(sampler.generate(generator.model, prompt, schedule, settings, jax.random.key(0)))[0]
    end = "<eov_o>" if name == "text_to_video" else "<eoa_o>"
    assert list(tokens[-2:]) == [vocab.special(end), vocab.special("<eos>")]
    # Every level's ids land in that level's range (to_local checks the ranges).
    ids = sequence.to_local(task.output, tokens[:-2], vocab, layout)
    assert ids.shape == ((3, 2, 2) if name == "text_to_video" else (3, 6))


def test_guidance_runs_the_unconditional_branch(generator):
  greedy = lambda scale, negative=None: generator.text_to_video(
    CAPTIONS[:1], {"video": Sampling(temperature=0.0, guidance_scale=scale)}, 0, negative
  )
  plain = greedy(1.0)
  np.testing.assert_array_equal(plain, generator.text_to_video(CAPTIONS[:1], GREEDY, 0))
  guided, negative = greedy(4.0), greedy(4.0, "a green triangle")
  assert not np.array_equal(plain, guided) and not np.array_equal(guided, negative)


def test_left_padding_of_a_batch_does_not_change_a_sample(generator):
  alone = generator.text_to_video(["red"], GREEDY, 0)
  batched = generator.text_to_video(["red", "a big blue square moving up"], GREEDY, 0)
  np.testing.assert_array_equal(alone[0], batched[0])


BAD = [
  (("--task=text_to_video", "--prompt= "), "the prompt is empty"),
  (("--task=text_to_video",), "needs --prompt"),
  (("--task=extend", "--video=/nonexistent.mp4", "--seconds=1"), "/nonexistent.mp4: no such file"),
  (("--task=extend", "--video={image}", "--seconds=1"), "is an image"),
  (("--task=video_to_audio", "--video={bad}"), "bad.mp4: not a video file"),
  (("--task=video_to_audio", "--video={empty}"), "empty.mp4: 0 bytes"),
  (("--task=video_to_audio", "--video={sound}"), "sound.wav: no video stream"),
  (("--task=text_to_video", "--prompt=red", "--seconds=-1"), "--seconds=-1: must be > 0"),
  (("--task=text_to_video", "--prompt=red", "--temperature=-1"), "--temperature=-1 is out of range"),
  (("--task=text_to_video", "--prompt=red", "--top_p=0"), "--top_p=0 is out of range"),
  (("--task=text_to_video", "--prompt=red", "--num_samples=0"), "--num_samples=0: must be >= 1"),
  (("--task=inpaint", "--video={video}", "--box=1,2,3"), "give four whole numbers"),
  (("--task=text_to_video", "--prompt=red", "--output={root}/x.txt"), r"x.txt: .txt; use .mp4 or .gif"),
  (("--task=text_to_image", "--prompt=red", "--output={root}/x.mp4"), r"use .png, .jpg"),
  (("--task=video_to_audio", "--video={video}", "--output={root}/x.mp4"), r"use .wav, .flac or .ogg"),
  (("--task=text_to_video", "--prompt=red", "--output=/nonexistent/x.mp4"), "folder /nonexistent does not"),
  (("--task=inpaint", "--video={video}", "--mask={small_mask}"), "the mask is 40x10"),
  (("--task=inpaint", "--video={video}", "--box=30,5,10,20"), "does not lie inside"),
  (("--task=extend", "--video={video}"), "needs --seconds"),
  (("--task=story", "--prompts=a red circle"), "two or more, none empty"),
  (("--task=story", "--prompts=a red circle|"), "two or more, none empty"),
  (("--task=text_to_video", "--prompt=a", "--prompts=a|b"), "are for --task=story"),
  (("--task=bridge", "--image={image}"), r"needs --last_image \(or --video and --next_video\)"),
  (("--task=bridge", "--video={video}"), r"needs --image and --last_image \(or --video and --next_video\)"),
  (("--task=loop",), r"needs --prompt \(or --video\)"),
  (("--task=text_to_video", "--prompt=a", "--direction=backward"), "--direction: not an input of"),
  (("--task=image_to_video", "--image={image}", "--last_image={image}"), "--last_image: not an input of"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_inputs_exit_with_one_line(args, message, bundle, media_files, tmp_path):
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"not a video at all")
  (tmp_path / "empty.mp4").write_bytes(b"")
  soundfile.write(tmp_path / "sound.wav", np.zeros(1600, np.float32), 16_000)
  files = {**media_files, "bad": bad, "empty": tmp_path / "empty.mp4", "sound": tmp_path / "sound.wav"}
  formatted = [a.format(**files) for a in args]
  if not any(a.startswith("--output=") for a in formatted):
    task = next(a for a in formatted if a.startswith("--task=")).split("=")[1]
    formatted.append(f"--output={tmp_path / 'x'}{SAMPLE.output_extensions(task)[0]}")
  with pytest.raises(SystemExit, match=message) as exit_info:
    _run(bundle, *formatted)
  line = str(exit_info.value)
  assert line.startswith("error: ") and "\n" not in line and len(line) <= cli_errors.ERROR_LINE_CHARS


@pytest.mark.parametrize("output", ["result.txt", "/nonexistent/x.mp4"])
def test_a_bad_output_fails_before_the_model_loads(output, bundle, monkeypatch):
  def no_loading():
    raise AssertionError("the model was loaded before the flags were checked")

  monkeypatch.setattr(SAMPLE.cli, "load_generator", no_loading)
  with pytest.raises(SystemExit, match="cannot write"):
    _run(bundle, "--task=text_to_video", "--prompt=red", f"--output={output}")


def test_a_truncated_video_is_read_in_part_with_a_note(bundle, media_files, tmp_path, capsys):
  whole = open(media_files["video"], "rb").read()
  moov = whole.find(b"moov")
  assert 0 < moov < len(whole) // 2, "the test video's index must come first (faststart) to cut its data"
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(whole[: len(whole) * 2 // 3])
  _run(bundle, "--task=extend", f"--video={cut}", "--seconds=1", f"--output={tmp_path / 'x.mp4'}")
  err = capsys.readouterr().err
  assert "note:" in err and "of 48 frames" in err, err


def test_wrong_checkpoints_and_untrained_tasks_are_refused(bundle, media_files, tmp_path):
  out = f"--output={tmp_path / 'x.mp4'}"
  with pytest.raises(SystemExit, match="holds a 'video_tokenizer' model, not a 'lm'"):
    _run(bundle, "--task=text_to_video", "--prompt=red", out, checkpoint=bundle["video_tokenizer"])
  with pytest.raises(SystemExit, match="not trained for stylize"):
    _run(
      bundle,
      "--task=stylize",
      "--prompt=red",
      f"--video={media_files['video']}",
      out,
      checkpoint=bundle["lm_no_stylize"],
    )
  bundled_audio = "--audio_tokenizer=" + pretrained.bundled_path(
    "audio_tokenizer"
  )  # 4 x 1024 ids, not 3 x 16
  with pytest.raises(SystemExit, match="tokenizers do not fit"):
    wav = f"--output={tmp_path / 'x.wav'}"
    _run(bundle, "--task=video_to_audio", f"--video={media_files['video']}", wav, bundled_audio)
  no_sr = bundle["lm_no_stylize"]  # a model without an SR stage
  with pytest.raises(SystemExit, match="^error: this model has no super-resolution stage"):
    _run(bundle, "--task=super_resolve", f"--video={media_files['video']}", out, checkpoint=no_sr)
  with pytest.raises(SystemExit, match="^error: this model has no super-resolution stage"):
    _run(bundle, "--task=text_to_video", "--prompt=red", "--super_resolve", out, checkpoint=no_sr)


def test_a_long_prompt_is_cut_with_a_note(bundle, tmp_path, capsys):
  long_prompt = " ".join(CAPTIONS * 3)
  _run(bundle, "--task=text_to_image", f"--prompt={long_prompt}", f"--output={tmp_path / 'x.png'}")
  assert "the model reads 4" in capsys.readouterr().err


def test_the_command_line_prints_one_error_line(bundle, tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "sample.py",
      "--task=extend",
      "--video=/nonexistent.mp4",
      "--seconds=1",
      f"--checkpoint={bundle['lm']}",
      f"--video_tokenizer={bundle['video_tokenizer']}",
      f"--audio_tokenizer={bundle['audio_tokenizer']}",
      f"--output={tmp_path / 'x.mp4'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1] == "error: /nonexistent.mp4: no such file" and "Traceback" not in result.stderr


def test_sampling_reads_and_writes_media_without_forking(bundle, media_files, tmp_path):
  """sample.py reads an mp4 and writes mp4 + wav on the tiny model: no fork warning (JAX warns on fork);
  and media I/O in this process starts no child process (fork hooks count them)."""
  result = subprocess.run(
    [
      sys.executable,
      "sample.py",
      "--task=video_to_audio",
      f"--video={media_files['video']}",
      f"--checkpoint={bundle['lm']}",
      f"--output={tmp_path / 'x.wav'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "always"},
  )
  assert result.returncode == 0, result.stderr
  assert "RuntimeWarning" not in result.stderr and "fork" not in result.stderr, result.stderr
  forks = []
  os.register_at_fork(before=lambda: forks.append(1))
  frames = media.read_video(media_files["video"]).frames
  media.write_video_with_audio(str(tmp_path / "y.mp4"), frames, 24, np.zeros(16000, np.float32), 16000)
  assert media.read_audio_track(str(tmp_path / "y.mp4"), 16000).size >= 16000
  media.read_audio(str(tmp_path / "x.wav"), 16000)
  assert not forks
