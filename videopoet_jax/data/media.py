"""Media file IO and clip formatting: video (decode, fps resampling, center crop + resize, mp4 writing)
and audio (decode + resample to mono from audio files or a video's own track, wav writing, muxing).

Frames are uint8 `[T, H, W, 3]` on the host; models take float `[B, T, H, W, 3]` in [-1, 1]. Audio is
float32 `[N]` mono in [-1, 1] at the caller's sample rate.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import tempfile

import imageio.v2 as imageio
import imageio_ffmpeg
import librosa
import numpy as np
import soundfile
from PIL import Image

# File name endings read as videos (anything ffmpeg decodes) and as still images.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class MediaError(ValueError):
  """A file that cannot be read as the media it claims to be."""


@dataclasses.dataclass
class DecodedVideo:
  frames: np.ndarray  # [T, H, W, 3] uint8
  fps: float


def read_video(path: str, max_side: int | None = None) -> DecodedVideo:
  """Decodes every readable frame of `path` (any container ffmpeg reads).

  A partly damaged file yields the frames that decode (with a warning); a file with none raises MediaError.
  `max_side` downscales frames on the fly so that their longer side is at most that many pixels.
  """
  try:
    reader = imageio.get_reader(path, "ffmpeg")
  except Exception as e:  # imageio raises several types for unreadable input.
    raise MediaError(f"cannot open video {path}: {e}") from e
  fps = float(reader.get_meta_data().get("fps") or 0.0)
  frames = []
  try:
    for frame in reader:
      if max_side and max(frame.shape[:2]) > max_side:
        scale = max_side / max(frame.shape[:2])
        size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
        frame = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))
      frames.append(frame[..., :3])
  except Exception as e:
    if not frames:
      raise MediaError(f"cannot decode video {path}: {e}") from e
    logging.warning("%s: decoding stopped after %d frames (%s)", path, len(frames), e)
  finally:
    reader.close()
  if not frames or fps <= 0:
    raise MediaError(f"video {path} has no decodable frames")
  return DecodedVideo(np.stack(frames), fps)


def resample_indices(num_frames: int, src_fps: float, dst_fps: float, start_s: float = 0.0) -> np.ndarray:
  """Source frame indices (nearest earlier frame) for a clip at `dst_fps` starting at `start_s`."""
  times = start_s + np.arange(int(np.floor((num_frames / src_fps - start_s) * dst_fps + 1e-6))) / dst_fps
  return np.minimum(np.floor(times * src_fps + 1e-6).astype(np.int64), num_frames - 1)


def crop_resize(frames: np.ndarray, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
  """Crops `box` = (x0, y0, x1, y1) (default: the centred square) and resizes to `size` x `size`.

  `[T, H, W, 3]` uint8 -> `[T, size, size, 3]` uint8 (area-averaging when shrinking).
  """
  _, h, w, _ = frames.shape
  if box is None:
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    box = (x0, y0, x0 + side, y0 + side)
  out = [np.asarray(Image.fromarray(f).crop(box).resize((size, size), Image.BOX)) for f in frames]
  return np.stack(out)


def to_model_range(frames: np.ndarray) -> np.ndarray:
  """uint8 `[..., 3]` in [0, 255] -> float32 in [-1, 1]."""
  return frames.astype(np.float32) / 127.5 - 1.0


def from_model_range(video) -> np.ndarray:
  """float in [-1, 1] -> uint8 in [0, 255] (clipped, rounded)."""
  return np.clip(np.round((np.asarray(video, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def write_video(path: str, frames: np.ndarray, fps: float, display_size: int | None = None) -> None:
  """Writes `[T, H, W, 3]` uint8 frames as an H.264 mp4 (or a GIF if `path` ends in .gif).

  `display_size` upscales with nearest neighbour for viewing small clips.
  """
  frames = upscale(frames, display_size)
  if path.endswith(".gif"):
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    return
  # yuv420p needs even sides; macro_block_size=1 avoids imageio's silent resize.
  writer = imageio.get_writer(
    path, fps=fps, codec="libx264", quality=9, macro_block_size=1, pixelformat="yuv420p"
  )
  for frame in frames:
    writer.append_data(frame)
  writer.close()


def write_image(path: str, image: np.ndarray, display_size: int | None = None) -> None:
  """Writes a `[H, W, 3]` uint8 image (png/jpg by extension), upscaled (nearest) to `display_size`."""
  Image.fromarray(upscale(image, display_size)).save(path)


def upscale(pixels: np.ndarray, display_size: int | None) -> np.ndarray:
  """`[..., H, W, 3]` -> nearest-neighbour upscaled by the whole factor that brings H to `display_size`."""
  height = pixels.shape[-3]
  if not display_size or display_size <= height:
    return pixels
  scale = display_size // height
  return pixels.repeat(scale, axis=-3).repeat(scale, axis=-2)


def read_audio(path: str, sample_rate: int) -> np.ndarray:
  """Decodes `path` (wav/flac/ogg/mp3, any rate and channel count) to mono float32 `[N]` at `sample_rate`.

  Raises MediaError for a file that does not decode or holds no samples.
  """
  try:
    wave, _ = librosa.load(path, sr=sample_rate, mono=True)
  except Exception as e:  # librosa raises soundfile, audioread and ffmpeg errors of many types.
    raise MediaError(f"{path}: not a readable audio file ({e})") from e
  if wave.size == 0:
    raise MediaError(f"{path}: no audio samples")
  return np.clip(wave, -1.0, 1.0).astype(np.float32)


def write_audio(path: str, wave: np.ndarray, sample_rate: int) -> None:
  """Writes mono float `[N]` in [-1, 1] as 16-bit PCM (format from the extension: wav, flac, ogg)."""
  soundfile.write(path, np.clip(np.asarray(wave, np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")


def ffmpeg_exe() -> str:
  """Path of the ffmpeg binary that imageio-ffmpeg ships (or finds)."""
  return imageio_ffmpeg.get_ffmpeg_exe()


def read_audio_track(path: str, sample_rate: int) -> np.ndarray | None:
  """The audio track of `path` as `[N]` float32 mono at `sample_rate`, or None when it has none.

  A damaged track yields the samples that decode.
  """
  command = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", str(sample_rate)]
  result = subprocess.run([*command, "-f", "f32le", "-"], capture_output=True, check=False)
  if not result.stdout:
    return None
  if result.returncode or result.stderr:
    logging.warning("%s: audio decoded with errors: %s", path, result.stderr.decode(errors="replace")[-200:])
  wave = np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], np.float32)
  return np.clip(np.nan_to_num(wave), -1.0, 1.0)


def write_video_with_audio(
  path: str, frames: np.ndarray, fps: float, wave: np.ndarray | None, sample_rate: int, display_size=None
) -> None:
  """Writes an mp4 of `[T, H, W, 3]` uint8 frames with `[N]` float32 audio muxed in (AAC) when given."""
  if wave is None or not len(wave):
    write_video(path, frames, fps, display_size)
    return
  with tempfile.TemporaryDirectory() as tmp:
    silent, sound = os.path.join(tmp, "video.mp4"), os.path.join(tmp, "audio.wav")
    write_video(silent, frames, fps, display_size)
    write_audio(sound, wave, sample_rate)
    command = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", silent, "-i", sound]
    command += ["-c:v", "copy", "-c:a", "aac", path]  # the whole video, even where the audio is shorter
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode:
      raise MediaError(f"ffmpeg could not mux audio into {path}: {result.stderr.decode(errors='replace')}")
