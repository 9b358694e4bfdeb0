"""Media file IO and clip formatting: video (decode, fps resampling, center crop + resize, mp4 writing)
and audio (decode + resample to mono from audio files or a video's own track, wav writing, muxing).

Frames are uint8 `[T, H, W, 3]` on the host; models take float `[B, T, H, W, 3]` in [-1, 1]. Audio is
float32 `[N]` mono in [-1, 1] at the caller's sample rate.

Everything is decoded and encoded in this process (PyAV, FFmpeg's libraries): no ffmpeg subprocess, so
the JAX process never forks. Errors are MediaError with one line that names the file and the reason.
"""

from __future__ import annotations

import dataclasses
import fractions
import os

import av
import librosa
import numpy as np
import soundfile
from PIL import Image

# File name endings read as videos (anything FFmpeg decodes) and as still images.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# What the writers produce, by file name ending.
VIDEO_OUTPUTS = (".mp4", ".gif")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_OUTPUTS = (".wav", ".flac", ".ogg")
# H.264 constant rate factor of the mp4s written (18: visually lossless for these clips).
MP4_CRF = 18


class MediaError(ValueError):
  """A file that cannot be read as the media it claims to be (its message: one line naming the file)."""


@dataclasses.dataclass
class DecodedVideo:
  frames: np.ndarray  # [T, H, W, 3] uint8
  fps: float
  # Set when only part of the file decoded: what was read, of how much, and why it stopped.
  note: str | None = None


def _reason(error: Exception) -> str:
  """FFmpeg's error in a few plain words (its strerror, without the error number and the path)."""
  return str(getattr(error, "strerror", None) or error).strip().rstrip(".").lower()


def _open(path: str, kind: str) -> av.container.InputContainer:
  """Opens `path` for decoding in this process; MediaError with one plain line when it cannot be."""
  check_readable(path)
  try:
    return av.open(path)
  except av.InvalidDataError as e:
    raise MediaError(f"{path}: not a {kind} file") from e
  except (av.FFmpegError, OSError) as e:
    raise MediaError(f"{path}: cannot open ({_reason(e)})") from e


def check_readable(path: str) -> None:
  """MediaError (one line) unless `path` is a non-empty file this process can read; no decoding."""
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file")
  if os.path.isdir(path):
    raise MediaError(f"{path}: a folder, not a file")
  if not os.access(path, os.R_OK):
    raise MediaError(f"{path}: not readable (permissions)")
  if os.path.getsize(path) == 0:
    raise MediaError(f"{path}: 0 bytes")


def check_writable(path: str, extensions: tuple[str, ...]) -> None:
  """MediaError (one line) unless `path` ends in one of `extensions` and its folder exists and is
  writable: what a program checks before any work whose result goes to `path`."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in extensions:
    accepted = ", ".join(extensions[:-1]) + f" or {extensions[-1]}" if len(extensions) > 1 else extensions[0]
    raise MediaError(f"cannot write {path}: {ext or 'no extension'}; use {accepted}")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise MediaError(f"cannot write {path}: the folder {folder} does not exist")
  if not os.access(folder, os.W_OK):
    raise MediaError(f"cannot write {path}: the folder {folder} is not writable")


def _video_stream(container, path: str):
  if not container.streams.video:
    raise MediaError(f"{path}: no video stream")
  return container.streams.video[0]


def read_video(path: str, max_side: int | None = None) -> DecodedVideo:
  """Decodes every readable frame of `path` (any container FFmpeg reads), in this process.

  A partly damaged or truncated file yields the frames that decode, with `note` saying how many of how
  many; a file with none, with no video stream, or whose frame size changes mid-stream raises MediaError.
  `max_side` downscales frames on the fly so that their longer side is at most that many pixels.
  """
  frames, note, size = [], None, None
  with _open(path, "video") as container:
    stream = _video_stream(container, path)
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    declared = int(stream.frames or 0)
    try:
      for frame in container.decode(stream):
        array = frame.to_ndarray(format="rgb24")
        if size is not None and (frame.width, frame.height) != size:
          raise MediaError(
            f"{path}: frame size changes mid-stream ({size[0]}x{size[1]} -> "
            f"{frame.width}x{frame.height} at frame {len(frames)})"
          )
        size = frame.width, frame.height
        frames.append(_shrink(array, max_side))
    except av.FFmpegError as e:
      if not frames:
        raise MediaError(f"{path}: cannot decode ({_reason(e)})") from e
      note = f"decoding stopped ({_reason(e)})"
  if not frames or fps <= 0:
    raise MediaError(f"{path}: no decodable video frames")
  if declared > len(frames):
    note = note or "the file ends early"
  if note:
    seconds = f"{len(frames) / fps:.2f} s" + (f" of {declared / fps:.2f} s" if declared > len(frames) else "")
    count = f"{len(frames)}" + (f" of {declared}" if declared > len(frames) else "")
    note = f"{path}: read {count} frames ({seconds}); {note}"
  return DecodedVideo(np.stack(frames), fps, note)


def _shrink(frame: np.ndarray, max_side: int | None) -> np.ndarray:
  if max_side and max(frame.shape[:2]) > max_side:
    scale = max_side / max(frame.shape[:2])
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    frame = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))
  return frame


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
  """Writes `[T, H, W, 3]` uint8 frames as an H.264 mp4 (or a GIF if `path` ends in .gif), in this process.

  `display_size` upscales with nearest neighbour for viewing small clips.
  """
  write_video_with_audio(path, frames, fps, None, 0, display_size)


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
  """Decodes `path` (wav/flac/ogg/mp3/m4a or a video's sound; any rate and channel count) to mono float32
  `[N]` in [-1, 1] at `sample_rate`, in this process.

  Raises MediaError for a file that does not decode or holds no samples.
  """
  try:
    soundfile.info(path)
  except (RuntimeError, OSError, soundfile.LibsndfileError):
    wave = read_audio_track(path, sample_rate, kind="audio")
    if wave is None:
      raise MediaError(f"{path}: no audio stream") from None
  else:
    wave, _ = librosa.load(path, sr=sample_rate, mono=True)
  if wave.size == 0:
    raise MediaError(f"{path}: no audio samples")
  return np.clip(wave, -1.0, 1.0).astype(np.float32)


def write_audio(path: str, wave: np.ndarray, sample_rate: int) -> None:
  """Writes mono float `[N]` in [-1, 1] as 16-bit PCM (format from the extension: wav, flac, ogg)."""
  soundfile.write(path, np.clip(np.asarray(wave, np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")


def read_audio_track(path: str, sample_rate: int, kind: str = "video") -> np.ndarray | None:
  """The first audio stream of `path` as `[N]` float32 mono at `sample_rate` (FFmpeg's resampler), or None
  when it has none. A damaged track yields the samples that decode."""
  with _open(path, kind) as container:
    if not container.streams.audio:
      return None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks = []
    try:
      for frame in container.decode(container.streams.audio[0]):
        chunks += [f.to_ndarray()[0] for f in resampler.resample(frame)]
    except av.FFmpegError:
      pass  # the samples before the damage
    chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
  wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
  return np.clip(np.nan_to_num(wave), -1.0, 1.0).astype(np.float32)


def write_video_with_audio(
  path: str, frames: np.ndarray, fps: float, wave: np.ndarray | None, sample_rate: int, display_size=None
) -> None:
  """Writes an mp4 of `[T, H, W, 3]` uint8 frames (H.264) with `[N]` float32 audio in [-1, 1] (AAC) when
  given, in this process; a .gif gets the frames only."""
  frames = upscale(frames, display_size)
  if path.endswith(".gif"):
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 / fps, loop=0)
    return
  height, width = frames.shape[1:3]
  if height % 2 or width % 2:
    raise MediaError(f"{path}: mp4 (yuv420p) needs even sides, got {width}x{height}")
  try:
    # faststart: the index before the data, so a page plays it while loading and a cut file still opens.
    with av.open(path, "w", options={"movflags": "faststart"}) as container:
      video = container.add_stream("libx264", rate=_rate(fps))
      video.width, video.height, video.pix_fmt = width, height, "yuv420p"
      video.options = {"crf": str(MP4_CRF)}
      audio = None
      if wave is not None and len(wave):
        audio = container.add_stream("aac", rate=sample_rate)
        audio.layout = "mono"
      for frame in frames:
        container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
      container.mux(video.encode())
      if audio is not None:
        sound = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)[None]
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound), format="fltp", layout="mono")
        chunk.sample_rate = sample_rate
        container.mux(audio.encode(chunk))
        container.mux(audio.encode())
  except av.FFmpegError as e:
    raise MediaError(f"{path}: cannot write ({_reason(e)})") from e


def _rate(fps: float):
  """`fps` as the exact fraction FFmpeg wants (8 -> 8, 29.97 -> 2997/100)."""
  return fractions.Fraction(fps).limit_denominator(1001)
