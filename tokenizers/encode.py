"""Pre-tokenizes a dataset once: stage-1 tokenizers over every example, written as token shards.

  python tokenizers/encode.py --dataset=shapes_world --video_tokenizer=DIR [--audio_tokenizer=DIR] --out=DIR

Streams per example (see videopoet_jax/data/token_shards.py): `video` ids, `audio` ids (with
--audio_tokenizer), `text` sentencepiece ids (the model is trained on the train split's captions unless
--text_model is given) or `text_embedding` (--text_embeddings=DIR holding `<split>.npy` `[N, L, D]`),
`next_text` (the caption of what follows the first second: a continuation's prompt), and the conditioning
streams `inpaint_video`, `outpaint_video`, `structure_video`, `reversed_video`.

Batches are split over the mesh's data axis (this process's devices). Shards are written to a temporary
name and renamed when complete: kill the program at any time and run the same command again; finished
shards are kept and skipped, and the result is byte-identical to an uninterrupted run.

Across processes and hosts (--num_processes and --process_id, or JAX_NUM_PROCESSES / JAX_PROCESS_ID: the
flags train.py takes; no coordinator is needed, the processes never talk): process p of n encodes the
shards whose index is p modulo n, on its own devices, into the same --out (a shared folder or bucket);
process 0 writes the manifest and the text model, which the others wait for. The union is byte-identical to
one process's output (tested with 2 local processes).
"""

import json
import os
import sys
import time

import numpy as np
import tqdm
from absl import app, flags

from videopoet_jax import cli_errors, distributed
from videopoet_jax.data import conditioning, datasets, token_shards
from videopoet_jax.data.stream_encoding import MASKED_STREAMS, STREAMS, Encoder, shard_records
from videopoet_jax.tokenizers import pretrained, text
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("dataset", None, "Dataset name, e.g. shapes_world or clip_folder:source_dir=DIR.")
flags.DEFINE_string(
  "data_dir", datasets.DEFAULT_DATA_DIR, "TFDS data folder (the dataset is built there if missing)."
)
flags.DEFINE_list("splits", ["train", "validation", "test"], "Splits to encode (those the dataset has).")
flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export folder or workdir (default: bundled).")
flags.DEFINE_string(
  "audio_tokenizer", None, "Audio tokenizer export folder or workdir (no audio stream if unset)."
)
flags.DEFINE_string("text_model", None, "Existing sentencepiece model (default: train one on the captions).")
flags.DEFINE_integer(
  "text_vocab_size", text.DEFAULT_VOCAB_SIZE, "Vocabulary size when training the text model."
)
flags.DEFINE_string("text_embeddings", None, "Folder of <split>.npy [N, L, D] precomputed text embeddings.")
flags.DEFINE_list("streams", list(STREAMS), f"Streams to write, from {STREAMS}.")
flags.DEFINE_string("out", None, "Output folder of the token shards.")
flags.DEFINE_integer("examples_per_shard", 256, "Examples per shard file.")
flags.DEFINE_integer("batch_size", 8, "Clips per tokenizer call (rounded up to a multiple of the devices).")
flags.DEFINE_integer("max_examples", 0, "Encode only the first N examples of each split (0: all).")
distributed.define_flags()
FLAGS = flags.FLAGS


# How long a process other than 0 waits for process 0's manifest and text model.
WAIT_FOR_PRIMARY_S = 1800


def process_slot() -> tuple[int, int]:
  """`(index, count)` of this process among the encoding processes (flags, else the environment)."""
  mode = "off" if FLAGS.distributed == "off" else "auto"
  spec = distributed.process_spec(mode, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  count = (spec and spec.num_processes) or 1
  index = (spec and spec.process_id) or 0
  if not 0 <= index < count:
    raise ValueError(f"--process_id={index} must be in [0, --num_processes={count})")
  return index, count


def wait_for(path: str) -> None:
  """Waits until `path` exists (written by process 0); TimeoutError after WAIT_FOR_PRIMARY_S."""
  deadline = time.time() + WAIT_FOR_PRIMARY_S
  while not os.path.exists(path):
    if time.time() > deadline:
      raise TimeoutError(f"process 0 did not write {path} within {WAIT_FOR_PRIMARY_S} s")
    time.sleep(0.5)


def say(line: str) -> None:
  """One of the program's own progress lines (library logging stays behind --verbosity)."""
  print(line, file=sys.stderr, flush=True)


def text_setup(source_by_split, out: str):
  """`(TextTokenizer, manifest entry)`: the given model, or one trained on the train captions."""
  path = os.path.join(out, token_shards.TEXT_MODEL)
  if FLAGS.text_model:
    with open(FLAGS.text_model, "rb") as src, open(path + token_shards.TMP_SUFFIX, "wb") as dst:
      dst.write(src.read())
    os.replace(path + token_shards.TMP_SUFFIX, path)
  elif not os.path.exists(path):
    split = "train" if "train" in source_by_split else next(iter(source_by_split))
    source = source_by_split[split]
    captions = [source[i]["caption"].decode("utf-8") for i in range(len(source))]
    text.train(captions, path + token_shards.TMP_SUFFIX, FLAGS.text_vocab_size)
    os.replace(path + token_shards.TMP_SUFFIX, path)
    say(f"trained the text tokenizer on {len(captions)} {split} captions")
  tokenizer = text.TextTokenizer(path)
  return tokenizer, {"model": token_shards.TEXT_MODEL, "vocab_size": tokenizer.vocab_size}


def load_embeddings(split: str, count: int) -> np.ndarray:
  path = os.path.join(FLAGS.text_embeddings, f"{split}.npy")
  if not os.path.exists(path):
    raise FileNotFoundError(f"--text_embeddings has no {split}.npy ([N, L, D] float) at {path}")
  embeddings = np.load(path, mmap_mode="r")
  if embeddings.ndim != 3 or len(embeddings) < count:
    raise ValueError(f"{path} has shape {embeddings.shape}; need [N >= {count}, L, D]")
  return embeddings


def cheap_settings(splits: list[str]) -> dict:
  """Manifest entries known before any tokenizer is loaded."""
  return {
    "dataset": FLAGS.dataset,
    "splits": splits,
    "max_examples": FLAGS.max_examples,
    "examples_per_shard": FLAGS.examples_per_shard,
  }


def check_manifest(out: str, manifest: dict, partial: bool = False) -> None:
  """Refuses to mix shards of a different configuration into `out` (`partial`: only `manifest`'s keys)."""
  previous = token_shards.read_manifest(out)
  if previous is None:
    return
  previous.pop("format", None)
  # The text entry is checked by reusing OUT/text.model, not by comparison.
  keys = (set(manifest) if partial else set(previous) | set(manifest)) - {"text"}
  diffs = sorted(k for k in keys if previous.get(k) != manifest.get(k))
  if diffs:
    raise ValueError(
      f"{out} holds shards written with other settings ({', '.join(diffs)}); use a fresh --out"
    )


def encode_split(encoder, split, source, out, streams, features, text_tokenizer, slot=(0, 1)) -> dict:
  count = min(len(source), FLAGS.max_examples or len(source))
  per_shard = FLAGS.examples_per_shard
  num_shards = max(1, -(-count // per_shard))
  embeddings = load_embeddings(split, count) if FLAGS.text_embeddings and "text" in streams else None
  for stale in token_shards.remove_partial(out, split):
    say(f"removed the partial shard {stale} of an interrupted run")
  # This process's shards (all of them in a one-process run).
  mine = list(range(slot[0], num_shards, slot[1]))
  sizes = {s: min(per_shard, count - s * per_shard) for s in mine}
  done = [s for s in mine if os.path.exists(token_shards.shard_path(out, split, s, num_shards))]
  done_examples = sum(sizes[s] for s in done)
  if done:
    say(f"{split}: {len(done)} of {len(mine)} shards already written, skipping them")
  start_time = time.time()
  total = sum(sizes.values())
  bar = tqdm.tqdm(total=total, initial=done_examples, desc=f"encode {split}", unit="ex", file=sys.stderr)
  for shard in mine:
    path = token_shards.shard_path(out, split, shard, num_shards)
    if shard in done:
      continue
    first = shard * per_shard
    examples = [source[i] for i in range(first, min(first + per_shard, count))]
    records = shard_records(encoder, examples, first, streams, features, text_tokenizer, embeddings)
    token_shards.write_shard(path, records)
    bar.update(len(examples))
  bar.close()
  seconds = time.time() - start_time
  encoded = total - done_examples
  return {
    "split": split,
    "examples": count,
    "shards": num_shards,
    "process": f"{slot[0]} of {slot[1]}",
    "encoded_now": encoded,
    "seconds": round(seconds, 2),
    "examples_per_s": round(encoded / seconds, 2) if encoded else None,
  }


def main(argv):
  del argv
  quiet_unless_verbose()
  try:
    slot = process_slot()
  except ValueError as e:
    cli_errors.exit_with(e)
  primary = slot[0] == 0
  if not FLAGS.dataset or not FLAGS.out:
    cli_errors.exit_with("--dataset and --out are required")
  unknown = set(FLAGS.streams) - set(STREAMS)
  if unknown:
    cli_errors.exit_with(f"unknown streams {sorted(unknown)}; known: {STREAMS}")
  try:
    cli_errors.check_at_least(batch_size=1, examples_per_shard=1, max_examples=0)
    builder = datasets.make_builder(FLAGS.dataset, FLAGS.data_dir)
    builder.download_and_prepare()
    sources = builder.as_data_source()
    splits = [s for s in FLAGS.splits if s in sources]
    if not splits:
      raise ValueError(f"{FLAGS.dataset} has none of the splits {FLAGS.splits} (it has {sorted(sources)})")
    check_manifest(FLAGS.out, cheap_settings(splits), partial=True)
    audio = pretrained.load_audio_tokenizer(FLAGS.audio_tokenizer) if FLAGS.audio_tokenizer else None
    video_tokenizer, video_config = pretrained.load_video_tokenizer(FLAGS.video_tokenizer)
    clip = datasets.clip_format(builder)
    first = sources[splits[0]][0]["video"]
    latent = video_tokenizer.geometry.latent_shape(*first.shape[:3])
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  # Without an audio tokenizer there are no audio ids; precomputed text embeddings (of the caption) stand
  # for next_text as well.
  streams = [
    s
    for s in FLAGS.streams
    if (s != "audio" or audio is not None) and (s != "next_text" or not FLAGS.text_embeddings)
  ]
  os.makedirs(FLAGS.out, exist_ok=True)
  height, width = first.shape[1:3]
  factor = video_tokenizer.geometry.spatial_factor
  manifest = {
    **cheap_settings(splits),
    "streams": streams,
    "clip": {"frames": int(first.shape[0]), "height": int(height), "width": int(width), **clip},
    "video_tokenizer": {
      "path": os.path.abspath(FLAGS.video_tokenizer) if FLAGS.video_tokenizer else token_shards.BUNDLED,
      "code_bits": video_config.model.code_bits,
      "latent_shape": list(latent),
    },
    "audio_tokenizer": None,
    "token_masks": {
      stream: conditioning.token_mask(kind, height, width, factor).astype(int).tolist()
      for stream, kind in MASKED_STREAMS.items()
      if stream in streams
    },
  }
  if audio is not None:
    audio_config = audio[1]
    manifest["audio_tokenizer"] = {
      "path": os.path.abspath(FLAGS.audio_tokenizer),
      "sample_rate": audio_config.model.sample_rate,
      "config": json.loads(audio_config.model.to_json()),
    }
  try:
    check_manifest(FLAGS.out, manifest)
    text_tokenizer = None
    if "text" in streams and FLAGS.text_embeddings:
      manifest["text"] = {"embeddings": os.path.abspath(FLAGS.text_embeddings)}
    elif "text" in streams and primary:
      text_tokenizer, manifest["text"] = text_setup(sources, FLAGS.out)
    if primary:
      token_shards.write_manifest(FLAGS.out, manifest)
    else:  # the manifest is written after the text model
      wait_for(os.path.join(FLAGS.out, token_shards.MANIFEST))
      if "text" in streams and not FLAGS.text_embeddings:
        text_tokenizer = text.TextTokenizer(os.path.join(FLAGS.out, token_shards.TEXT_MODEL))
  except (*cli_errors.BAD_INPUT, TimeoutError) as e:
    cli_errors.exit_with(e)
  encoder = Encoder(video_tokenizer, audio, FLAGS.batch_size, int(clip["sample_rate"]))
  say(f"encoding on {len(encoder.mesh.devices.flat)} devices, batch {encoder.batch_size}")
  for split in splits:
    try:
      summary = encode_split(
        encoder, split, sources[split], FLAGS.out, streams, builder.info.features, text_tokenizer, slot
      )
    except cli_errors.BAD_INPUT as e:
      cli_errors.exit_with(e)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
  app.run(main)
