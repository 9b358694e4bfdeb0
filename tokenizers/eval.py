"""Round-trips a video or an audio file through its tokenizer and prints one JSON line of metrics.

  python tokenizers/eval.py --video=PATH [--checkpoint=DIR] [--output=recon.mp4] [--refine_steps=N]
                            [--refine_flip_rounds=R]
  python tokenizers/eval.py --audio=PATH [--checkpoint=DIR] [--output=recon.wav] [--levels=N]

Video (any format ffmpeg reads) is resampled to the tokenizer's fps, center-cropped, resized and cut into
consecutive clips; all of them are encoded and decoded. Prints psnr and ssim (means over clips), tokens
per clip and bits per pixel. `--output` writes original | reconstruction side by side. `--refine_steps=N`
encodes with the causal encoder-side search of videopoet_jax/tokenizers/refine.py (N decoder passes per
latent frame; same decoder, same ids format); `--refine_flip_rounds=R` adds R rounds of exact bit flips.

Audio (wav/flac/ogg/mp3) is resampled to the tokenizer's rate, mixed to mono and round-tripped whole, in
consecutive clip-sized windows. Prints the multi-scale log-mel distance, SI-SNR, bitrate (kbps) and tokens
per second, and the mel distance of the same audio band-limited to 1 kHz (the baseline to beat), each both
unfloored and floored 40 dB below the original's loudest bin (`floored_mel_distance`).
"""

import json
import math
import sys

import jax
import numpy as np
import tqdm
from absl import app, flags
from PIL import Image

from videopoet_jax import cli_errors
from videopoet_jax.data import media
from videopoet_jax.eval import audio_metrics, video_metrics
from videopoet_jax.tokenizers import patch_table, pretrained, refine
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("video", None, "Video file to round-trip.")
flags.DEFINE_string("audio", None, "Audio file to round-trip.")
flags.DEFINE_string("checkpoint", None, "Export folder or training workdir (default: the bundled tokenizer).")
flags.DEFINE_string(
  "output", None, "Video: original | reconstruction (mp4 or gif). Audio: the reconstruction."
)
flags.DEFINE_integer("batch_size", 4, "Clips per encode/decode call.")
flags.DEFINE_integer("display_size", 256, "Video: height of each half of --output, in pixels.")
flags.DEFINE_integer("output_clips", 0, "Video: write only the first N clips to --output (0: all).")
flags.DEFINE_integer(
  "refine_steps",
  0,
  "Video: search each latent frame's codes for N steps through the decoder (0: encoder only; "
  f"{refine.DEFAULT_STEPS} gives the README's figures).",
)
flags.DEFINE_float(
  "refine_learning_rate", refine.DEFAULT_LEARNING_RATE, "Video: the search's initial Adam learning rate."
)
flags.DEFINE_integer(
  "refine_flip_rounds", 0, "Video: rounds of exact bit flips per latent frame after the search's steps."
)
flags.DEFINE_integer("levels", 0, "Audio: decode with the first N RVQ levels only (0: all).")
flags.DEFINE_string(
  "spectrogram",
  None,
  "Audio: write log-mel spectrograms (original / 1 kHz band-limit / reconstruction) as PNG.",
)
flags.register_multi_flags_validator(
  ["video", "audio"],
  lambda f: (f["video"] is None) != (f["audio"] is None),
  "pass exactly one of --video, --audio",
)
FLAGS = flags.FLAGS


def searching_encoder(tokenizer, batches: int):
  """The causal search (--refine_steps, --refine_flip_rounds) as an encode function, with a progress bar
  over `batches` calls."""
  progress = tqdm.tqdm(total=batches, desc="searching ids", unit="batch")

  def encode(video):
    ids = refine.encode_refined(
      tokenizer, video, FLAGS.refine_steps, FLAGS.refine_learning_rate, FLAGS.refine_flip_rounds
    )
    progress.update()
    return ids

  return encode


def eval_video() -> dict:
  tokenizer, config = pretrained.load_video_tokenizer(FLAGS.checkpoint)
  decoded = media.read_video(FLAGS.video)
  if decoded.note:
    print(f"note: {decoded.note}", file=sys.stderr)
  clips = video_metrics.clips_from_video(decoded, config.data.frames, config.data.fps, config.data.size)
  if (FLAGS.refine_steps or FLAGS.refine_flip_rounds) and config.model.get("kind") == patch_table.KIND:
    raise ValueError(
      "--refine_steps/--refine_flip_rounds search a learned tokenizer's codes; a patch table's encode"
      " already takes each patch's nearest row"
    )
  if FLAGS.refine_steps or FLAGS.refine_flip_rounds:
    encode = searching_encoder(tokenizer, math.ceil(len(clips) / FLAGS.batch_size))
  else:
    encode = jax.jit(tokenizer.encode)
  decode = jax.jit(tokenizer.decode)
  recon = video_metrics.round_trip(lambda x: decode(encode(x)), clips, FLAGS.batch_size)
  t, h, w = tokenizer.geometry.latent_shape(*clips.shape[1:4])
  tokens = t * h * w
  if FLAGS.output:
    shown = slice(0, FLAGS.output_clips or len(clips))
    side_by_side = np.concatenate([clips[shown], recon[shown]], axis=3)
    side_by_side = side_by_side.reshape(-1, clips.shape[2], 2 * clips.shape[3], 3)
    media.write_video(FLAGS.output, side_by_side, config.data.fps, FLAGS.display_size)
  return {
    "video": FLAGS.video,
    "clips": len(clips),
    "psnr": float(np.mean(video_metrics.psnr(clips, recon))),
    "ssim": float(np.mean(video_metrics.ssim(clips, recon))),
    "tokens_per_clip": tokens,
    "codebook_bits": config.model.code_bits,
    "bits_per_pixel": tokens * config.model.code_bits / float(np.prod(clips.shape[1:4])),
    "refine_steps": FLAGS.refine_steps,
    "refine_flip_rounds": FLAGS.refine_flip_rounds,
  }


def eval_audio() -> dict:
  tokenizer, config = pretrained.load_audio_tokenizer(FLAGS.checkpoint)
  evaluate = audio_metrics.CodecEvaluator(
    tokenizer, config, FLAGS.levels or tokenizer.geometry.levels, FLAGS.batch_size
  )
  rate = tokenizer.geometry.sample_rate
  wave = media.read_audio(FLAGS.audio, rate)
  result = evaluate(wave)
  recon = result.pop("reconstruction")
  if FLAGS.output:
    media.write_audio(FLAGS.output, recon, rate)
  if FLAGS.spectrogram:
    rows = [wave, audio_metrics.bandlimit(wave, rate), recon]
    image = audio_metrics.spectrogram_image(rows, rate)
    Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(
      FLAGS.spectrogram
    )
  return {"audio": FLAGS.audio, **result}


def check_flags() -> None:
  """MediaError / ValueError (one line) for an unreadable input, an output that cannot be written or a
  number out of range; before any model loads."""
  media.check_readable(FLAGS.video or FLAGS.audio)
  if FLAGS.output:
    media.check_writable(FLAGS.output, media.VIDEO_OUTPUTS if FLAGS.video else media.AUDIO_OUTPUTS)
  if FLAGS.spectrogram:
    media.check_writable(FLAGS.spectrogram, (".png",))
  cli_errors.check_at_least(batch_size=1, display_size=1, output_clips=0, levels=0)


def main(argv):
  del argv
  quiet_unless_verbose()
  try:
    check_flags()
    result = eval_video() if FLAGS.video else eval_audio()
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
