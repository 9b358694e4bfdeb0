"""Reference points for the video tokenizer's PSNR: thumbnails, and standard codecs at the same bit budget.

  python bench/video_reference.py --videos=media/video/Megamind.avi,media/video/tree.avi [--codecs=hevc,av1]

Every file is cut into clips in the demo tokenizer's format (the same clips tokenizers/eval.py scores).
- thumbnails: each frame is shrunk to side x side pixels (box filter) and scaled back up (bicubic); their
  bits are counted at 8 bits per value.
- codecs: each clip is encoded on its own (one intra frame, then predicted frames; 4:4:4 so chroma is not
  subsampled; tuned for PSNR) at the best quality whose payload fits the tokenizer's bits per clip (binary
  search over the quantizer; a clip that does not fit even at the coarsest quantizer is counted there and
  reported in clips_over_budget). The payload excludes the stream's parameter-set headers, which a fixed
  format would not transmit. x265 (HEVC) and libaom (AV1) from the ffmpeg that imageio-ffmpeg ships; AV1
  often cannot get down to the budget on these clips even at its coarsest setting.
Prints one JSON line: per video, psnr and bits_per_clip of each reference, plus the tokenizer's bits_per_clip.
"""

import os
import re
import subprocess
import tempfile

import bench_common
import imageio_ffmpeg
import numpy as np
from absl import app, flags
from PIL import Image

from videopoet_jax import config_utils
from videopoet_jax.eval import video_metrics
from videopoet_jax.tokenizers.video import VideoGeometry

flags.DEFINE_list("videos", ["media/video/Megamind.avi"], "Video files to cut into clips.")
flags.DEFINE_list("sides", ["8", "12", "16"], "Thumbnail sides in pixels.")
flags.DEFINE_list("codecs", ["hevc"], "Standard codecs to run at the tokenizer's bit budget.")
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


HEVC_HEADER_NAL_TYPES = range(32, 41)  # VPS, SPS, PPS, AUD, EOS, EOB, FD, SEI prefix/suffix
AV1_HEADER_OBU_TYPES = (1, 2, 5, 15)  # sequence header, temporal delimiter, metadata, padding
_START_CODE = re.compile(b"\x00?\x00\x00\x01")  # Annex B, 3 or 4 bytes


def _hevc_payload_bytes(stream: bytes) -> int:
  """Bytes of the NAL units that are not parameter sets, SEI or delimiters (Annex B start codes dropped)."""
  codes = list(_START_CODE.finditer(stream))
  ends = [m.start() for m in codes[1:]] + [len(stream)]
  units = [(m.end(), end) for m, end in zip(codes, ends, strict=True)]
  return sum(end - start for start, end in units if (stream[start] >> 1) & 0x3F not in HEVC_HEADER_NAL_TYPES)


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
  value, shift = 0, 0
  while True:
    byte = data[pos]
    value |= (byte & 0x7F) << shift
    pos, shift = pos + 1, shift + 7
    if not byte & 0x80:
      return value, pos


def _av1_payload_bytes(stream: bytes) -> int:
  """Bytes of the OBUs (headers included) that are not sequence headers, delimiters, metadata or padding."""
  pos, total = 0, 0
  while pos < len(stream):
    header = stream[pos]
    start = pos
    pos += 2 if header & 0x04 else 1
    size, pos = _leb128(stream, pos)  # ffmpeg's obu muxer always writes obu_size
    pos += size
    if (header >> 3) & 0x0F not in AV1_HEADER_OBU_TYPES:
      total += pos - start
  return total


# Per codec: ffmpeg output options (the quantizer as {q}), the quantizer range (finest first), the raw
# stream format and the counter of its payload bytes.
CODECS = {
  "hevc": {
    "args": "-c:v libx265 -preset veryslow -tune psnr -pix_fmt yuv444p "
    "-x265-params qp={q}:info=0:log-level=none",
    "quantizers": range(0, 52),
    "format": "hevc",
    "payload_bytes": _hevc_payload_bytes,
  },
  "av1": {
    "args": "-c:v libaom-av1 -cpu-used 2 -crf {q} -b:v 0 -pix_fmt yuv444p -threads 1",
    "quantizers": range(0, 64),
    "format": "obu",
    "payload_bytes": _av1_payload_bytes,
  },
}


def codec_round_trip(clip: np.ndarray, fps: float, codec: str, quantizer: int) -> tuple[np.ndarray, int]:
  """`[T, S, S, 3]` uint8 -> (the clip decoded after encoding at `quantizer`, payload bits)."""
  spec = CODECS[codec]
  frames, size = clip.shape[0], clip.shape[1]
  ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
  raw = f"-f rawvideo -pix_fmt rgb24 -s {size}x{size} -r {fps}".split()
  with tempfile.TemporaryDirectory() as tmp:
    stream_path = os.path.join(tmp, "stream")
    encode = [*ffmpeg, *raw, "-i", "-", *spec["args"].format(q=quantizer).split(), "-f", spec["format"]]
    subprocess.run([*encode, stream_path], input=clip.tobytes(), check=True)
    with open(stream_path, "rb") as f:
      stream = f.read()
    decode = [*ffmpeg, "-i", stream_path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    decoded = subprocess.run(decode, capture_output=True, check=True).stdout
  out = np.frombuffer(decoded, np.uint8).reshape(frames, size, size, 3)
  return out, 8 * spec["payload_bytes"](stream)


def codec_at_budget(clip: np.ndarray, fps: float, codec: str, budget_bits: int) -> tuple[float, int]:
  """(PSNR, payload bits) of `clip` at the best quantizer whose payload fits `budget_bits`, or at the
  coarsest quantizer when none fits (its bits then exceed the budget, which the caller reports)."""
  quantizers = list(CODECS[codec]["quantizers"])
  lo, hi = 0, len(quantizers) - 1  # payload shrinks as the quantizer grows
  best = None
  while lo <= hi:
    mid = (lo + hi) // 2
    decoded, bits = codec_round_trip(clip, fps, codec, quantizers[mid])
    if bits <= budget_bits:
      best, hi = (decoded, bits), mid - 1
    else:
      lo = mid + 1
  decoded, bits = best or codec_round_trip(clip, fps, codec, quantizers[-1])
  return float(video_metrics.psnr(clip[None], decoded[None])[0]), bits


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
    references = {
      f"thumbnail_{side}": {
        "psnr": float(np.mean(video_metrics.psnr(clips, thumbnail_round_trip(clips, int(side))))),
        "bits_per_clip": data.frames * int(side) ** 2 * 3 * BITS_PER_VALUE,
      }
      for side in FLAGS.sides
    }
    for codec in FLAGS.codecs:
      runs = [codec_at_budget(clip, data.fps, codec, result["tokenizer_bits_per_clip"]) for clip in clips]
      references[codec] = {
        "psnr": float(np.mean([p for p, _ in runs])),
        "bits_per_clip": float(np.mean([b for _, b in runs])),
        "clips_over_budget": sum(b > result["tokenizer_bits_per_clip"] for _, b in runs),
      }
    result[os.path.basename(path)] = references
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
