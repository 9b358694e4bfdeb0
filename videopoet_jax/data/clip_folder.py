"""TFDS builder for a user's own footage (`clip_folder`), written as array_record for grain.

  builder = clip_folder.make_builder("media/video", data_dir="data/tfds")
  builder.download_and_prepare()   # logs a summary: files read, clips written, files skipped (and why)

Every video in the folder (anything ffmpeg decodes) is cut into shots (`footage.shots`: hard cuts and
fades; no clip spans a boundary), cropped to the picture inside letterbox bars, resampled to `fps`,
center-cropped, resized to `size` and cut into consecutive clips of `frames` frames per shot (a video of
one shot shorter than a clip gives one clip padded with its last frame; a shorter shot of a longer video
is dropped). Clips that are blank, too dark, washed out, near-static or near-duplicates of a kept clip are
dropped (`footage.reject_reason`, `footage.DuplicateFilter`; thresholds in `footage_options`); the summary
counts each reason and lists each video's shots and letterbox crop. Images become 1-frame clips. Audio
comes from the video's own track (16 kHz mono) when it has one. Captions come from `captions.jsonl`
(`{"file": NAME, "caption": TEXT}` per line) or a sidecar `NAME-without-extension.txt`. Optical flow
(OpenCV Farneback) and a Canny edge map are computed per clip; `structure_dir` may instead hold
precomputed structure videos (depth, flow renders; one per source video, same file stem) whose luminance
replaces the edge map.

A file that does not decode is skipped with a warning that names it and counted in the summary
(`builder.info.metadata`); a partly damaged one yields the frames that decode. An example is yielded only
once it is complete, so a bad file never leaves a half example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from videopoet_jax.data import footage, media, structure

# 1.1.0: shots, letterbox crops and clip filters.
VERSION = "1.1.0"
CAPTIONS_FILE = "captions.jsonl"
# Videos are decoded with their longer side downscaled to at most this many times the clip size.
DECODE_SIDE_FACTOR = 4
ZLIB = tfds.features.Encoding.ZLIB
# Why a clip was dropped (counted in the build summary).
FILTER_REASONS = ("too_short_shot", "blank", "dark", "washed_out", "static", "duplicate")


@dataclasses.dataclass
class ClipFolderConfig(tfds.core.BuilderConfig):
  """Where the footage is and the clip format.

  Attributes:
    source_dir: folder of videos and images (not recursive).
    frames, fps, size: clip format (frames = 1 + 4k for the causal video tokenizer).
    sample_rate: audio sample rate (mono float32).
    max_clips_per_file: at most this many clips per video (0: all), counted before the near-duplicate
      filter (which may drop some of them).
    validation_files: file names that go to the validation split instead of train.
    structure_dir: optional folder of precomputed structure videos (`<stem>.<any video extension>`).
    shots: cut videos into shots first (False: one shot per video).
    filters: crop letterboxes and drop blank, dark, washed-out, static and duplicate clips.
    footage_options: the thresholds of both.
  """

  source_dir: str = ""
  frames: int = 17
  fps: float = 8.0
  size: int = 64
  sample_rate: int = 16_000
  max_clips_per_file: int = 0
  validation_files: tuple[str, ...] = ()
  structure_dir: str = ""
  shots: bool = True
  filters: bool = True
  footage_options: footage.FootageOptions = footage.FootageOptions()

  @property
  def audio_samples(self) -> int:
    return int(round(self.frames / self.fps * self.sample_rate))


def features(size: int) -> tfds.features.FeaturesDict:
  """The feature spec; T is the clip's frame count (the configured one, or 1 for images)."""
  return tfds.features.FeaturesDict(
    {
      # [T, size, size, 3] uint8 RGB frames.
      "video": tfds.features.Tensor(shape=(None, size, size, 3), dtype=np.uint8, encoding=ZLIB),
      # [T / fps * sample_rate] float32 mono in [-1, 1] (zeros without a track; empty for images).
      "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
      "has_audio": np.bool_,
      # [T, size, size, 2] float32 Farneback flow (dx, dy) from the previous frame (frame 0: zeros).
      "flow": tfds.features.Tensor(shape=(None, size, size, 2), dtype=np.float32, encoding=ZLIB),
      # [T, size, size] uint8 structure map (Canny edges, or a precomputed video's luminance).
      "structure": tfds.features.Tensor(shape=(None, size, size), dtype=np.uint8, encoding=ZLIB),
      "caption": tfds.features.Text(),
      # Source file name, clip number within it and start time in seconds.
      "source": tfds.features.Text(),
      "clip_index": np.int32,
      "start_s": np.float32,
      "is_image": np.bool_,
    }
  )


def read_captions(folder: str) -> dict[str, str]:
  """File name -> caption from `captions.jsonl` (if present)."""
  path = os.path.join(folder, CAPTIONS_FILE)
  captions = {}
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          entry = json.loads(line)
          captions[os.path.basename(entry["file"])] = str(entry["caption"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
          logging.warning("%s:%d: ignoring malformed caption line (%s)", path, number, e)
  return captions


def caption_for(folder: str, name: str, captions: dict[str, str]) -> str:
  """The caption of file `name`: captions.jsonl first, then a sidecar .txt, else empty."""
  if name in captions:
    return captions[name]
  sidecar = os.path.join(folder, os.path.splitext(name)[0] + ".txt")
  if os.path.exists(sidecar):
    with open(sidecar, encoding="utf-8") as f:
      return f.read().strip()
  return ""


def clip_indices(num_frames: int, src_fps: float, fps: float, frames: int) -> list[np.ndarray]:
  """Source frame indices `[frames]` of each consecutive clip (one padded clip if the video is shorter)."""
  indices = media.resample_indices(num_frames, src_fps, fps)
  if len(indices) < frames:
    indices = np.concatenate([indices, np.full(frames - len(indices), num_frames - 1, np.int64)])
  return [indices[i : i + frames] for i in range(0, len(indices) - frames + 1, frames)]


def find_structure_video(structure_dir: str, name: str) -> str | None:
  stem = os.path.splitext(name)[0]
  for ext in media.VIDEO_EXTENSIONS:
    path = os.path.join(structure_dir, stem + ext)
    if os.path.exists(path):
      return path
  return None


def empty_summary() -> dict:
  """The build summary before any file: see `build_summary`."""
  return {
    "files": 0,
    "clips": 0,
    "skipped": {},
    "shots": {},
    "letterboxed": {},
    "filtered": dict.fromkeys(FILTER_REASONS, 0),
  }


@dataclasses.dataclass
class FileRecord:
  """What one file contributes to the build summary, and the perceptual hashes of its candidate clips.

  Small (no pixels): a distributed build gathers every file's record in one place for the one decision that
  spans files, the near-duplicate filter (`ClipSelector`).
  """

  name: str
  # One per candidate clip (None: not filtered for near-duplicates, as images are not).
  hashes: list[tuple[np.ndarray, np.ndarray] | None] = dataclasses.field(default_factory=list)
  shots: list[list[float]] | None = None
  letterbox: list[int] | None = None
  filtered: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(FILTER_REASONS, 0))
  skipped: str | None = None


class ClipSelector:
  """The build's one cross-file decision, made file after file in build order: which candidate clips are
  near-duplicates of a clip kept earlier (`footage.DuplicateFilter`); also adds each file to the summary."""

  def __init__(self, config: ClipFolderConfig):
    self.filters = config.filters
    self.duplicates = footage.DuplicateFilter(config.footage_options.duplicate_fraction)
    self.summary = empty_summary()

  def select(self, record: FileRecord) -> list[int]:
    """Indices of `record`'s candidate clips to keep (in order)."""
    summary = self.summary
    summary["files"] += 1
    if record.skipped is not None:
      summary["skipped"][record.name] = record.skipped
      return []
    if record.shots is not None:
      summary["shots"][record.name] = record.shots
    if record.letterbox is not None:
      summary["letterboxed"][record.name] = record.letterbox
    for reason, count in record.filtered.items():
      summary["filtered"][reason] += count
    kept = []
    for index, code in enumerate(record.hashes):
      if self.filters and code is not None and self.duplicates.seen_hash(code):
        summary["filtered"]["duplicate"] += 1
      else:
        kept.append(index)
    summary["clips"] += len(kept)
    return kept


def kept_examples(candidates: list[dict], kept: list[int]) -> list[dict]:
  """The kept candidates of a file, their `clip_index` numbering them in order."""
  return [dict(candidates[k], clip_index=i) for i, k in enumerate(kept)]


def read_file(config: ClipFolderConfig, name: str, caption: str) -> tuple[FileRecord, list[dict]]:
  """`(record, candidate examples)` of one file: every clip that passes the per-clip filters (at most
  `max_clips_per_file` of them), before the near-duplicate filter. A file that fails to decode gives no
  candidates and its reason in `record.skipped`; nothing in it depends on another file (a worker's job)."""
  try:
    return _read_file(config, name, caption)
  except Exception as e:  # noqa: BLE001 -- one bad file must never stop the build.
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    logging.warning("clip_folder: skipping %s: %s", name, reason)
    return FileRecord(name, skipped=reason), []


def _read_file(config: ClipFolderConfig, name: str, caption: str) -> tuple[FileRecord, list[dict]]:
  path = os.path.join(config.source_dir, name)
  record = FileRecord(name)
  if name.lower().endswith(media.IMAGE_EXTENSIONS):
    try:
      image = np.asarray(Image.open(path).convert("RGB"))
    except OSError as e:
      raise media.MediaError(f"cannot decode image {path}: {e}") from e
    frames = media.crop_resize(image[None], config.size)
    example = _example(config, name, caption, frames, None, 0.0, is_image=True)
    record.hashes.append(None)  # a still is no clip of a shot, and no near-duplicate of one
    return record, [example]
  video = media.read_video(path, max_side=DECODE_SIDE_FACTOR * config.size)
  wave = media.read_audio_track(path, config.sample_rate)
  guide = _structure_source(config, name)
  options = config.footage_options
  source = video.frames
  if config.filters:
    x0, y0, x1, y1 = footage.letterbox(source, options)
    if (x1 - x0, y1 - y0) != (source.shape[2], source.shape[1]):
      source = source[:, y0:y1, x0:x1]
      record.letterbox = [x0, y0, x1, y1]
  shots = footage.shots(source, options) if config.shots else [(0, len(source))]
  if not shots:  # black from start to end
    record.filtered["blank"] += 1
  record.shots = [[round(a / video.fps, 3), round(b / video.fps, 3)] for a, b in shots]
  indices = []
  for start, stop in shots:
    shot = clip_indices(stop - start, video.fps, config.fps, config.frames)
    if len(shots) > 1 and (stop - start) / video.fps < config.frames / config.fps:
      record.filtered["too_short_shot"] += 1
      continue
    indices += [start + i for i in shot]
  candidates = []
  for index in indices:
    if config.max_clips_per_file and len(candidates) >= config.max_clips_per_file:
      break
    start_s = float(index[0] / video.fps)
    frames = media.crop_resize(source[index], config.size)
    guide_map = None
    if guide is not None:
      guide_index = np.minimum(
        np.floor(index / video.fps * guide.fps + 1e-6).astype(np.int64), len(guide.frames) - 1
      )
      guide_map = structure.grayscale(media.crop_resize(guide.frames[guide_index], config.size))
    example = _example(config, name, caption, frames, wave, start_s, structure_map=guide_map)
    reason = footage.reject_reason(frames, example["flow"], options) if config.filters else None
    if reason is not None:
      record.filtered[reason] += 1
      continue
    candidates.append(example)
    record.hashes.append(footage.perceptual_hash(frames))
  return record, candidates


def _structure_source(config: ClipFolderConfig, name: str) -> media.DecodedVideo | None:
  if not config.structure_dir:
    return None
  path = find_structure_video(config.structure_dir, name)
  if path is None:
    raise media.MediaError(f"no precomputed structure video for {name} in {config.structure_dir}")
  return media.read_video(path, max_side=DECODE_SIDE_FACTOR * config.size)


def _example(config, name, caption, frames, wave, start_s, is_image=False, structure_map=None) -> dict:
  """One example of the feature spec (`clip_index` is set when the file's clips are numbered)."""
  audio = np.zeros(0 if is_image else config.audio_samples, np.float32)
  if wave is not None:
    start = int(round(start_s * config.sample_rate))
    segment = wave[start : start + config.audio_samples]
    audio[: len(segment)] = segment
  return {
    "video": frames,
    "audio": audio,
    "has_audio": wave is not None,
    "flow": structure.farneback_flow(frames),
    "structure": structure.edge_map(frames) if structure_map is None else structure_map,
    "caption": caption,
    "source": name,
    "clip_index": 0,
    "start_s": start_s,
    "is_image": is_image,
  }


class ClipFolder(tfds.core.GeneratorBasedBuilder):
  """A folder of the user's videos and images, cut into clips (see the module docstring).

  `download_and_prepare()` builds in this process; with a Beam runner or options in its `download_config`
  (`tfds.download.DownloadConfig(beam_options=...)`, or `python -m videopoet_jax.data.build
  --beam_pipeline_options=...`), files are read in parallel by Beam workers (`clip_folder_beam`), and the
  dataset and its summary are the same.
  """

  VERSION = tfds.core.Version(VERSION)
  BUILDER_CONFIGS = [ClipFolderConfig(name="default", description="Set source_dir with make_builder.")]
  # TFDS otherwise derives it through importlib_resources, which it does not install on Python >= 3.9.
  code_path = epath.Path(__file__)
  # Where a Beam build leaves its summary inside the (temporary) data folder until it is read back.
  BEAM_SUMMARY = "build_summary.json"
  # Whether this build runs on Beam (set from the download config by `_download_and_prepare`).
  _beam = False

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=features(self.builder_config.size),
      # The build summary (files, clips, skipped files and why) is stored here.
      metadata=tfds.core.MetadataDict(),
      disable_shuffling=True,
    )

  def _download_and_prepare(self, dl_manager, download_config=None):
    self._beam = download_config is not None and (
      download_config.beam_runner is not None or download_config.beam_options is not None
    )
    super()._download_and_prepare(dl_manager, download_config)
    if self._beam:
      from videopoet_jax.data import clip_folder_beam  # noqa: PLC0415 -- Beam only where it is asked for

      path = epath.Path(self.data_dir) / self.BEAM_SUMMARY
      self.info.metadata["summary"] = clip_folder_beam.read_summary(path)

  def _split_generators(self, dl_manager):
    del dl_manager
    config = self.builder_config
    if not config.source_dir or not os.path.isdir(config.source_dir):
      raise ValueError(f"clip_folder: source_dir {config.source_dir!r} is not a folder")
    extensions = media.VIDEO_EXTENSIONS + media.IMAGE_EXTENSIONS
    names = sorted(n for n in os.listdir(config.source_dir) if n.lower().endswith(extensions))
    unknown = set(config.validation_files) - set(names)
    if unknown:
      raise ValueError(f"clip_folder: validation_files {sorted(unknown)} are not in {config.source_dir}")
    # Build order: the train files, then the validation files, each by name (the duplicate filter keeps a
    # clip's first copy in this order).
    splits = {"train": [n for n in names if n not in config.validation_files]}
    if config.validation_files:
      splits["validation"] = [n for n in names if n in config.validation_files]
    captions = read_captions(config.source_dir)
    files = [
      (split, n, caption_for(config.source_dir, n, captions)) for split, ns in splits.items() for n in ns
    ]
    if self._beam:
      from videopoet_jax.data import clip_folder_beam  # noqa: PLC0415

      summary_path = os.fspath(epath.Path(self.data_dir) / self.BEAM_SUMMARY)
      return clip_folder_beam.split_transforms(config, files, summary_path)
    self._selector = ClipSelector(config)
    self.info.metadata["summary"] = self._selector.summary
    return {split: self._generate_examples([f for f in files if f[0] == split]) for split in splits}

  def _generate_examples(self, files: list[tuple[str, str, str]]):
    config = self.builder_config
    for _, name, caption in files:
      record, candidates = read_file(config, name, caption)
      for example in kept_examples(candidates, self._selector.select(record)):
        yield f"{name}/{example['clip_index']:06d}", example
    summary = self._selector.summary
    logging.info(
      "clip_folder summary so far: %d files, %d clips written, %d skipped %s",
      summary["files"],
      summary["clips"],
      len(summary["skipped"]),
      sorted(summary["skipped"]),
    )


def config_name(source_dir: str) -> str:
  """A TFDS config name for a source folder: its base name plus a short hash of its absolute path."""
  path = os.path.abspath(source_dir)
  base = re.sub(r"[^a-z0-9_]", "_", os.path.basename(path.rstrip("/")).lower()) or "root"
  return f"{base}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def make_builder(
  source_dir: str, data_dir: str | None = None, name: str | None = None, **options
) -> ClipFolder:
  """The builder for `source_dir`; `options` set ClipFolderConfig fields (frames, fps, size, ...)."""
  config = ClipFolderConfig(
    name=name or config_name(source_dir),
    description=f"Clips from {os.path.abspath(source_dir)}",
    source_dir=os.path.abspath(source_dir),
    **options,
  )
  return ClipFolder(config=config, data_dir=data_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)


def build_summary(builder: ClipFolder) -> dict:
  """`{"files": n, "clips": n, "skipped": {name: reason}, "shots": {name: [[start_s, stop_s], ...]},
  "letterboxed": {name: [x0, y0, x1, y1]}, "filtered": {reason: n}}` of a prepared build."""
  return dict(builder.info.metadata.get("summary", {}))
