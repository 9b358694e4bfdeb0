"""Trains any stage: `python train.py --config=configs/<trainer>.py:<variant> --workdir=DIR`.

Override any config value on the command line, e.g. `--config.train.steps=100`. A killed run resumes from
its last checkpoint when started again with the same workdir.

Multi-process (TPU pod slices, GPU clusters): every process runs this same command, plus the coordinator
flags below or the environment the cluster sets (videopoet_jax/distributed.py; README "Scale-out").
"""

import importlib
import os

from absl import app, flags, logging
from ml_collections import config_flags

from videopoet_jax import cli_errors, config_utils, distributed
from videopoet_jax.training import checkpoints
from videopoet_jax.training.progress import quiet_library_logs

config_flags.DEFINE_config_file(
  "config", None, "Config file, e.g. configs/video_tokenizer.py:demo.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs and exports go.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()

flags.DEFINE_bool(
  "allow_resume_changes",
  False,
  "Resume a workdir whose checkpoints were written under a config that differs in what the run computes "
  "(seed, data, mixture, steps, batch, optimizer, schedule); without it such a resume is refused.",
)

# config.trainer -> module with train(config, workdir).
TRAINERS = {
  "video_tokenizer": "videopoet_jax.training.video_tokenizer",
  "audio_tokenizer": "videopoet_jax.training.audio_tokenizer",
  "lm": "videopoet_jax.training.lm",
  "sr": "videopoet_jax.training.sr",
}


def main(argv):
  del argv
  config = flags.FLAGS.config
  if config.trainer not in TRAINERS:
    raise app.UsageError(f"unknown config.trainer {config.trainer!r}; known: {sorted(TRAINERS)}")
  distributed.initialize_from_flags()
  quiet_library_logs()
  if not distributed.is_primary():
    logging.set_verbosity(logging.WARNING)  # one process logs the run
  logging.info("config:\n%s", config)
  if not flags.FLAGS.allow_resume_changes:
    check_resume(config, flags.FLAGS.workdir)
  importlib.import_module(TRAINERS[config.trainer]).train(config, flags.FLAGS.workdir)


def check_resume(config, workdir: str) -> None:
  """Exits with one line naming the keys when `workdir`'s latest checkpoint was written under a config
  that differs from `config` in what the run computes (config_utils.run_diff)."""
  if not os.path.isdir(os.path.join(workdir, checkpoints.CHECKPOINT_SUBDIR)):
    return
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  saved = checkpoints.read_config(manager) if manager.latest_step() is not None else None
  manager.close()
  diffs = config_utils.run_diff(saved, config_utils.to_json_dict(config)) if saved else []
  if diffs:
    cli_errors.exit_with(
      f"{workdir} holds a run with another config ({'; '.join(diffs)}): use a fresh --workdir, the same "
      "config, or --allow_resume_changes"
    )


if __name__ == "__main__":
  app.run(main)
