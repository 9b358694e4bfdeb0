"""bench/video_reference.py: the codec reference counts payload only and respects the bit budget."""

import importlib.util
import os
import sys

import numpy as np
import pytest

from videopoet_jax.eval import video_metrics

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


@pytest.fixture(scope="module")
def reference():
  """The bench script as a module (it imports bench_common from its own folder, as when run)."""
  spec = importlib.util.spec_from_file_location("video_reference", os.path.join(BENCH, "video_reference.py"))
  module = importlib.util.module_from_spec(spec)
  sys.path.insert(0, BENCH)
  try:
    spec.loader.exec_module(module)
  finally:
    sys.path.remove(BENCH)
  return module


def test_hevc_payload_skips_parameter_sets_and_sei(reference):
  # Annex B NAL units, header byte 0 = type << 1: VPS (32), IDR slice (19), SEI prefix (39), slice (1).
  vps = b"\x00\x00\x00\x01" + b"\x40\x01" + b"\xaa" * 10
  idr = b"\x00\x00\x01" + b"\x26\x01" + b"\xbb" * 20
  sei = b"\x00\x00\x01" + b"\x4e\x01" + b"\xcc" * 5
  trail = b"\x00\x00\x01" + b"\x02\x01" + b"\xdd" * 30
  assert reference._hevc_payload_bytes(vps + idr + sei + trail) == 22 + 32


def test_av1_payload_skips_sequence_header_and_delimiter(reference):
  # OBU header: type << 3 | has_size (2) [| extension (4)]; sizes are leb128.
  delimiter = b"\x12\x00"
  sequence_header = b"\x0a\x05" + b"\x01" * 5
  frame = b"\x32\xc8\x01" + b"\x02" * 200  # size 200 = leb128 c8 01
  frame_with_extension = b"\x36\x00\x03" + b"\x03" * 3
  stream = delimiter + sequence_header + frame + frame_with_extension
  assert reference._av1_payload_bytes(stream) == 203 + 6


def test_hevc_at_budget_fits_and_a_larger_budget_looks_better(reference):
  t, y, x = np.meshgrid(np.arange(17), np.arange(64), np.arange(64), indexing="ij")
  phase = (x + 2 * t) / 9.0
  clip = np.stack([np.sin(phase), np.cos(y / 7.0 + t / 5.0), np.sin((x + y) / 11.0)], axis=-1)
  clip = ((clip + 1) * 127.5).astype(np.uint8)
  psnr_small, bits_small = reference.codec_at_budget(clip, 8, "hevc", 4480)
  psnr_large, bits_large = reference.codec_at_budget(clip, 8, "hevc", 4 * 4480)
  assert bits_small <= 4480 < bits_large <= 4 * 4480
  assert psnr_large > psnr_small + 1.0
  decoded, _ = reference.codec_round_trip(clip, 8, "hevc", 0)
  assert video_metrics.psnr(clip[None], decoded[None])[0] > 40.0  # finest quantizer: near lossless
