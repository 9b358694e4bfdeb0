"""Local attention windows over a video token grid (MaxViT-style axial windows of the super-resolution stage).

A window `(wt, wh, ww)` tiles a `[B, T, H, W, C]` grid into `B * (T/wt) * (H/wh) * (W/ww)` blocks of
`wt * wh * ww` positions; attention runs inside each block. VideoPoet's SR blocks use three per layer, along
the vertical, horizontal and temporal axes (e.g. `(1, H, 4)`, `(1, 8, W)`, `(T, 8, 8)`), and windows of the
same layout at half the spatial size over the low-resolution tokens.
"""

from __future__ import annotations

import jax


def check_window(grid: tuple[int, int, int], window: tuple[int, int, int]) -> None:
  """Raises a ValueError unless every side of `window` divides the grid's `(T, H, W)`."""
  if len(window) != 3 or any(g % w for g, w in zip(grid, window, strict=True)):
    raise ValueError(f"window {tuple(window)} must divide the token grid {tuple(grid)} on every axis")


def partition(x: jax.Array, window: tuple[int, int, int]) -> jax.Array:
  """`[B, T, H, W, C]` -> `[B * nT * nH * nW, wt * wh * ww, C]` windows (row-major inside each window and
  over windows); `merge` inverts it exactly."""
  b, t, h, w, c = x.shape
  check_window((t, h, w), window)
  wt, wh, ww = window
  x = x.reshape(b, t // wt, wt, h // wh, wh, w // ww, ww, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(-1, wt * wh * ww, c)


def merge(windows: jax.Array, window: tuple[int, int, int], grid: tuple[int, int, int, int]) -> jax.Array:
  """`partition`'s `[B * nT * nH * nW, wt * wh * ww, C]` windows -> `[B, T, H, W, C]`, for `grid = (B, T, H,
  W)`."""
  b, t, h, w = grid
  check_window((t, h, w), window)
  wt, wh, ww = window
  c = windows.shape[-1]
  x = windows.reshape(b, t // wt, h // wh, w // ww, wt, wh, ww, c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, t, h, w, c)
