"""Media I/O throughput of videopoet_jax/data/media.py on this machine. Prints one JSON line (and writes it
to --out).

  python bench/media.py [--frames=240] [--size=256] [--repeats=3]

A synthetic clip (a moving gradient, `--frames` frames of `--size` x `--size` at 24 fps, with a second of
sound per second of video) is written and read back: frames/s of write_video (mp4), write_video_with_audio
(mp4 + AAC), read_video, and samples/s of read_audio_track, medians of `--repeats` runs after a warm-up
(bench_common.timed); the mp4's size and its round-trip PSNR. (That media I/O never forks is a test:
tests/test_sample.py.)
"""

import os
import platform
import tempfile

import bench_common
import numpy as np
from absl import app, flags

from videopoet_jax.data import media

flags.DEFINE_integer("frames", 240, "Frames of the synthetic clip.")
flags.DEFINE_integer("size", 256, "Side of the synthetic clip, pixels.")
flags.DEFINE_integer("repeats", 3, "Timed runs of each operation (median reported).")
flags.DEFINE_string("out", "bench/media.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
FPS = 24
SAMPLE_RATE = 16000


def synthetic_clip(frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """`[frames, size, size, 3]` uint8 moving gradient and `[frames / FPS * SAMPLE_RATE]` float32 tone."""
  t = np.arange(frames)[:, None, None]
  y, x = np.mgrid[:size, :size]
  video = np.stack([(x + 4 * t) % 256, (y + 2 * t) % 256, (x + y + t) % 256], axis=-1).astype(np.uint8)
  seconds = np.arange(int(frames / FPS * SAMPLE_RATE)) / SAMPLE_RATE
  return video, (0.3 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)


def main(_):
  video, wave = synthetic_clip(FLAGS.frames, FLAGS.size)
  with tempfile.TemporaryDirectory() as tmp:
    silent, with_sound = os.path.join(tmp, "silent.mp4"), os.path.join(tmp, "sound.mp4")
    write_s = bench_common.timed(lambda: media.write_video(silent, video, FPS), FLAGS.repeats)[0]
    mux = lambda: media.write_video_with_audio(with_sound, video, FPS, wave, SAMPLE_RATE)
    mux_s = bench_common.timed(mux, FLAGS.repeats)[0]
    read_s = bench_common.timed(lambda: media.read_video(with_sound), FLAGS.repeats)[0]
    audio_s = bench_common.timed(lambda: media.read_audio_track(with_sound, SAMPLE_RATE), FLAGS.repeats)[0]
    decoded = media.read_video(with_sound)
    mp4_kb = os.path.getsize(silent) / 1024
  psnr = 10 * np.log10(255.0**2 / np.mean((decoded.frames.astype(np.float64) - video) ** 2))
  bench_common.emit(
    {
      "bench": "media I/O throughput",
      "machine": platform.machine(),
      "cpu_count": os.cpu_count(),
      "frames": FLAGS.frames,
      "size": FLAGS.size,
      "write_video_fps": FLAGS.frames / write_s,
      "write_video_with_audio_fps": FLAGS.frames / mux_s,
      "read_video_fps": FLAGS.frames / read_s,
      "read_audio_track_samples_per_s": len(wave) / audio_s,
      "mp4_kb": mp4_kb,
      "roundtrip_psnr_db": float(psnr),
    },
    FLAGS.out,
  )


if __name__ == "__main__":
  app.run(main)
