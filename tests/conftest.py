"""Test setup: 8 host CPU devices, so every sharded code path runs on a real mesh."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from videopoet_jax import config_utils  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
assert jax.device_count() == 8, "XLA_FLAGS was set too late: jax was imported before conftest"
# Trainers built in several tests compile the same step: share compilations through a persistent cache.
jax.config.update(
  "jax_compilation_cache_dir", os.path.join(os.environ.get("TMPDIR", "/tmp"), "videopoet_jax_xla_cache")
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_config(file: str, arg: str | None = None):
  """Loads `configs/<file>.py` and returns `get_config(arg)`."""
  return config_utils.load_config_file(str(REPO / "configs" / f"{file}.py"), arg)


@pytest.fixture
def tiny_video_config():
  """The tiny video tokenizer config on a one-device mesh (sharding tests build their own meshes)."""
  config = load_config("video_tokenizer", "tiny")
  config.mesh.shape = (1, 1, 1)
  return config


@pytest.fixture
def tiny_audio_config():
  """The tiny audio tokenizer config on a one-device mesh."""
  config = load_config("audio_tokenizer", "tiny")
  config.mesh.shape = (1, 1, 1)
  return config


def small_model_config(vocab_size=50, tied=False):
  """A tiny transformer `model` config section for model-level tests (no vocabulary or data attached)."""
  import ml_collections

  return ml_collections.ConfigDict(
    dict(
      vocab_size=vocab_size,
      width=32,
      depth=2,
      heads=4,
      head_dim=8,
      mlp_dim=64,
      rope_base=10_000.0,
      tied_embeddings=tied,
      text_embedding_dim=0,
      dtype="float32",
      param_dtype="float32",
      remat="none",
      logits_chunk=8,
    )
  )


# Video frames of the tiny LM's clips (9 frames -> 3 latent frames).
TINY_CLIP_FRAMES = 9


def write_tiny_token_shards(out, config, examples=(16, 8), seed=0):
  """Synthetic token shards (train, validation) in the tiny LM config's format, as encode.py writes them:
  random video / audio / text (caption and next_text) / conditioning ids, and a manifest with the
  inpaint/outpaint token masks."""
  import numpy as np

  from videopoet_jax.data import stream_encoding, token_shards

  rng = np.random.default_rng(seed)
  latent = tuple(config.layout.latent_shape)
  video_ids = lambda: rng.integers(0, 2**config.vocab.video_bits, latent).astype(np.int32)
  for split, count in zip(("train", "validation"), examples, strict=True):
    records = [
      {
        "index": i,
        "caption": f"clip {i}",
        "video": video_ids(),
        "audio": rng.integers(
          0, config.vocab.audio_codebook_size, (config.layout.audio_levels, config.layout.audio_frames)
        ).astype(np.int32),
        "text": rng.integers(
          2, config.vocab.text_size, rng.integers(1, config.layout.text_budget + 2)
        ).astype(np.int32),
        "inpaint_video": video_ids(),
        "outpaint_video": video_ids(),
        "structure_video": video_ids(),
        "reversed_video": video_ids(),
        # The caption of what follows the first second (a continuation's prompt).
        "next_text": rng.integers(
          2, config.vocab.text_size, rng.integers(1, config.layout.text_budget + 2)
        ).astype(np.int32),
        # As shapes_world's: every other clip bounces at its middle frame.
        "attributes": {"bounce_frames": [TINY_CLIP_FRAMES // 2] if i % 2 else []},
      }
      for i in range(count)
    ]
    token_shards.write_shard(token_shards.shard_path(str(out), split, 0, 1), records)
  inpaint = np.zeros(latent[1:], int)
  inpaint[0, 0] = 1
  token_shards.write_manifest(
    str(out),
    {
      "streams": list(stream_encoding.STREAMS),
      "clip": {"frames": TINY_CLIP_FRAMES},
      "video_tokenizer": {"code_bits": config.vocab.video_bits, "latent_shape": list(latent)},
      "audio_tokenizer": {
        "config": {"levels": config.layout.audio_levels, "codebook_size": config.vocab.audio_codebook_size}
      },
      "text": {"vocab_size": config.vocab.text_size},
      "token_masks": {"inpaint_video": inpaint.tolist(), "outpaint_video": (1 - inpaint).tolist()},
    },
  )
  return str(out)


@pytest.fixture
def tiny_lm_config(tmp_path):
  """The tiny LM config on a one-device mesh, reading synthetic token shards in tmp_path/tokens."""
  config = load_config("lm", "tiny")
  config.mesh.shape = (1, 1, 1)
  config.data.tokens_dir = write_tiny_token_shards(tmp_path / "tokens", config)
  return config


def make_tiny_bundle(root, captions, frames, size, fps):
  """A tiny untrained bundle under `root` whose parts fit each other: the tiny video and audio tokenizers
  (random weights), a text model trained on `captions`, and LM exports (`lm`, and `lm_no_stylize` trained
  for every task but stylize) for clips of `frames` x `size` x `size` at `fps`, each holding copies of the
  tokenizers; `lm` also holds an SR stage (2x; the tiny video tokenizer at twice the size makes its
  high-resolution ids). Returns their paths."""
  from flax import nnx

  from videopoet_jax import tasks
  from videopoet_jax.data import conditioning, token_shards
  from videopoet_jax.model.transformer import Transformer
  from videopoet_jax.tokenizers import pretrained, text
  from videopoet_jax.tokenizers.audio import AudioTokenizer
  from videopoet_jax.tokenizers.video import VideoGeometry, VideoTokenizer

  video, audio = load_config("video_tokenizer", "tiny"), load_config("audio_tokenizer", "tiny")
  for name, config, module in (("video", video, VideoTokenizer), ("audio", audio, AudioTokenizer)):
    state = nnx.state(module(config.model, rngs=nnx.Rngs(0)), pretrained.EXPORTED_VARIABLES)
    pretrained.export(str(root / name), state, config)
  text.train(list(captions) * 5, str(root / "text.model"), vocab_size=40)
  geometry = VideoGeometry.from_config(video.model)
  manifest = {
    "clip": {
      "fps": fps,
      "frames": frames,
      "height": size,
      "width": size,
      "sample_rate": audio.model.sample_rate,
    },
    "token_masks": {
      stream: conditioning.token_mask(kind, size, size, geometry.spatial_factor).astype(int).tolist()
      for stream, kind in (("inpaint_video", "inpaint"), ("outpaint_video", "outpaint"))
    },
  }
  paths = {"video_tokenizer": str(root / "video"), "audio_tokenizer": str(root / "audio")}
  for name, weights in (("lm", {}), ("lm_no_stylize", {"stylize": 0.0})):
    config = load_config("lm", "tiny")
    config.vocab.update(video_bits=video.model.code_bits, audio_levels=audio.model.levels)
    config.vocab.update(audio_codebook_size=audio.model.codebook_size, text_size=64)
    latent = geometry.latent_shape(frames, size, size)
    context = (latent[0] + 1) // 2  # latent frames conditioning a continuation
    config.layout.update(latent_shape=latent, audio_levels=audio.model.levels, context_frames=context)
    config.mixture.weights.update(weights)
    config.model.vocab_size = tasks.vocabulary(config).size
    path = root / name
    pretrained.export(str(path), nnx.state(Transformer(config.model, rngs=nnx.Rngs(0)), nnx.Param), config)
    token_shards.write_manifest(str(path), manifest)
    os.link(root / "text.model", path / token_shards.TEXT_MODEL)
    # A model is the LM with the tokenizers its ids came from (Generator.load finds them inside).
    for kind in pretrained.TOKENIZER_SUBDIRS:
      pretrained.copy_tokenizer(paths[kind], str(path / kind), kind)
    paths[name] = str(path)
  _export_tiny_sr(root / "lm" / pretrained.SR_SUBDIR, root, video, latent)
  return paths


def _export_tiny_sr(path, root, video, latent):
  """An untrained tiny SR stage for the tiny bundle: `latent` low-resolution ids -> twice the grid."""
  from flax import nnx

  from videopoet_jax.data import token_shards
  from videopoet_jax.model import sr_transformer
  from videopoet_jax.tokenizers import pretrained

  config = load_config("sr", "tiny")
  t, h, w = latent
  config.model.update(
    grid=(t, 2 * h, 2 * w), code_bits=video.model.code_bits, text_vocab=64,
    windows=((1, 2 * h, 2), (1, 2, 2 * w), (t, 2, 2)), cross_window=(t, 2, 2),
  )  # fmt: skip
  config.data.text_length = 8
  pretrained.export(str(path), nnx.state(sr_transformer.build(config), nnx.Param), config)
  os.link(root / "text.model", path / token_shards.TEXT_MODEL)
  pretrained.copy_tokenizer(str(root / "video"), str(path / pretrained.HIGH_RES_TOKENIZER), "video_tokenizer")
