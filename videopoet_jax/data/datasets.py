"""One name for every dataset the programs read: `NAME[/CONFIG][:key=value,...]`.

  shapes_world                                   the default world (1000/100/100 examples)
  shapes_world/two_objects:num_train=64          another config, other split sizes
  clip_folder:source_dir=media/video,size=64     a folder of the user's footage

Builders are prepared on first use (TFDS skips the work when the data is already in `data_dir`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from videopoet_jax.data import clip_folder, shapes_world_dataset

DEFAULT_DATA_DIR = "data/tfds"
# Per-example features that are media or dense maps (not written to examples.jsonl-style summaries).
DENSE_FEATURES = ("video", "audio", "mask", "flow", "structure")


def parse_name(name: str) -> tuple[str, str | None, dict[str, str]]:
  """`"shapes_world/two_objects:num_train=8"` -> ("shapes_world", "two_objects", {"num_train": "8"})."""
  base, _, options = name.partition(":")
  dataset, _, config = base.partition("/")
  parsed = {}
  for item in filter(None, options.split(",")):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"dataset option {item!r} in {name!r} is not key=value")
    parsed[key.strip()] = value.strip()
  return dataset, config or None, parsed


def _typed(config_class, options: dict[str, str]) -> dict:
  """Casts string options to the types of `config_class`'s fields (tuples: '+'-separated)."""
  fields = {f.name: f for f in dataclasses.fields(config_class)}
  typed = {}
  for key, value in options.items():
    if key not in fields or key in ("name", "version", "description"):
      raise ValueError(f"unknown dataset option {key!r}; known: {sorted(fields)}")
    default = fields[key].default
    if isinstance(default, bool):
      typed[key] = value.lower() in ("1", "true", "yes")
    elif isinstance(default, tuple):
      typed[key] = tuple(v for v in value.split("+") if v)
    else:
      typed[key] = type(default)(value)
  return typed


def make_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The (unprepared) TFDS builder that `name` describes."""
  dataset, config, options = parse_name(name)
  data_dir = data_dir or DEFAULT_DATA_DIR
  if dataset == "shapes_world":
    sizes = _typed(shapes_world_dataset.ShapesWorldConfig, options)
    return shapes_world_dataset.make_builder(config or "default", data_dir=data_dir, **sizes)
  if dataset == "clip_folder":
    options = _typed(clip_folder.ClipFolderConfig, options)
    source_dir = options.pop("source_dir", "")
    if not source_dir:
      raise ValueError("clip_folder needs a source folder: --dataset=clip_folder:source_dir=DIR")
    return clip_folder.make_builder(source_dir, data_dir=data_dir, name=config, **options)
  raise ValueError(f"unknown dataset {dataset!r}: shapes_world | clip_folder")


def beam_options(pipeline_options: str):
  """Beam `PipelineOptions` from `"key=value,key=value"` (as `tfds build --beam_pipeline_options` takes
  them, e.g. `direct_num_workers=2,direct_running_mode=multi_processing`); None for an empty string."""
  if not pipeline_options:
    return None
  from apache_beam.options.pipeline_options import PipelineOptions  # noqa: PLC0415 -- optional package

  return PipelineOptions([f"--{option.strip()}" for option in pipeline_options.split(",") if option.strip()])


def prepare(builder: tfds.core.DatasetBuilder, pipeline_options: str = "") -> None:
  """Builds `builder`'s dataset unless it is there: in this process, or on Beam with `pipeline_options`
  (`beam_options`; builders that support it: clip_folder)."""
  options = beam_options(pipeline_options)
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(beam_options=options) if options is not None else None
  )


def prepared_source(name: str, split: str, data_dir: str | None = None):
  """`(builder, random-access source)` of `split`, building the dataset first if needed."""
  builder = make_builder(name, data_dir)
  prepare(builder)
  sources = builder.as_data_source()
  if split not in sources:
    raise ValueError(f"{name} has no split {split!r}; it has {sorted(sources)}")
  return builder, sources[split]


def clip_format(builder: tfds.core.DatasetBuilder) -> dict[str, float]:
  """`{"fps": ..., "sample_rate": ...}` of the dataset's clips."""
  config = builder.builder_config
  if isinstance(config, clip_folder.ClipFolderConfig):
    return {"fps": config.fps, "sample_rate": config.sample_rate}
  world = shapes_world_dataset.world
  return {"fps": world.FPS, "sample_rate": world.SAMPLE_RATE}


def _plain(value):
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  if isinstance(value, np.ndarray | np.generic):
    return value.tolist()
  if isinstance(value, list | tuple):
    return [_plain(v) for v in value]
  return value


def describe(example: dict, features: tfds.features.FeaturesDict) -> dict:
  """JSON-ready summary of an example: text, scalars and class names (media and dense maps left out)."""
  out = {}
  for key, value in example.items():
    if key in DENSE_FEATURES:
      continue
    feature = features[key] if key in features.keys() else None
    if isinstance(feature, tfds.features.ClassLabel):
      out[key] = feature.int2str(int(value))
    elif isinstance(feature, tfds.features.Sequence) and isinstance(
      feature.feature, tfds.features.FeaturesDict
    ):
      inner = feature.feature
      count = len(next(iter(value.values()))) if value else 0
      out[key] = [
        {
          k: inner[k].int2str(int(v[i])) if isinstance(inner[k], tfds.features.ClassLabel) else _plain(v[i])
          for k, v in value.items()
        }
        for i in range(count)
      ]
    else:
      out[key] = _plain(value)
  return out
