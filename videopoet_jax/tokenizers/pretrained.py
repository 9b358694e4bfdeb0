"""Exported tokenizer parameters: write them after training, load them for eval, encoding and sampling.

An export folder holds `config.json` (the resolved training config plus `export_format`) and `params/`
(orbax, the EMA weights). Trainers refresh `<workdir>/export` at every checkpoint, so a workdir loads too.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from videopoet_jax import config_utils, distributed
from videopoet_jax.tokenizers import patch_table, rvq
from videopoet_jax.tokenizers.audio import AudioTokenizer
from videopoet_jax.tokenizers.video import VideoTokenizer

EXPORT_FORMAT = 1
EXPORT_SUBDIR = "export"
# The variables an export holds: trained weights and (for RVQ tokenizers) the EMA codebooks.
EXPORTED_VARIABLES = nnx.Any(nnx.Param, rvq.CodebookVariable)
# Where the bundled default models live inside the package.
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets")
# An LM export holds the tokenizers its ids came from in these subfolders (a model is the LM plus them).
TOKENIZER_SUBDIRS = ("video_tokenizer", "audio_tokenizer")
# An SR export (training/sr.py) holds the tokenizer of its high-resolution ids here; an LM export holds its
# SR stage, when it has one, in SR_SUBDIR.
HIGH_RES_TOKENIZER = "high_res_tokenizer"
SR_SUBDIR = "sr"


def bundled_path(name: str) -> str:
  """Path of bundled model `name` (e.g. "video_tokenizer"); raises FileNotFoundError when absent."""
  path = os.path.join(BUNDLED_DIR, name)
  if not os.path.exists(os.path.join(path, "config.json")):
    raise FileNotFoundError(
      f"there is no bundled {name.replace('_', ' ')} yet ({path} is empty); pass --checkpoint=DIR "
      "with a workdir or export folder from train.py"
    )
  return path


def export(path: str, params: nnx.State, config: ml_collections.ConfigDict) -> None:
  """Writes `params` and the config to the export folder `path` (overwriting it).

  Multi-process: every process calls it (orbax writes each process's shards); the primary writes the config.
  """
  os.makedirs(path, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.abspath(os.path.join(path, "params")), params, force=True)
  if not distributed.is_primary():
    return
  data = config_utils.to_json_dict(config)
  data["export_format"] = EXPORT_FORMAT
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(data, f, indent=1)


def export_folder(path: str) -> str:
  """The export folder `path` is or holds (a training workdir holds one); FileNotFoundError if none."""
  if os.path.isdir(os.path.join(path, EXPORT_SUBDIR)):
    path = os.path.join(path, EXPORT_SUBDIR)
  if not os.path.exists(os.path.join(path, "config.json")):
    raise FileNotFoundError(f"{path} holds no exported model (config.json + params/ from train.py)")
  return path


def copy_export(source: str, dest: str, dtype: str | None = None) -> None:
  """Copies the export folder (or workdir export) `source` to `dest`, its floating-point parameters stored
  as `dtype` (e.g. "bfloat16" halves a bundled model's size; `load` casts them back to the architecture's
  parameter dtype). The files beside `params/` (config, manifest, text model, model card) are copied as is;
  exports nested in it are copied too: tokenizers (an LM's `video_tokenizer/`, `audio_tokenizer/`, an SR
  stage's `high_res_tokenizer/`) with their own dtype, an LM's SR stage (`sr/`) as `dtype`."""
  source = export_folder(source)
  _read_export_config(source)  # refuses an export of another format
  if os.path.exists(dest):
    shutil.rmtree(dest)
  nested = {
    name: dtype if name == SR_SUBDIR else None
    for name in (*TOKENIZER_SUBDIRS, HIGH_RES_TOKENIZER, SR_SUBDIR)
    if os.path.exists(os.path.join(source, name, "config.json"))
  }
  shutil.copytree(source, dest, ignore=lambda folder, names: ["params", *nested] if folder == source else [])
  for name, nested_dtype in nested.items():
    copy_export(os.path.join(source, name), os.path.join(dest, name), nested_dtype)
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(os.path.abspath(os.path.join(source, "params")))
  if dtype is not None:
    cast = lambda x: x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x
    params = jax.tree.map(cast, params)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.abspath(os.path.join(dest, "params")), params)


def copy_tokenizer(source: str | None, dest: str, kind: str) -> None:
  """Copies tokenizer export `source` (a workdir or export folder; None: the bundled general one of
  `kind`, "video_tokenizer" | "audio_tokenizer") to `dest`, unless `dest` already holds one."""
  if os.path.exists(os.path.join(dest, "config.json")):
    return
  source = export_folder(source) if source else bundled_path(kind)
  tmp = dest + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  shutil.copytree(source, tmp)
  os.replace(tmp, dest)


def _read_export_config(path: str) -> ml_collections.ConfigDict:
  with open(os.path.join(path, "config.json")) as f:
    data = json.load(f)
  version = data.pop("export_format", None)
  if version != EXPORT_FORMAT:
    raise ValueError(f"{path} has export format {version}; this code reads format {EXPORT_FORMAT}")
  return config_utils.from_json_dict(data)


def load(path: str, build_module, trainer: str):
  """Loads `(module, config)` from an export folder, or from the export inside a training workdir.

  `build_module(config) -> nnx.Module` builds the architecture; `trainer` is the expected config.trainer.
  """
  path = export_folder(path)
  config = _read_export_config(path)
  if config.get("trainer") != trainer:
    raise ValueError(f"{path} holds a {config.get('trainer')!r} model, not a {trainer!r}")
  # Built abstractly (no initializer runs, nothing compiles), then filled with the saved values.
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build_module(config)), EXPORTED_VARIABLES)
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(os.path.abspath(os.path.join(path, "params")), abstract)
  module = nnx.merge(graphdef, params)
  return module, config


def warm_start_params(
  source: str,
  build_module,
  trainer: str,
  config,
  like: nnx.State,
  variables=nnx.Param,
  new_keys: tuple[str, ...] = (),
  new_modules: tuple[str, ...] = (),
) -> nnx.State:
  """The `variables` (default: the parameters) of export (or workdir) `source` for a run of `config`, which
  must have the same architecture (a readable ValueError names the differences), cast to `like`'s dtypes
  and placed with `like`'s shardings.

  `new_keys`: config keys (`model.x`) that shape only the top-level modules `new_modules` and may differ
  from the source's (a run that changes or adds only those, e.g. the decoder): a weight of those modules is
  copied where the source has one of the same path and shape and keeps `like`'s fresh value otherwise;
  every other weight is copied, and a source weight the run has no place for is an error.
  """
  module, saved = load(source, build_module, trainer)
  config_utils.check_architecture(
    config_utils.to_json_dict(saved), config_utils.to_json_dict(config), source, new_keys
  )
  place = lambda x, a: jax.device_put(x.astype(a.dtype), a.sharding)  # noqa: E731
  keystr = jax.tree_util.keystr
  source_leaves = {keystr(p): x for p, x in jax.tree_util.tree_leaves_with_path(nnx.state(module, variables))}
  dropped = set(source_leaves) - {keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(like)}
  if dropped:
    raise ValueError(f"{source} has weights this run has no place for: {', '.join(sorted(dropped))}")
  fresh = []

  def pick(path, current):
    value = source_leaves.get(keystr(path))
    if value is not None and value.shape == current.shape:
      return place(value, current)
    if getattr(path[0], "key", None) not in new_modules:
      raise ValueError(f"{source} has no weight {keystr(path)} of shape {current.shape}")
    fresh.append(keystr(path))
    return current

  params = jax.tree_util.tree_map_with_path(pick, like)
  if fresh:
    logging.info("weights not in %s (fresh): %s", source, ", ".join(fresh))
  return params


def load_video_tokenizer(path: str | None = None):
  """`(tokenizer, config)` from an export folder or workdir (default: the bundled tokenizer); the tokenizer
  is the kind its config names (`build_video_tokenizer`)."""
  path = path or bundled_path("video_tokenizer")
  return load(path, build_video_tokenizer, "video_tokenizer")


def build_video_tokenizer(config: ml_collections.ConfigDict, seed: int = 0):
  """The video tokenizer `config.model.kind` names: a `VideoTokenizer` (MAGVIT-v2; exports older than the
  key) or a `patch_table.PatchTableTokenizer`."""
  if config.model.get("kind", "magvit") == patch_table.KIND:
    return patch_table.PatchTableTokenizer(config.model)
  return VideoTokenizer(config.model, rngs=nnx.Rngs(seed))


def load_audio_tokenizer(path: str | None = None):
  """`(AudioTokenizer, config)` from an export folder or workdir (default: the bundled tokenizer)."""
  path = path or bundled_path("audio_tokenizer")
  return load(path, lambda config: AudioTokenizer(config.model, rngs=nnx.Rngs(0)), "audio_tokenizer")
