"""Structure signals for stylization: optical flow (OpenCV Farneback), edge maps, and their video form.

Flow is `[T, H, W, 2]` float32 (dx, dy) in pixels from frame t-1 to frame t (frame 0: zeros), the same
convention as shapes_world's ground truth. A structure video packs flow and a one-channel structure map
into `[T, H, W, 3]` uint8 so the video tokenizer can tokenize it like any clip (VideoPoet's stylization
conditions on tokenized depth/flow videos).
"""

from __future__ import annotations

import cv2
import numpy as np

# Farneback parameters for small (64-256 px) frames.
FARNEBACK = {
  "pyr_scale": 0.5,
  "levels": 3,
  "winsize": 9,
  "iterations": 3,
  "poly_n": 5,
  "poly_sigma": 1.1,
  "flags": 0,
}
# Canny hysteresis thresholds on 8-bit luminance.
CANNY_THRESHOLDS = (60, 150)
# A structure video stores flow as 128 + flow * FLOW_SCALE (so +-MAX_FLOW pixels per frame fit in uint8).
MAX_FLOW = 8.0
FLOW_SCALE = 127.0 / MAX_FLOW
FLOW_ZERO = 128


def grayscale(frames: np.ndarray) -> np.ndarray:
  """`[T, H, W, 3]` uint8 RGB -> `[T, H, W]` uint8 luminance."""
  return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def farneback_flow(frames: np.ndarray) -> np.ndarray:
  """`[T, H, W, 3]` uint8 -> `[T, H, W, 2]` float32 flow from each frame's predecessor (frame 0: zeros)."""
  gray = grayscale(frames)
  flow = np.zeros((*gray.shape, 2), np.float32)
  for t in range(1, len(gray)):
    flow[t] = cv2.calcOpticalFlowFarneback(gray[t - 1], gray[t], None, **FARNEBACK)
  return flow


def edge_map(frames: np.ndarray) -> np.ndarray:
  """`[T, H, W, 3]` uint8 -> `[T, H, W]` uint8 Canny edges (0 or 255)."""
  return np.stack([cv2.Canny(g, *CANNY_THRESHOLDS) for g in grayscale(frames)])


def structure_video(flow: np.ndarray, structure: np.ndarray) -> np.ndarray:
  """Packs `[T, H, W, 2]` flow and a `[T, H, W]` uint8 map into a `[T, H, W, 3]` uint8 video.

  Red and green hold dx and dy (FLOW_ZERO = no motion, +-MAX_FLOW pixels per frame at the ends), blue the
  structure map (edges, depth, or an object mask).
  """
  packed = np.clip(np.round(FLOW_ZERO + flow * FLOW_SCALE), 0, 255).astype(np.uint8)
  return np.concatenate([packed, structure[..., None].astype(np.uint8)], axis=-1)


def unpack_flow(video: np.ndarray) -> np.ndarray:
  """Inverse of structure_video's flow channels: `[T, H, W, 3]` uint8 -> `[T, H, W, 2]` float32."""
  return (video[..., :2].astype(np.float32) - FLOW_ZERO) / FLOW_SCALE
