"""B5: tokenizer throughput on this machine. Prints one JSON line (and writes it to --out).

  python bench/tokenizers.py [--checkpoint=DIR] [--batch_size=8] [--repeats=5]

Video: clips/s and frames/s for encode and decode at the tokenizer's clip format. Audio: real-time factor
(compute seconds per second of audio; below 1 is faster than real time) for encode and decode, on batches
of eval windows. Medians of `repeats` timed calls after a warm-up; compile time reported separately.
"""

import os
import platform

import bench_common
import jax
from absl import app, flags

from videopoet_jax.tokenizers import pretrained

flags.DEFINE_string("checkpoint", None, "Video tokenizer export or workdir (default: bundled).")
flags.DEFINE_string("audio_checkpoint", None, "Audio tokenizer export or workdir (default: bundled).")
flags.DEFINE_integer("batch_size", 8, "Clips per call.")
flags.DEFINE_integer("repeats", 5, "Timed calls per figure.")
flags.DEFINE_string("out", "bench/tokenizers.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  tokenizer, config = pretrained.load_video_tokenizer(FLAGS.checkpoint)
  shape = (FLAGS.batch_size, config.data.frames, config.data.size, config.data.size, 3)
  video = jax.random.uniform(jax.random.PRNGKey(0), shape, minval=-1.0, maxval=1.0)
  encode, decode = jax.jit(tokenizer.encode), jax.jit(tokenizer.decode)
  encode_s, encode_compile_s = bench_common.timed(lambda: encode(video), FLAGS.repeats)
  ids = encode(video)
  decode_s, decode_compile_s = bench_common.timed(lambda: decode(ids), FLAGS.repeats)
  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "backend": jax.default_backend(),
    "dtype": "float32",
    "clip": list(shape[1:]),
    "batch_size": FLAGS.batch_size,
    "video_encode_clips_per_s": FLAGS.batch_size / encode_s,
    "video_decode_clips_per_s": FLAGS.batch_size / decode_s,
    "video_encode_frames_per_s": FLAGS.batch_size * shape[1] / encode_s,
    "video_decode_frames_per_s": FLAGS.batch_size * shape[1] / decode_s,
    "video_encode_compile_s": encode_compile_s,
    "video_decode_compile_s": decode_compile_s,
  }
  result.update(_audio())
  bench_common.emit(result, FLAGS.out)


def _audio():
  tokenizer, config = pretrained.load_audio_tokenizer(FLAGS.audio_checkpoint)
  geometry = tokenizer.geometry
  window = geometry.samples(geometry.frames(config.data.eval_window_samples))
  wave = jax.random.uniform(jax.random.PRNGKey(0), (FLAGS.batch_size, window), minval=-0.5, maxval=0.5)
  encode, decode = jax.jit(tokenizer.encode), jax.jit(tokenizer.decode)
  encode_s, encode_compile_s = bench_common.timed(lambda: encode(wave), FLAGS.repeats)
  ids = encode(wave)
  decode_s, decode_compile_s = bench_common.timed(lambda: decode(ids), FLAGS.repeats)
  audio_s = FLAGS.batch_size * window / geometry.sample_rate
  return {
    "audio_window_samples": window,
    "audio_encode_rtf": encode_s / audio_s,
    "audio_decode_rtf": decode_s / audio_s,
    "audio_encode_compile_s": encode_compile_s,
    "audio_decode_compile_s": decode_compile_s,
  }


if __name__ == "__main__":
  app.run(main)
