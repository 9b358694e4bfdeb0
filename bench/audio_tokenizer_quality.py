"""Audio tokenizer quality on held-out real recordings and procedural clips. Prints one JSON line.

  python bench/audio_tokenizer_quality.py [--checkpoint=DIR] [--config=configs/audio_tokenizer.py:demo]

Held-out files are the ones `audio_clips.split_files` keeps out of training for the given config (every
`holdout_every`-th file of each folder in config.data.audio_dirs). Per file: the multi-scale log-mel
distance and the floored log10-mel distance (`audio_metrics.floored_mel_distance`) of the codec and of the
1 kHz band-limit baseline, and SI-SNR; reported as means over files, per
folder and overall, for every number of RVQ levels. Procedural clips are shapes_world test-range seeds.
"""

import os
import time

import bench_common
import numpy as np
from absl import app, flags

from videopoet_jax import config_utils
from videopoet_jax.data import audio_clips, media, shapes_world
from videopoet_jax.eval import audio_metrics
from videopoet_jax.tokenizers import pretrained

flags.DEFINE_string("checkpoint", None, "Audio tokenizer export or workdir (default: bundled).")
flags.DEFINE_string("config", "configs/audio_tokenizer.py:demo", "Config whose data section names the files.")
flags.DEFINE_integer("batch_size", 4, "Windows per encode/decode call.")
flags.DEFINE_integer("procedural_clips", 20, "shapes_world clips to score.")
flags.DEFINE_integer("first_procedural_seed", 10_000_000, "Seed of the first procedural clip.")
flags.DEFINE_string("out", "bench/audio_tokenizer_quality.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
KEYS = (
  "mel_distance",
  "bandlimit_mel_distance",
  "floored_mel_distance",
  "bandlimit_floored_mel_distance",
  "si_snr",
)


def _score(evaluate, waves):
  rows = [evaluate(w) for w in waves]
  return {key: float(np.mean([r[key] for r in rows])) for key in KEYS}


def main(argv):
  del argv
  start = time.time()
  tokenizer, config = pretrained.load_audio_tokenizer(FLAGS.checkpoint)
  path, _, arg = FLAGS.config.partition(":")
  data = config_utils.load_config_file(path, arg or None).data
  rate = tokenizer.geometry.sample_rate
  groups = {}
  for path in audio_clips.split_files(data)[1]:
    groups.setdefault(os.path.basename(os.path.dirname(path)), []).append(media.read_audio(path, rate))
  groups["all_heldout"] = [w for waves in list(groups.values()) for w in waves]
  seeds = range(FLAGS.first_procedural_seed, FLAGS.first_procedural_seed + FLAGS.procedural_clips)
  groups["procedural"] = [shapes_world.render(s)["audio"] for s in seeds]
  result = {"checkpoint": FLAGS.checkpoint or "bundled", "files": {k: len(v) for k, v in groups.items()}}
  for levels in range(1, tokenizer.geometry.levels + 1):
    evaluate = audio_metrics.CodecEvaluator(tokenizer, config, levels, FLAGS.batch_size)
    result[f"levels_{levels}"] = {
      "kbps": tokenizer.geometry.kbps(levels),
      **{name: _score(evaluate, waves) for name, waves in groups.items()},
    }
  result["wall_s"] = time.time() - start
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
