"""Media in, media out: the LM with its tokenizers, for every task (sample.py and the evaluation use this).

    generator = Generator.load()                                  # the bundled model, or load(path)
    clips = generator.text_to_video(["a red circle ..."], seed=0)  # [N, 17, 64, 64, 3] uint8

An LM export folder (`<workdir>/export`) is a whole model: the LM's parameters and config, the token
shards' `manifest.json` (which tokenizers made the ids, the inpaint/outpaint token masks), `text.model`,
the tokenizers that made its ids (`video_tokenizer/`, `audio_tokenizer/`; an export without them uses the
bundled general ones) and `sampling.json`, the sampling settings chosen for it on validation seeds.
Inputs are brought to the model's clip format by the caller (`videopoet_jax/data/media.py`); here every
video is `[N, T, H, W, 3]` uint8 at the model's size and fps, every waveform `[N, samples]` float32 in
[-1, 1] at the audio tokenizer's rate.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from videopoet_jax import tasks
from videopoet_jax.data import media, token_shards
from videopoet_jax.decoding import sampler, super_resolution
from videopoet_jax.decoding.schedule import schedule_from_segments
from videopoet_jax.decoding.settings import SamplingSettings
from videopoet_jax.model.transformer import Transformer
from videopoet_jax.tasks import registry, sequence
from videopoet_jax.tokenizers import pretrained, text

# Sampling-settings kinds of output positions.
KINDS = ("video", "audio")
# Which way an extension goes: after the clip, or the footage that leads into it.
DIRECTIONS = ("forward", "backward")


@dataclasses.dataclass(frozen=True)
class Sampling:
  """Sampling controls of one output modality (temperature 0 = greedy; top_k 0 / top_p 1 = off;
  guidance_scale 1 = no classifier-free guidance)."""

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  guidance_scale: float = 1.0


# The LM export's file of the sampling settings chosen for it (what sample.py uses when no flag is given).
SAMPLING_FILE = "sampling.json"


def read_sampling(folder: str) -> tuple[dict[str, Sampling], dict[str, dict[str, Sampling]]]:
  """From `folder/sampling.json` (absent: the defaults): the per-kind settings `{"video": Sampling,
  "audio": Sampling}`, and the user tasks chosen apart from them, `{task: {kind: Sampling}}`."""
  path = os.path.join(folder, SAMPLING_FILE)
  if not os.path.exists(path):
    return {kind: Sampling() for kind in KINDS}, {}
  with open(path) as f:
    data = json.load(f)
  per_task = {
    task: {kind: Sampling(**s) for kind, s in kinds.items()} for task, kinds in data.get("tasks", {}).items()
  }
  return {kind: Sampling(**data.get(kind, {})) for kind in KINDS}, per_task


def sampling_json(
  sampling: dict[str, Sampling], per_task: dict[str, dict[str, Sampling]] | None = None
) -> dict:
  """`sampling.json`'s content: the per-kind settings `{"video": Sampling, "audio": Sampling}` and, under
  "tasks", the user tasks' own settings `{task: {kind: Sampling}}` where a task has any (read back by
  `read_sampling`). A task's kinds equal to `sampling`'s are left out."""
  data = {kind: dataclasses.asdict(s) for kind, s in sampling.items()}
  own = {
    task: {kind: dataclasses.asdict(s) for kind, s in kinds.items() if s != sampling.get(kind)}
    for task, kinds in (per_task or {}).items()
  }
  if own := {task: kinds for task, kinds in own.items() if kinds}:
    data["tasks"] = own
  return data


def write_sampling(
  folder: str, sampling: dict[str, Sampling], per_task: dict[str, dict[str, Sampling]] | None = None
) -> None:
  """Writes `sampling_json(sampling, per_task)` as `folder/sampling.json`."""
  with open(os.path.join(folder, SAMPLING_FILE), "w") as f:
    json.dump(sampling_json(sampling, per_task), f, indent=1)


def override_sampling(
  defaults: dict[str, Sampling], audio: dict | None = None, **shared: float | int | None
) -> dict[str, Sampling]:
  """`defaults` (`{"video": Sampling, "audio": Sampling}`) with the controls given (not None): `shared`
  (temperature, top_k, top_p, guidance_scale) set both modalities, `audio` then overrides the audio ones."""
  given = {k: v for k, v in shared.items() if v is not None}
  audio_given = {k: v for k, v in (audio or {}).items() if v is not None}
  return {
    "video": dataclasses.replace(defaults["video"], **given),
    "audio": dataclasses.replace(defaults["audio"], **given | audio_given),
  }


def settings_for(sampling: dict[str, Sampling]) -> SamplingSettings:
  """Per-kind `SamplingSettings` from `{"video": Sampling, "audio": Sampling}` (missing kinds: defaults)."""
  chosen = [sampling.get(kind, Sampling()) for kind in KINDS]
  return SamplingSettings.create(
    temperature=[s.temperature for s in chosen],
    top_k=[s.top_k for s in chosen],
    top_p=[s.top_p for s in chosen],
    guidance=[s.guidance_scale for s in chosen],
  )


def load_lm(path: str | None = None) -> tuple[Transformer, ml_collections.ConfigDict, str]:
  """`(model, config, export folder)` from an LM export folder or training workdir (default: bundled)."""
  path = path or pretrained.bundled_path("lm")
  model, config = pretrained.load(path, lambda c: Transformer(c.model, rngs=nnx.Rngs(0)), "lm")
  return model, config, pretrained.export_folder(path)


class Generator:
  """The LM, its vocabulary and layout, and the video, audio and text tokenizers."""

  def __init__(self, model, config, video_tokenizer, audio_tokenizer, text_tokenizer, manifest: dict):
    """`manifest`: the token shards' manifest (`clip` format with its fps, `token_masks`)."""
    self.model, self.config = model, config
    self.vocab = tasks.vocabulary(config)
    self.layout = sequence.Layout.from_config(config.layout, manifest.get("token_masks", {}))
    self.fps = float(manifest["clip"]["fps"])
    self.video_tokenizer, self.audio_tokenizer, self.text_tokenizer = (
      video_tokenizer,
      audio_tokenizer,
      text_tokenizer,
    )
    self._check_tokenizers()
    # The sampling settings chosen for this model (`load` reads them from its export): per kind, and the
    # user tasks chosen apart from those (`sampling_for`).
    self.default_sampling = {kind: Sampling() for kind in KINDS}
    self.task_sampling: dict[str, dict[str, Sampling]] = {}
    # `progress(total)` -> a context manager with `update(n)` (e.g. tqdm): generation then runs one jitted
    # call per token (same tokens) and reports each; None: one jitted loop.
    self.progress = None
    # The super-resolution stage (decoding/super_resolution.py), when the model has one.
    self.super_resolver = None
    self._encode_video = jax.jit(lambda clips: self.video_tokenizer.encode(clips))
    self._decode_video = jax.jit(lambda ids: self.video_tokenizer.decode(ids))

  @classmethod
  def load(
    cls, path: str | None = None, video_tokenizer: str | None = None, audio_tokenizer: str | None = None
  ):
    """From an LM export folder or workdir (default: the bundled LM) and tokenizer exports (default: the
    ones inside the LM's export, else the bundled general ones).

    Raises FileNotFoundError / ValueError with a readable message on a missing or mismatched model."""
    model, config, folder = load_lm(path)
    manifest = token_shards.read_manifest(folder)
    if manifest is None:
      raise FileNotFoundError(f"{folder} has no {token_shards.MANIFEST} (the token shards' manifest)")
    text_path = os.path.join(folder, token_shards.TEXT_MODEL)
    text_tokenizer = text.TextTokenizer(text_path) if os.path.exists(text_path) else None
    own = lambda kind: (
      os.path.join(folder, kind) if os.path.exists(os.path.join(folder, kind, "config.json")) else None
    )
    video = pretrained.load_video_tokenizer(video_tokenizer or own("video_tokenizer"))[0]
    audio = None
    if config.vocab.audio_levels:
      audio = pretrained.load_audio_tokenizer(audio_tokenizer or own("audio_tokenizer"))[0]
    generator = cls(model, config, video, audio, text_tokenizer, manifest)
    generator.default_sampling, generator.task_sampling = read_sampling(folder)
    sr_folder = os.path.join(folder, pretrained.SR_SUBDIR)
    if os.path.exists(os.path.join(sr_folder, "config.json")):
      generator.attach_super_resolver(super_resolution.SuperResolver.load(sr_folder))
    return generator

  def sampling_for(self, task: str) -> dict[str, Sampling]:
    """The model's own sampling settings for user task `task` (`{"video": Sampling, "audio": Sampling}`):
    the ones chosen for that task where there are, else the per-kind defaults."""
    return {**self.default_sampling, **self.task_sampling.get(task, {})}

  def attach_super_resolver(self, resolver: super_resolution.SuperResolver) -> None:
    """Makes `resolver` this model's SR stage; ValueError when its low-resolution ids are not this LM's
    clips' (`layout.latent_shape`) or of another codebook."""
    if resolver.low_res_grid != tuple(self.layout.latent_shape) or (
      resolver.config.model.code_bits != self.video_tokenizer.geometry.code_bits
    ):
      raise ValueError(
        f"the SR stage takes {resolver.low_res_grid} ids of {resolver.config.model.code_bits} bits; this "
        f"LM's clips are {tuple(self.layout.latent_shape)} of {self.video_tokenizer.geometry.code_bits}"
      )
    self.super_resolver = resolver

  def _check_tokenizers(self) -> None:
    """Raises ValueError when a tokenizer's ids do not fit the LM's vocabulary and layout."""
    geometry = self.video_tokenizer.geometry
    problems = []
    if geometry.codebook_size != self.vocab.video_size:
      problems.append(
        f"video tokenizer codebook {geometry.codebook_size} != LM video ids {self.vocab.video_size}"
      )
    latent = geometry.latent_shape(self.frames, self.size, self.size)
    if tuple(latent) != tuple(self.layout.latent_shape):
      problems.append(
        f"video tokenizer makes {latent} ids per clip, the LM expects {self.layout.latent_shape}"
      )
    if self.audio_tokenizer is not None:
      audio = self.audio_tokenizer.geometry
      if (audio.levels, audio.codebook_size) != (self.vocab.audio_levels, self.vocab.audio_codebook_size):
        problems.append(
          f"audio tokenizer ids (levels, codes) {(audio.levels, audio.codebook_size)} != the LM's "
          f"{(self.vocab.audio_levels, self.vocab.audio_codebook_size)}"
        )
    if problems:
      raise ValueError("the tokenizers do not fit this LM: " + "; ".join(problems))

  # The clip format.
  @property
  def frames(self) -> int:
    t = self.config.layout.latent_shape[0]
    return 1 + (t - 1) * self.video_tokenizer.geometry.temporal_factor

  @property
  def size(self) -> int:
    return self.config.layout.latent_shape[1] * self.video_tokenizer.geometry.spatial_factor

  @property
  def sample_rate(self) -> int:
    return self.audio_tokenizer.geometry.sample_rate

  def trained_tasks(self) -> list[str]:
    """The tasks this LM serves: its mixture's, and those of an earlier phase it was warm-started from."""
    trained = [name for name, weight in self.config.mixture.weights.items() if weight > 0]
    return trained + [t for t in self.config.mixture.get("earlier_tasks", ()) if t not in trained]

  # Tokenizers.
  def encode_video(self, clips: np.ndarray) -> np.ndarray:
    """`[N, T, S, S, 3]` uint8 (T = 1 + 4k frames) -> `[N, 1 + k, h, w]` int32 ids."""
    return np.asarray(self._encode_video(media.to_model_range(clips)))

  def decode_video(self, ids: np.ndarray) -> np.ndarray:
    """`[N, t, h, w]` ids -> `[N, 1 + 4 (t - 1), S, S, 3]` uint8."""
    return media.from_model_range(self._decode_video(np.asarray(ids, np.int32)))

  def encode_audio(self, waves: np.ndarray) -> np.ndarray:
    """`[N, samples]` float32 -> `[N, levels, frames]` ids (the layout's frames: cut or zero-padded)."""
    need = self.audio_tokenizer.geometry.samples(self.layout.audio_frames)
    waves = np.asarray(waves, np.float32)[:, :need]
    waves = np.pad(waves, ((0, 0), (0, need - waves.shape[1])))
    return np.asarray(self.audio_tokenizer.encode(waves))

  def decode_audio(self, ids: np.ndarray) -> np.ndarray:
    """`[N, levels, frames]` ids -> `[N, samples]` float32 in [-1, 1]."""
    return np.asarray(self.audio_tokenizer.decode(np.asarray(ids, np.int32)))

  def encode_text(self, prompt: str) -> tuple[np.ndarray, int]:
    """A prompt -> (`[L]` sentencepiece ids cut to the text budget, number of ids cut)."""
    if self.text_tokenizer is None:
      raise ValueError("this LM has no text model (it was trained on external text embeddings)")
    ids = self.text_tokenizer.encode(prompt)
    return ids[: self.layout.text_budget], max(0, len(ids) - self.layout.text_budget)

  # The LM.
  def generate(
    self,
    task_name: str,
    records: list[dict],
    sampling: dict[str, Sampling],
    seed: int,
    negative_records: list[dict] | None = None,
    layout: sequence.Layout | None = None,
  ) -> np.ndarray:
    """Samples `task_name`'s output for each record (a dict of token streams, as in the token shards;
    inputs the task treats as optional may be absent). Returns the output's local ids `[N, ...]` (video
    `[t, h, w]`, audio `[levels, frames]`). With a guidance scale != 1, the unconditional branch is each
    record without its guidance inputs, or `negative_records` (e.g. a negative prompt's text)."""
    task = registry.get(task_name)
    if task_name not in self.trained_tasks():
      raise ValueError(
        f"this LM was not trained for {task_name}; it was for {', '.join(self.trained_tasks())}"
      )
    layout = layout or self.layout
    settings = settings_for(sampling)
    guided = bool((np.asarray(settings.guidance) != 1).any())
    prefixes = [self._prefix(task, r, layout) for r in records]
    unconditional = None
    if guided:
      if negative_records:
        unconditional = [self._prefix(task, r, layout) for r in negative_records]
      else:
        unconditional = [self._prefix(task, r, layout, drop=task.guidance_inputs) for r in records]
    prompt, valid = _left_pad(prefixes + (unconditional or []), self.vocab.special("<pad>"))
    n = len(records)
    kind = {"video": KINDS.index("video"), "audio": KINDS.index("audio")}[task.output.modality]
    schedule = schedule_from_segments(
      [(lo, hi, count, kind) for lo, hi, count in sequence.output_segments(task, self.vocab, layout)]
    )
    options = dict(prefix_inputs={"key_valid": valid[:n]})
    if guided:
      options.update(
        uncond_prompt=prompt[n:], uncond_prefix_inputs={"key_valid": valid[n:]}, uncond_prefix_length=None
      )
    key = jax.random.key(seed)
    if self.progress is None:
      tokens = sampler.generate(self.model, prompt[:n], schedule, settings, key, **options)
    else:
      with self.progress(schedule.length) as bar:
        tokens = sampler.generate_stepwise(
          self.model, prompt[:n], schedule, settings, key, on_token=lambda: bar.update(1), **options
        )
    ids = np.asarray(tokens)[:, : layout.part_length(task.output)]
    return np.stack([sequence.to_local(task.output, row, self.vocab, layout) for row in ids])

  def _prefix(self, task, record, layout, drop=()) -> np.ndarray:
    optional = tuple(
      p.stream for p in task.inputs if p.stream not in record and p.stream in task.guidance_inputs
    )
    missing = [p.stream for p in task.inputs if p.stream not in record and p.stream not in optional]
    if missing:
      raise ValueError(f"{task.name} needs {', '.join(missing)}")
    return sequence.build_prefix(task, record, self.vocab, layout, tuple(drop) + optional).tokens

  # Tasks on media.
  def _texts(self, prompts: list[str | None], stream: str = registry.TEXT.stream) -> list[dict]:
    """Records holding each prompt's text ids under `stream` (the text part a task reads); {} for None."""
    return [{stream: self.encode_text(p)[0]} if p else {} for p in prompts]

  def text_to_video(self, prompts, sampling, seed, negative_prompt=None) -> np.ndarray:
    """Prompts -> `[N, frames, S, S, 3]` uint8 clips."""
    negative = self._texts([negative_prompt] * len(prompts)) if negative_prompt else None
    ids = self.generate("text_to_video", self._texts(prompts), sampling, seed, negative)
    return self.decode_video(ids)

  def text_to_image(self, prompts, sampling, seed, negative_prompt=None) -> np.ndarray:
    """Prompts -> `[N, S, S, 3]` uint8 images (the first latent frame decoded alone)."""
    negative = self._texts([negative_prompt] * len(prompts)) if negative_prompt else None
    ids = self.generate("text_to_image", self._texts(prompts), sampling, seed, negative)
    return self.decode_video(ids)[:, 0]

  def image_to_video(self, images, prompts, sampling, seed) -> np.ndarray:
    """`[N, S, S, 3]` uint8 first frames (+ optional prompts) -> `[N, frames, S, S, 3]` uint8 clips."""
    first = self.encode_video(np.asarray(images)[:, None])  # [N, 1, h, w]
    records = [
      {**t, "video": _pad_frames(f, self.layout)} for t, f in zip(self._texts(prompts), first, strict=True)
    ]
    rest = self.generate("image_to_video", records, sampling, seed)
    return self.decode_video(np.concatenate([first, rest], axis=1))

  def continue_clips(self, context_clips, prompts, sampling, seed, direction="forward") -> np.ndarray:
    """`[N, C, S, S, 3]` uint8 (C = the frames of `layout.context_frames` latent frames) -> the next
    frames `[N, frames - C, S, S, 3]` uint8 (one extension round). `direction="backward"`: the frames
    that lead into the context instead, in playing order (the `backward` task continues the context
    played backwards; its output, reversed again, ends where the context starts)."""
    if direction not in DIRECTIONS:
      raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    backward = direction == "backward"
    context_clips = np.asarray(context_clips)[:, ::-1] if backward else np.asarray(context_clips)
    task = registry.get("backward" if backward else "continuation")
    (text, video), context = task.inputs, self.encode_video(context_clips)
    records = [
      {**t, video.stream: _pad_frames(c, self.layout)}
      for t, c in zip(self._texts(prompts, text.stream), context, strict=True)
    ]
    new = self.generate(task.name, records, sampling, seed)
    clip = self.decode_video(np.concatenate([context, new], axis=1))[:, context_clips.shape[1] :]
    return clip[:, ::-1] if backward else clip

  @property
  def context_frames(self) -> int:
    """Pixel frames of the continuation's conditioning (the last second of a clip)."""
    return 1 + (self.layout.context_frames - 1) * self.video_tokenizer.geometry.temporal_factor

  def extend(
    self, clips, seconds: float, prompts, sampling, seed, progress=None, direction="forward"
  ) -> np.ndarray:
    """Adds at least `seconds` of footage to `[N, T, S, S, 3]` uint8 clips (T >= context frames), one
    round at a time: after the clip, each round conditioned on the last second so far, or
    (`direction="backward"`) before it, each round conditioned on the first second so far. Returns
    `[N, T + new, S, S, 3]`."""
    clips = np.asarray(clips)
    if clips.shape[1] < self.context_frames:
      raise ValueError(f"extension needs at least {self.context_frames} frames, got {clips.shape[1]}")
    per_round = self.frames - self.context_frames
    rounds = int(np.ceil(seconds * self.fps / per_round - 1e-9))
    backward = direction == "backward"
    for r in range(rounds):
      context = clips[:, : self.context_frames] if backward else clips[:, -self.context_frames :]
      new = self.continue_clips(context, prompts, sampling, seed + r, direction)
      clips = np.concatenate([new, clips] if backward else [clips, new], axis=1)
      if progress:
        progress(r + 1, rounds)
    return clips

  def bridge(self, first_images, last_images, prompts, sampling, seed) -> np.ndarray:
    """`[N, S, S, 3]` uint8 first and last frames (+ optional prompts) -> `[N, frames, S, S, 3]` uint8
    clips that start at the first frame (given, as in image_to_video) and are generated to end at the
    last (the model's frame, not a copy)."""
    first = self.encode_video(np.asarray(first_images)[:, None])  # [N, 1, h, w]
    last = self.encode_video(np.asarray(last_images)[:, None])
    records = [
      {**t, "video": _pad_frames(f, self.layout), "reversed_video": _pad_frames(e, self.layout)}
      for t, f, e in zip(self._texts(prompts), first, last, strict=True)
    ]
    rest = self.generate("bridge", records, sampling, seed)
    return self.decode_video(np.concatenate([first, rest], axis=1))

  def transition(self, clips, next_clips, prompts, sampling, seed) -> np.ndarray:
    """`[N, T, S, S, 3]` and `[N, U, S, S, 3]` uint8 -> `[N, T + frames + U - 2, S, S, 3]`: each clip,
    a bridge from its last frame to the next clip's first frame, then the next clip. The bridge's first
    frame is the clip's last (kept once) and its generated last frame stands for the next clip's first
    (the next clip's own frame is kept)."""
    clips, next_clips = np.asarray(clips), np.asarray(next_clips)
    bridges = self.bridge(clips[:, -1], next_clips[:, 0], prompts, sampling, seed)
    return np.concatenate([clips[:, :-1], bridges[:, :-1], next_clips], axis=1)

  def loop(self, clips, prompts, sampling, seed) -> np.ndarray:
    """`[N, T, S, S, 3]` uint8 -> `[N, T + frames - 2, S, S, 3]` clips that play in a loop: each clip, then
    a bridge from its last frame back to its first (the bridge's ends, which repeat the clip's last and
    first frames, are dropped, so the last frame leads into the first)."""
    clips = np.asarray(clips)
    bridges = self.bridge(clips[:, -1], clips[:, 0], prompts, sampling, seed)
    return np.concatenate([clips, bridges[:, 1:-1]], axis=1)

  def paint(self, kind: str, clips, pixel_mask, prompts, sampling, seed) -> np.ndarray:
    """Inpaint (`kind="inpaint"`: regenerate where `pixel_mask [S, S]` bool is True) or outpaint (keep where
    it is True, generate the rest) `[N, frames, S, S, 3]` uint8 clips."""
    hidden = pixel_mask if kind == "inpaint" else ~pixel_mask
    factor = self.video_tokenizer.geometry.spatial_factor
    cells = hidden.reshape(self.size // factor, factor, self.size // factor, factor).any(axis=(1, 3))
    stream = f"{kind}_video"
    layout = dataclasses.replace(self.layout, token_masks={**self.layout.token_masks, stream: cells})
    # As in training (data/stream_encoding.py): the clip's own ids, the hidden cells' tokens become <mask>.
    ids = self.encode_video(clips)
    records = [{**t, stream: i} for t, i in zip(self._texts(prompts), ids, strict=True)]
    return self.decode_video(self.generate(kind, records, sampling, seed, layout=layout))

  def stylize(self, structure_clips, prompts, sampling, seed) -> np.ndarray:
    """`[N, frames, S, S, 3]` uint8 structure videos (data/structure.py) + prompts -> clips."""
    ids = self.encode_video(structure_clips)
    records = [{**t, "structure_video": i} for t, i in zip(self._texts(prompts), ids, strict=True)]
    return self.decode_video(self.generate("stylize", records, sampling, seed))

  def check_super_resolver(self) -> None:
    """Raises a one-line ValueError when this model has no SR stage."""
    if self.super_resolver is None:
      raise ValueError(
        f"this model has no super-resolution stage (an SR export, configs/sr.py, in its "
        f"{pretrained.SR_SUBDIR}/ folder)"
      )

  def super_resolve(self, clips: np.ndarray, prompts: list[str | None], seed: int) -> np.ndarray:
    """`[N, T, S, S, 3]` uint8 clips in the base format (any T >= 1) -> `[N, T, 2S, 2S, 3]` uint8 through
    the SR stage, with the SR export's sampling settings. A clip longer than `self.frames` goes through in
    runs of `self.frames` frames, each tokenized as its own clip (the last one padded with its last frame);
    ValueError when the model has no SR stage."""
    self.check_super_resolver()
    clips = np.asarray(clips)
    n, t = clips.shape[:2]
    runs = -(-t // self.frames)
    padded = np.concatenate([clips, np.repeat(clips[:, -1:], runs * self.frames - t, axis=1)], axis=1)
    ids = self.encode_video(padded.reshape(n * runs, self.frames, *clips.shape[2:]))
    high = self.super_resolver.upscale(ids, [p for p in prompts for _ in range(runs)], seed)
    return high.reshape(n, runs * self.frames, *high.shape[2:])[:, :t]

  def video_to_audio(self, clips, sampling, seed) -> np.ndarray:
    """`[N, frames, S, S, 3]` uint8 -> `[N, samples]` float32 waveforms at `sample_rate`."""
    records = [{"video": i} for i in self.encode_video(clips)]
    return self.decode_audio(self.generate("video_to_audio", records, sampling, seed))


def _pad_frames(ids: np.ndarray, layout: sequence.Layout) -> np.ndarray:
  """A partial clip's ids `[t, h, w]` -> the full `[T, h, w]` stream shape (later frames zero: the task's
  parts read only the frames they take)."""
  full = np.zeros(layout.latent_shape, np.int32)
  full[: len(ids)] = ids
  return full


def _left_pad(prefixes: list[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
  """Prefixes of different lengths -> `[N, P]` int32 left-padded with `pad`, and `[N, P]` bool validity."""
  length = max(len(p) for p in prefixes)
  tokens = np.full((len(prefixes), length), pad, np.int32)
  for i, p in enumerate(prefixes):
    tokens[i, length - len(p) :] = p
  return tokens, tokens != pad
