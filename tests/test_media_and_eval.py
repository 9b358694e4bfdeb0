import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from videopoet_jax.data import media, shapes_world
from videopoet_jax.eval import audio_metrics, video_metrics

from conftest import REPO


def _write_clip(path, frames=20, fps=8):
  video = np.concatenate([shapes_world.render(s)["video"] for s in (1, 2)])[:frames]
  media.write_video(str(path), video, fps)
  return video


def test_write_read_round_trip(tmp_path):
  video = _write_clip(tmp_path / "a.mp4")
  decoded = media.read_video(str(tmp_path / "a.mp4"))
  assert decoded.frames.shape == video.shape and decoded.fps == pytest.approx(8)
  assert video_metrics.psnr(video[None], decoded.frames[None])[0] > 30  # lossy but close


def test_clips_cover_the_whole_video(tmp_path):
  _write_clip(tmp_path / "a.mp4", frames=20)
  clips = video_metrics.clips_from_video(str(tmp_path / "a.mp4"), frames=17, fps=8, size=32)
  assert clips.shape == (2, 17, 32, 32, 3) and clips.dtype == np.uint8
  np.testing.assert_array_equal(clips[1, 3:], np.repeat(clips[1, 2:3], 14, axis=0))  # padded tail


def test_resample_indices():
  np.testing.assert_array_equal(media.resample_indices(30, 30.0, 10.0), np.arange(10) * 3)
  np.testing.assert_array_equal(media.resample_indices(5, 4.0, 8.0), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_metrics():
  a = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
  assert np.isinf(video_metrics.psnr(a, a)).all() or (video_metrics.psnr(a, a) > 90).all()
  np.testing.assert_allclose(video_metrics.ssim(a, a), 1.0)
  b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
  assert (video_metrics.psnr(a, b) < 30).all() and (video_metrics.ssim(a, b) < 1).all()


def test_the_floored_mel_distance_ignores_noise_below_the_floor_but_not_a_wrong_pitch():
  rate = 16_000
  t = np.arange(rate) / rate
  tone = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
  hiss = 1e-4 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)  # ~ -70 dB under the tone
  wrong = 0.3 * np.sin(2 * np.pi * 660 * t).astype(np.float32)
  floored = lambda x: float(audio_metrics.floored_mel_distance(tone, x, rate)[0])  # noqa: E731
  unfloored = lambda x: float(audio_metrics.log_mel_distance(tone[None], x[None], rate)[0])  # noqa: E731
  assert floored(tone) == 0.0
  assert floored(tone + hiss) < 0.01 < unfloored(tone + hiss)  # the unfloored one scores the silent bands
  assert floored(wrong) > 0.1 > 10 * floored(tone + hiss)


def test_undecodable_file_raises(tmp_path):
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(np.random.default_rng(0).bytes(5000))
  with pytest.raises(media.MediaError, match="bad.mp4"):
    media.read_video(str(bad))


def _eval(*args):
  return subprocess.run(
    [sys.executable, str(REPO / "tokenizers" / "eval.py"), *args], capture_output=True, text=True, cwd=REPO
  )


def test_eval_cli_round_trips_a_file(tmp_path, tiny_video_config):
  from videopoet_jax.training import video_tokenizer as trainer_lib

  tiny_video_config.train.steps = 2
  trainer_lib.train(tiny_video_config, str(tmp_path / "wd"))
  _write_clip(tmp_path / "in.mp4")
  out = _eval(
    f"--video={tmp_path / 'in.mp4'}", f"--checkpoint={tmp_path / 'wd'}", f"--output={tmp_path / 'o.mp4'}"
  )
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["clips"] == 4 and result["tokens_per_clip"] == 2 * 2 * 2
  assert result["bits_per_pixel"] == pytest.approx(8 * 8 / (5 * 16 * 16))
  assert 0 < result["psnr"] < 60 and -1 <= result["ssim"] <= 1
  side = media.read_video(str(tmp_path / "o.mp4")).frames
  assert side.shape[1:] == (256, 512, 3)
  searched = _eval(
    f"--video={tmp_path / 'in.mp4'}",
    f"--checkpoint={tmp_path / 'wd'}",
    "--refine_steps=5",
    "--refine_flip_rounds=1",
  )
  assert searched.returncode == 0, searched.stderr[-2000:]
  searched = json.loads(searched.stdout.strip().splitlines()[-1])
  assert searched["refine_steps"] == 5 and searched["refine_flip_rounds"] == 1
  assert searched["psnr"] > result["psnr"]


@pytest.mark.parametrize(
  ("args", "message"),
  [
    (("--video={tmp}/missing.mp4",), "missing.mp4: no such file"),
    (("--video={tmp}/empty.mp4",), "empty.mp4: 0 bytes"),
    (("--audio={tmp}/clip.wav", "--output={tmp}/out.txt"), "out.txt: .txt; use .wav, .flac or .ogg"),
    (("--audio={tmp}/clip.wav", "--levels=-1"), "--levels=-1: must be >= 0"),
  ],
)
def test_eval_cli_errors_are_one_line_before_loading(args, message, tmp_path):
  (tmp_path / "empty.mp4").write_bytes(b"")
  soundfile.write(tmp_path / "clip.wav", np.zeros(1600, np.float32), 16_000)
  # --checkpoint names no model: the flags must be refused before any model loads.
  out = _eval(*(a.format(tmp=tmp_path) for a in args), f"--checkpoint={tmp_path / 'no_model'}")
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1 and lines[-1].startswith("error: ") and lines[-1].endswith(message), out.stderr


def test_bundled_tokenizer_round_trips_procedural_clips():
  import jax

  from videopoet_jax.tokenizers import pretrained

  tokenizer, config = pretrained.load_video_tokenizer()
  assert tokenizer.geometry.latent_shape(config.data.frames, config.data.size, config.data.size) == (5, 8, 8)
  clips = np.stack([shapes_world.render(seed)["video"] for seed in range(10_001, 10_005)])
  round_trip = jax.jit(lambda x: tokenizer.decode(tokenizer.encode(x)))
  psnr = video_metrics.psnr(clips, video_metrics.round_trip(round_trip, clips, batch_size=2))
  # Measured: 19.1-23.2 dB for the bundled weights, 5-11 dB for an untrained model of the same shape.
  assert psnr.mean() > 18.0 and psnr.min() > 16.0, psnr
