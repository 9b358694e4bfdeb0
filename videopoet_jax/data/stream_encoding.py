"""Token streams of dataset examples through the stage-1 tokenizers (what tokenizers/encode.py writes).

  encoder = Encoder(video_tokenizer, (audio_tokenizer, audio_config), batch_size=8, sample_rate=16_000)
  records = shard_records(encoder, examples, first_index, STREAMS, features, text_tokenizer, None)

Video-like streams are tokenized together in batches split over every device (mesh data axis); audio is
resampled to the audio tokenizer's rate first. The masked streams (`inpaint_video`, `outpaint_video`) cost
no encoding: they are the clip's own ids, and the task hides the tokens of the manifest's token mask
(`conditioning.token_mask`) behind `<mask>` when it builds the sequence. `reversed_video` is the clip
played backwards, encoded as its own clip (the bridge's last frame and backward extension read it).
`next_text` is the caption of what follows the first second (a continuation's prompt): the example's
`next_caption` where the dataset has one (shapes_world's turning clips), else its caption.
"""

import functools

import jax
import numpy as np
from flax import nnx

from videopoet_jax import config_utils, sharding
from videopoet_jax.data import conditioning, datasets, media

STREAMS = (
  "video",
  "audio",
  "text",
  "next_text",
  "inpaint_video",
  "outpaint_video",
  "structure_video",
  "reversed_video",
)
MASKED_STREAMS = {"inpaint_video": "inpaint", "outpaint_video": "outpaint"}


def resample(waves: np.ndarray, sample_rate: int, model_rate: int) -> np.ndarray:
  """`[B, N]` float32 at `sample_rate` -> `[B, N * model_rate / sample_rate]` float32."""
  if model_rate == sample_rate:
    return np.asarray(waves, np.float32)
  import librosa  # only needed when the rates differ.

  return librosa.resample(np.asarray(waves, np.float32), orig_sr=sample_rate, target_sr=model_rate, axis=-1)


def jit_encode(module, mesh):
  """`batch -> ids` of `module.encode`, jitted with the parameters as a replicated argument."""
  graphdef, state = nnx.split(module)
  state = jax.device_put(state, sharding.replicated(mesh))

  @functools.partial(jax.jit, out_shardings=sharding.replicated(mesh))
  def encode(state, batch):
    return nnx.merge(graphdef, state).encode(batch)

  return lambda batch: encode(state, batch)


class Encoder:
  """Runs the tokenizers on host examples; batches are sharded over the mesh's data axis."""

  def __init__(self, video_tokenizer, audio, batch_size: int, sample_rate: int):
    # This process's own devices: in a multi-process encode each process tokenizes its own shards.
    self.mesh = sharding.make_mesh(config_utils.data_parallel_mesh(), jax.local_devices())
    parallel = sharding.data_parallel_size(self.mesh)
    self.batch_size = -(-batch_size // parallel) * parallel
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    self._encode_video = jit_encode(video_tokenizer, self.mesh)
    self.audio = audio
    if audio is not None:
      self._encode_audio = jit_encode(audio[0], self.mesh)
      self.audio_rate = audio[1].model.sample_rate
    self.sample_rate = sample_rate

  def _batched(self, encode, items: list[np.ndarray]) -> list[np.ndarray]:
    """Encodes same-shape `items` in whole batches (the last one padded by repetition)."""
    ids = []
    for start in range(0, len(items), self.batch_size):
      chunk = items[start : start + self.batch_size]
      batch = jax.device_put(
        np.stack(chunk + [chunk[-1]] * (self.batch_size - len(chunk))), self.batch_sharding
      )
      ids.extend(np.asarray(encode(batch), np.int32)[: len(chunk)])
    return ids

  def video(self, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Same-shape `[T, H, W, 3]` uint8 clips -> `[t, h, w]` int32 ids each."""
    return self._batched(self._encode_video, [media.to_model_range(c) for c in clips])

  def audio_ids(self, waves: list[np.ndarray]) -> list[np.ndarray]:
    """Same-length `[N]` float32 waves at the dataset's rate -> `[levels, frames]` int32 ids each."""
    waves = list(resample(np.stack(waves), self.sample_rate, self.audio_rate))
    return self._batched(self._encode_audio, waves)


def groups_by_shape(clips: list[np.ndarray]) -> dict[tuple, list[int]]:
  """Positions of the clips, grouped by shape (in order of first appearance)."""
  groups = {}
  for i, clip in enumerate(clips):
    groups.setdefault(tuple(clip.shape), []).append(i)
  return groups


def encode_many(fn, clips: list[np.ndarray]) -> list[np.ndarray]:
  """Applies a batched `fn` to same-shape groups of `clips`; results in the input order."""
  out = [None] * len(clips)
  for positions in groups_by_shape(clips).values():
    for position, ids in zip(positions, fn([clips[p] for p in positions]), strict=True):
      out[position] = ids
  return out


def shard_records(encoder, examples, first_index, streams, features, text_tokenizer, embeddings):
  """Token records of consecutive examples starting at split index `first_index`."""
  records = [
    {
      "index": first_index + i,
      "caption": example["caption"].decode("utf-8"),
      "attributes": {k: v for k, v in datasets.describe(example, features).items() if k != "caption"},
    }
    for i, example in enumerate(examples)
  ]
  # Every video-like stream of the shard goes through the tokenizer together (fuller batches), one stream
  # after another (a batch holds one kind of clip: a patch table finds a clip's patches in its table, a
  # structure clip's it searches for).
  masked = [s for s in MASKED_STREAMS if s in streams]
  clip_of = {"video": lambda e: np.asarray(e["video"])} if "video" in streams or masked else {}
  if "structure_video" in streams:
    clip_of["structure_video"] = conditioning.structure_clip
  if "reversed_video" in streams:
    clip_of["reversed_video"] = conditioning.reversed_clip
  jobs = [
    (i, stream, clip(example)) for stream, clip in clip_of.items() for i, example in enumerate(examples)
  ]
  if jobs:
    ids = encode_many(encoder.video, [clip for _, _, clip in jobs])
    for (i, stream, _), stream_ids in zip(jobs, ids, strict=True):
      records[i][stream] = stream_ids
  for record in records:
    for stream in masked:
      record[stream] = record["video"]
    if masked and "video" not in streams:
      del record["video"]
  if "audio" in streams and encoder.audio is not None:
    with_audio = [i for i, e in enumerate(examples) if len(e["audio"]) and e.get("has_audio", True)]
    waves = [np.asarray(examples[i]["audio"], np.float32) for i in with_audio]
    for i, ids in zip(with_audio, encode_many(encoder.audio_ids, waves), strict=True):
      records[i]["audio"] = ids
  if "text" in streams:
    for i, record in enumerate(records):
      if embeddings is not None:
        record["text_embedding"] = np.asarray(embeddings[first_index + i], np.float32)
      else:
        record["text"] = text_tokenizer.encode(record["caption"])
  if "next_text" in streams:
    if embeddings is not None:
      raise ValueError("the next_text stream needs a text tokenizer (it has no embeddings): leave it out")
    for example, record in zip(examples, records, strict=True):
      record["next_text"] = text_tokenizer.encode(
        example.get("next_caption", example["caption"]).decode("utf-8")
      )
  return records
