"""Round-trips a video through the video tokenizer and prints one JSON line of metrics.

  python tokenizers/eval.py --video=PATH [--checkpoint=DIR] [--output=recon.mp4]

The video (any format ffmpeg reads) is resampled to the tokenizer's fps, center-cropped, resized and cut
into consecutive clips; all of them are encoded and decoded. Prints psnr and ssim (means over clips), tokens
per clip and bits per pixel. `--output` writes original | reconstruction side by side.
"""

import json
import sys

import jax
import numpy as np
from absl import app, flags

from videopoet_jax.data import media
from videopoet_jax.eval import video_metrics
from videopoet_jax.tokenizers import pretrained

flags.DEFINE_string("video", None, "Video file to round-trip.", required=True)
flags.DEFINE_string("checkpoint", None, "Export folder or training workdir (default: the bundled tokenizer).")
flags.DEFINE_string("output", None, "Write original | reconstruction side by side (mp4 or gif).")
flags.DEFINE_integer("batch_size", 4, "Clips per encode/decode call.")
flags.DEFINE_integer("display_size", 256, "Height of each half of --output, in pixels.")
flags.DEFINE_integer("output_clips", 0, "Write only the first N clips to --output (0: all).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    tokenizer, config = pretrained.load_video_tokenizer(FLAGS.checkpoint)
    clips = video_metrics.clips_from_video(FLAGS.video, config.data.frames, config.data.fps, config.data.size)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"error: {e}")
  encode = jax.jit(tokenizer.encode)
  decode = jax.jit(tokenizer.decode)
  recon = video_metrics.round_trip(lambda x: decode(encode(x)), clips, FLAGS.batch_size)
  t, h, w = tokenizer.geometry.latent_shape(*clips.shape[1:4])
  tokens = t * h * w
  result = {
    "video": FLAGS.video,
    "clips": len(clips),
    "psnr": float(np.mean(video_metrics.psnr(clips, recon))),
    "ssim": float(np.mean(video_metrics.ssim(clips, recon))),
    "tokens_per_clip": tokens,
    "codebook_bits": config.model.code_bits,
    "bits_per_pixel": tokens * config.model.code_bits / float(np.prod(clips.shape[1:4])),
  }
  if FLAGS.output:
    shown = slice(0, FLAGS.output_clips or len(clips))
    side_by_side = np.concatenate([clips[shown], recon[shown]], axis=3)
    side_by_side = side_by_side.reshape(-1, clips.shape[2], 2 * clips.shape[3], 3)
    media.write_video(FLAGS.output, side_by_side, config.data.fps, FLAGS.display_size)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
