"""tokenizers/encode.py: token shards from a tiny shapes_world build, sharded over 8 devices, resumable."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.data import conditioning, shapes_world_dataset, stream_encoding, token_shards
from videopoet_jax.data import shapes_world as world
from videopoet_jax.tokenizers import pretrained, text
from videopoet_jax.tokenizers.audio import AudioTokenizer
from videopoet_jax.tokenizers.video import VideoTokenizer

from conftest import REPO, load_config

DATASET = "shapes_world:num_train=12,num_validation=4,num_test=0"
EXAMPLES_PER_SHARD = 2
TRAIN_SHARDS = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """An exported untrained tiny video tokenizer and a prepared tiny shapes_world."""
  root = tmp_path_factory.mktemp("encode")
  config = load_config("video_tokenizer", "tiny")
  module = VideoTokenizer(config.model, rngs=nnx.Rngs(0))
  pretrained.export(str(root / "tokenizer"), nnx.state(module, nnx.Param), config)
  builder = shapes_world_dataset.make_builder(
    "default", str(root / "tfds"), num_train=12, num_validation=4, num_test=0
  )
  builder.download_and_prepare()
  return root, builder


def _command(root, out, *extra):
  return [
    sys.executable,
    str(REPO / "tokenizers" / "encode.py"),
    f"--dataset={DATASET}",
    f"--data_dir={root / 'tfds'}",
    f"--video_tokenizer={root / 'tokenizer'}",
    f"--out={out}",
    f"--examples_per_shard={EXAMPLES_PER_SHARD}",
    "--batch_size=8",
    *extra,
  ]


def _env():
  """The test's 8 CPU devices, and its persistent compilation cache so that each run compiles little."""
  return {
    **os.environ,
    "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
  }


def _run(root, out, *extra):
  return subprocess.run(_command(root, out, *extra), capture_output=True, text=True, cwd=REPO, env=_env())


def _files(out):
  found = {}
  for folder, _, names in os.walk(out):
    for name in names:
      if name.endswith(".array_record") or name == token_shards.TEXT_MODEL:
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
          found[os.path.relpath(path, out)] = f.read()
  return found


@pytest.fixture(scope="module")
def uninterrupted(setup):
  root, _ = setup
  out = root / "uninterrupted"
  result = _run(root, out)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "encoding on 8 devices" in result.stderr
  return out


def test_records_hold_every_stream(setup, uninterrupted):
  root, builder = setup
  source = builder.as_data_source()["train"]
  manifest = token_shards.read_manifest(str(uninterrupted))
  assert manifest["video_tokenizer"]["latent_shape"] == [5, 8, 8]
  assert manifest["audio_tokenizer"] is None and "audio" not in manifest["streams"]
  paths = token_shards.shard_paths(str(uninterrupted), "train")
  assert len(paths) == TRAIN_SHARDS and len(token_shards.shard_paths(str(uninterrupted), "validation")) == 2
  records = [r for p in paths for r in token_shards.read_shard(p)]
  assert [r["index"] for r in records] == list(range(12))
  tokenizer, _ = pretrained.load_video_tokenizer(str(root / "tokenizer"))
  sp = text.TextTokenizer(str(uninterrupted / token_shards.TEXT_MODEL))
  examples = [source[i] for i in range(4)]
  videos = np.stack([e["video"] for e in examples]).astype(np.float32) / 127.5 - 1
  direct = np.asarray(jax.jit(tokenizer.encode)(videos))
  structure = np.stack([conditioning.structure_clip(e) for e in examples]).astype(np.float32) / 127.5 - 1
  direct_structure = np.asarray(jax.jit(tokenizer.encode)(structure))
  direct_reversed = np.asarray(jax.jit(tokenizer.encode)(videos[:, ::-1]))
  for i, (record, example) in enumerate(zip(records, examples, strict=False)):
    assert record["caption"] == example["caption"].decode()
    assert record["attributes"]["seed"] == int(example["seed"])
    for stream in ("video", "inpaint_video", "outpaint_video", "structure_video", "reversed_video"):
      ids = record[stream]
      assert ids.shape == (5, 8, 8) and ids.dtype == np.int32 and 0 <= ids.min() and ids.max() < 2**8
    # Sharded batches over 8 devices give the ids a plain single-call encode gives.
    assert np.mean(record["video"] == direct[i]) > 0.99
    assert np.mean(record["structure_video"] == direct_structure[i]) > 0.99
    # The clip played backwards, encoded as its own clip (bridge's last frame, backward extension).
    assert np.mean(record["reversed_video"] == direct_reversed[i]) > 0.99
    # The masked streams are the clip's own ids (the task hides the token mask's cells): no second encoding.
    np.testing.assert_array_equal(record["inpaint_video"], record["video"])
    np.testing.assert_array_equal(record["outpaint_video"], record["video"])
    assert sp.decode(record["text"]) == record["caption"]
    # No turns in the default config: a continuation's prompt is the caption.
    np.testing.assert_array_equal(record["next_text"], record["text"])
    masked = np.asarray(manifest["token_masks"]["inpaint_video"], bool)
    assert masked.shape == (8, 8) and masked[2:6, 2:6].all() and masked.sum() == 16


def test_resume_after_kill_is_byte_identical(setup, uninterrupted):
  root, _ = setup
  out = root / "resumed"
  process = subprocess.Popen(
    _command(root, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=_env()
  )
  deadline = time.time() + 120
  while (
    not list((out / "train").glob("*.array_record")) and time.time() < deadline and process.poll() is None
  ):
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  finished_at_kill = len(list((out / "train").glob("*.array_record")))
  assert 1 <= finished_at_kill < TRAIN_SHARDS
  kept = {p.name: p.stat().st_mtime_ns for p in (out / "train").glob("*.array_record")}
  result = _run(root, out)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "already written, skipping them" in result.stderr
  for name, mtime in kept.items():
    assert (out / "train" / name).stat().st_mtime_ns == mtime  # finished shards were not rewritten
  resumed, reference = _files(out), _files(uninterrupted)
  assert sorted(resumed) == sorted(reference) and len(reference) == TRAIN_SHARDS + 2 + 1
  for name, data in reference.items():
    assert resumed[name] == data, name


def test_other_settings_in_the_same_out_fail(setup, uninterrupted):
  root, _ = setup
  result = _run(root, uninterrupted, "--examples_per_shard=3")
  assert result.returncode != 0 and "other settings" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
  "flag, message",
  [
    ("--dataset=nope", "unknown dataset"),
    ("--audio_tokenizer=/nonexistent", ""),
    ("--streams=video,smell", "unknown streams"),
    ("--process_id=2", "--process_id=2 must be in [0, --num_processes=1)"),
  ],
)
def test_bad_input_is_one_line_error(setup, tmp_path, flag, message):
  root, _ = setup
  result = _run(root, tmp_path / "out", flag)
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and last.startswith("error: ") and message in last, result.stderr[-2000:]


@pytest.mark.parametrize("model_rate", [16_000, 8_000])
def test_audio_stream_uses_the_audio_tokenizer(setup, model_rate):
  root, builder = setup
  tokenizer, _ = pretrained.load_video_tokenizer(str(root / "tokenizer"))
  audio_config = load_config("audio_tokenizer", "tiny")
  audio_config.model.sample_rate = model_rate
  audio_tokenizer = AudioTokenizer(audio_config.model, rngs=nnx.Rngs(0))
  levels, hop = audio_tokenizer.geometry.levels, audio_tokenizer.geometry.hop
  encoder = stream_encoding.Encoder(
    tokenizer, (audio_tokenizer, audio_config), batch_size=8, sample_rate=16_000
  )
  source = builder.as_data_source()["train"]
  examples = [source[i] for i in range(3)]
  silent = dict(examples[1], has_audio=np.bool_(False))  # a clip_folder video without a track
  records = stream_encoding.shard_records(
    encoder, [examples[0], silent, examples[2]], 0, ["audio"], builder.info.features, None, None
  )
  assert "audio" not in records[1] and all("video" not in r for r in records)
  frames = 34_000 * model_rate // 16_000 // hop
  for record, example in ((records[0], examples[0]), (records[2], examples[2])):
    assert record["audio"].shape == (levels, frames) and record["audio"].dtype == np.int32
    if model_rate == 16_000:
      expected = np.asarray(audio_tokenizer.encode(jnp.asarray(example["audio"])[None]))[0]
      assert np.mean(record["audio"] == expected) > 0.99


def test_precomputed_text_embeddings_replace_text_ids(setup):
  _, builder = setup
  source = builder.as_data_source()["train"]
  examples = [source[i] for i in range(4, 7)]
  embeddings = np.random.default_rng(0).normal(size=(12, 6, 16)).astype(np.float32)  # [N, L, D], e.g. T5
  records = stream_encoding.shard_records(
    None, examples, 4, ["text"], builder.info.features, None, embeddings
  )
  for i, record in enumerate(records):
    assert "text" not in record and record["index"] == 4 + i
    np.testing.assert_array_equal(record["text_embedding"], embeddings[4 + i])


def test_next_text_is_the_caption_of_what_follows_a_turn(setup, uninterrupted):
  root, builder = setup
  sp = text.TextTokenizer(str(uninterrupted / token_shards.TEXT_MODEL))
  clips = [world.render(seed, turn_fraction=1.0) for seed in range(6)]
  clips = [c for c in clips if c["then"] is not None][:2]
  assert len(clips) == 2
  # What the text streams read of an example (as TFDS gives text: bytes).
  examples = [
    {"caption": c["caption"].encode(), "next_caption": c["next_caption"].encode(), "seed": i}
    for i, c in enumerate(clips)
  ]
  records = stream_encoding.shard_records(
    None, examples, 0, ["text", "next_text"], builder.info.features, sp, None
  )
  for record, clip in zip(records, clips, strict=True):
    assert clip["next_caption"] != clip["caption"] and record["caption"] == clip["caption"]
    np.testing.assert_array_equal(record["text"], sp.encode(clip["caption"]))
    np.testing.assert_array_equal(record["next_text"], sp.encode(clip["next_caption"]))


def test_two_processes_write_the_shards_of_one(setup, uninterrupted):
  """Process p of 2 encodes shards p, p + 2, ... on its own 8 devices into the same folder (process 0
  writes the manifest and the text model, process 1 waits for them); the union is the one-process output,
  byte for byte."""
  root, _ = setup
  out = root / "two_processes"
  processes = [
    subprocess.Popen(
      _command(root, out, "--num_processes=2", f"--process_id={i}"),
      cwd=REPO,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=600) for p in processes]
  for process, (_, stderr) in zip(processes, outputs, strict=True):
    assert process.returncode == 0, stderr[-3000:]
  assert '"process": "1 of 2"' in outputs[1][0]
  together, reference = _files(out), _files(uninterrupted)
  assert sorted(together) == sorted(reference)
  for name, data in reference.items():
    assert together[name] == data, name
  assert token_shards.read_manifest(str(out)) == token_shards.read_manifest(str(uninterrupted))
