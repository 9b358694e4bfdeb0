"""Reference points for the video tokenizer's PSNR: how well plain thumbnails reconstruct the same clips.

  python bench/video_reference.py --videos=media/video/Megamind.avi,media/video/tree.avi

Every file is cut into clips in the demo tokenizer's format (the same clips tokenizers/eval.py scores). Each
frame is shrunk to side x side pixels (box filter) and scaled back up (bicubic); the PSNR of that, and the
bits the thumbnails spend at 8 bits per value, put the tokenizer's 14 bits per 8x8x4-pixel token in scale.
Prints one JSON line: per video and side, psnr and bits_per_clip, plus the tokenizer's bits_per_clip.
"""

import os

import bench_common
import numpy as np
from absl import app, flags
from PIL import Image

from videopoet_jax import config_utils
from videopoet_jax.eval import video_metrics
from videopoet_jax.tokenizers.video import VideoGeometry

flags.DEFINE_list("videos", ["media/video/Megamind.avi"], "Video files to cut into clips.")
flags.DEFINE_list("sides", ["8", "12", "16"], "Thumbnail sides in pixels.")
flags.DEFINE_string("variant", "demo", "configs/video_tokenizer.py variant giving the clip format.")
flags.DEFINE_string("out", "bench/video_reference.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
CONFIG_FILE = os.path.join(os.path.dirname(__file__), "..", "configs", "video_tokenizer.py")
BITS_PER_VALUE = 8


def thumbnail_round_trip(clips: np.ndarray, side: int) -> np.ndarray:
  """`[N, T, S, S, 3]` uint8 -> the same shape, every frame shrunk to `side` pixels and scaled back."""
  size = clips.shape[2]
  out = np.empty_like(clips)
  for index in np.ndindex(clips.shape[:2]):
    small = Image.fromarray(clips[index]).resize((side, side), Image.BOX)
    out[index] = np.asarray(small.resize((size, size), Image.BICUBIC))
  return out


def main(argv):
  del argv
  config = config_utils.load_config_file(CONFIG_FILE, FLAGS.variant)
  data = config.data
  geometry = VideoGeometry.from_config(config.model)
  tokens = int(np.prod(geometry.latent_shape(data.frames, data.size, data.size)))
  result = {"format": [data.frames, data.size, data.size, 3], "fps": data.fps}
  result["tokenizer_bits_per_clip"] = tokens * geometry.code_bits
  for path in FLAGS.videos:
    clips = video_metrics.clips_from_video(path, data.frames, data.fps, data.size)
    result[os.path.basename(path)] = {
      f"thumbnail_{side}": {
        "psnr": float(np.mean(video_metrics.psnr(clips, thumbnail_round_trip(clips, int(side))))),
        "bits_per_clip": data.frames * int(side) ** 2 * 3 * BITS_PER_VALUE,
      }
      for side in FLAGS.sides
    }
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
