"""Trains any stage: `python train.py --config=configs/<trainer>.py:<variant> --workdir=DIR`.

Override any config value on the command line, e.g. `--config.train.steps=100`. A killed run resumes from
its last checkpoint when started again with the same workdir.
"""

import importlib

from absl import app, flags, logging
from ml_collections import config_flags

from videopoet_jax.training.progress import quiet_library_logs

config_flags.DEFINE_config_file(
  "config", None, "Config file, e.g. configs/video_tokenizer.py:demo.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs and exports go.")
flags.mark_flags_as_required(["config", "workdir"])

# config.trainer -> module with train(config, workdir).
TRAINERS = {
  "video_tokenizer": "videopoet_jax.training.video_tokenizer",
  "audio_tokenizer": "videopoet_jax.training.audio_tokenizer",
  "lm": "videopoet_jax.training.lm",
}


def main(argv):
  del argv
  config = flags.FLAGS.config
  if config.trainer not in TRAINERS:
    raise app.UsageError(f"unknown config.trainer {config.trainer!r}; known: {sorted(TRAINERS)}")
  quiet_library_logs()
  logging.info("config:\n%s", config)
  importlib.import_module(TRAINERS[config.trainer]).train(config, flags.FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
