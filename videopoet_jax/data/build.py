"""Builds a dataset into a TFDS data folder, in this process or on an Apache Beam runner.

  python -m videopoet_jax.data.build --dataset=clip_folder:source_dir=media/video [--data_dir=data/tfds]
  python -m videopoet_jax.data.build --dataset=clip_folder:source_dir=media/video \
      --beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing
  python -m videopoet_jax.data.build --dataset=clip_folder:source_dir=gs://bucket/footage \
      --data_dir=gs://bucket/tfds \
      --beam_pipeline_options=runner=DataflowRunner,project=P,region=R,temp_location=gs://bucket/tmp

Prints the build summary (clip_folder: files, clips, skipped files, shots, filter counts) as one JSON line.
Other programs (encode, preview) build on first use in this process; build here first to use Beam.
"""

from __future__ import annotations

import json
import logging
import time

from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.data import clip_folder, datasets
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("dataset", None, "Dataset name, e.g. clip_folder:source_dir=DIR or shapes_world.")
flags.DEFINE_string("data_dir", datasets.DEFAULT_DATA_DIR, "TFDS data folder to build into.")
flags.DEFINE_string(
  "beam_pipeline_options",
  "",
  "Build on Apache Beam with these comma-separated key=value pipeline options (empty: in this process).",
)
FLAGS = flags.FLAGS
# Beam workers' log level unless --verbosity is given or the options set one.
QUIET_WORKER_LOG_LEVEL = "WARNING"


def main(argv):
  del argv
  quiet_unless_verbose()
  if not FLAGS.dataset:
    cli_errors.exit_with("--dataset is required")
  pipeline_options = FLAGS.beam_pipeline_options
  if pipeline_options and not FLAGS["verbosity"].present:  # Beam's notes on its job service and workers
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    if "sdk_harness_log_level" not in pipeline_options:
      pipeline_options += f",default_sdk_harness_log_level={QUIET_WORKER_LOG_LEVEL}"
  start = time.perf_counter()
  try:
    builder = datasets.make_builder(FLAGS.dataset, FLAGS.data_dir)
    datasets.prepare(builder, pipeline_options)
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  splits = {name: info.num_examples for name, info in builder.info.splits.items()}
  result = {"dataset": FLAGS.dataset, "data_dir": builder.data_dir, "splits": splits}
  if isinstance(builder, clip_folder.ClipFolder):
    result["summary"] = clip_folder.build_summary(builder)
  result["seconds"] = round(time.perf_counter() - start, 1)
  print(f"built {FLAGS.dataset} in {builder.data_dir}")
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
