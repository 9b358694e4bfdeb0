"""The clip_folder TFDS dataset on a folder the test writes (good video, undecodable file, image); preview."""

import json
import logging
import subprocess
import sys

import imageio.v2 as imageio
import librosa
import numpy as np
import pytest
import soundfile
from PIL import Image

from videopoet_jax.data import clip_folder, media, shapes_world, shapes_world_dataset, structure
from videopoet_jax.eval import video_metrics

from conftest import REPO

# Two clips of 17 frames at 8 fps, plus a few frames that do not fill a third.
SOURCE_FRAMES = 40
SIZE = 32


def _moving_clip():
  """Frames `[40, 64, 64, 3]` and audio of a shapes_world object moving right (with its hum)."""
  attrs = shapes_world.Attributes("square", "large", "blue", "right", "black")
  clips = [shapes_world.render(seed, attrs) for seed in (1, 2, 3)]
  video = np.concatenate([c["video"] for c in clips])[:SOURCE_FRAMES]
  audio = np.concatenate([c["audio"] for c in clips])[: SOURCE_FRAMES * shapes_world.SAMPLE_RATE // 8]
  return video, audio, attrs


def _damaged_frames():
  return np.concatenate([shapes_world.render(seed)["video"] for seed in range(4)])  # [68, 64, 64, 3]


def _write_damaged_avi(path):
  """An MJPEG avi of 68 frames cut off at 60% of its bytes: about 33 frames still decode."""
  writer = imageio.get_writer(
    str(path), fps=8, codec="mjpeg", quality=8, macro_block_size=1, pixelformat="yuvj420p"
  )
  for frame in _damaged_frames():
    writer.append_data(frame)
  writer.close()
  data = path.read_bytes()
  path.write_bytes(data[: len(data) * 6 // 10])


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
  folder = tmp_path_factory.mktemp("footage")
  video, audio, attrs = _moving_clip()
  media.write_video_with_audio(str(folder / "good.mp4"), video, 8, audio, shapes_world.SAMPLE_RATE)
  (folder / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
  _write_damaged_avi(folder / "damaged.avi")
  Image.fromarray(video[0]).resize((48, 40)).save(folder / "still.png")
  (folder / "still.txt").write_text("a blue square on black\n")
  (folder / "captions.jsonl").write_text(
    json.dumps({"file": "good.mp4", "caption": "a square moves right"}) + "\n"
  )
  return folder, video, attrs


@pytest.fixture(scope="module")
def built(footage, tmp_path_factory):
  folder = footage[0]
  builder = clip_folder.make_builder(str(folder), data_dir=str(tmp_path_factory.mktemp("tfds")), size=SIZE)
  logger = logging.getLogger()
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logger.addHandler(handler)
  try:
    builder.download_and_prepare()
  finally:
    logger.removeHandler(handler)
  source = builder.as_data_source()["train"]
  return builder, [source[i] for i in range(len(source))], [r.getMessage() for r in records]


def test_good_clips_kept_and_bad_file_reported(built):
  builder, examples, messages = built
  assert [(e["source"].decode(), int(e["clip_index"])) for e in examples] == [
    ("damaged.avi", 0),  # the frames that decode make one whole clip; the partial rest is dropped
    ("good.mp4", 0),
    ("good.mp4", 1),
    ("still.png", 0),
  ]
  summary = clip_folder.build_summary(builder)
  assert summary["files"] == 4 and summary["clips"] == 4
  assert list(summary["skipped"]) == ["broken.mp4"]
  assert any("broken.mp4" in m and "skipping" in m for m in messages)
  # A fresh builder reads the summary back from the prepared dataset.
  again = clip_folder.make_builder(
    builder.builder_config.source_dir, data_dir=builder.data_dir_root, size=SIZE
  )
  assert clip_folder.build_summary(again) == summary


def test_video_clip_features(built, footage):
  _, examples, _ = built
  _, video, _ = footage
  for clip_index, example in enumerate(examples[1:3]):
    assert example["video"].shape == (17, SIZE, SIZE, 3) and example["video"].dtype == np.uint8
    expected = media.crop_resize(video[clip_index * 17 : (clip_index + 1) * 17], SIZE)
    assert video_metrics.psnr(expected[None], example["video"][None])[0] > 25
    assert example["caption"].decode() == "a square moves right"
    assert example["start_s"] == pytest.approx(clip_index * 17 / 8)
    assert (
      example["audio"].shape == (34_000,) and example["audio"].dtype == np.float32 and example["has_audio"]
    )
    assert np.abs(example["audio"]).max() <= 1.0
    f0 = librosa.yin(example["audio"], fmin=200, fmax=1000, sr=shapes_world.SAMPLE_RATE, frame_length=1024)
    assert abs(np.median(f0) / shapes_world.PITCH_HZ["blue"] - 1) < 0.03
    flow, edges = example["flow"], example["structure"]
    assert flow.shape == (17, SIZE, SIZE, 2) and flow.dtype == np.float32 and (flow[0] == 0).all()
    assert edges.shape == (17, SIZE, SIZE) and edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 255}
    assert edges.any()


def test_flow_follows_the_motion(built):
  _, examples, _ = built
  flow = examples[1]["flow"][1:8]
  moving = np.linalg.norm(flow, axis=-1) > 0.5
  # The square moves right at 2-3 px/frame at 64 px, i.e. 1-1.5 px/frame at 32 px.
  dx, dy = flow[moving].mean(0)
  assert 0.7 < dx < 2.0 and abs(dy) < 0.3, (dx, dy)


def test_damaged_file_keeps_the_frames_that_decode(built):
  _, examples, _ = built
  damaged = examples[0]
  assert damaged["video"].shape == (17, SIZE, SIZE, 3) and not damaged["has_audio"]
  expected = media.crop_resize(_damaged_frames()[:17], SIZE)
  assert video_metrics.psnr(expected[None], damaged["video"][None])[0] > 25


def test_image_becomes_one_frame_clip(built):
  _, examples, _ = built
  image = examples[3]
  assert image["is_image"] and image["video"].shape == (1, SIZE, SIZE, 3)
  assert image["audio"].shape == (0,) and not image["has_audio"]
  assert image["flow"].shape == (1, SIZE, SIZE, 2) and image["caption"].decode() == "a blue square on black"


def test_farneback_matches_ground_truth_flow():
  clip = shapes_world.render(3)  # moves right at 3 px/frame
  assert clip["direction"] == "right"
  flow = structure.farneback_flow(clip["video"])
  inside = clip["mask"][1:9]
  np.testing.assert_allclose(flow[1:9][inside].mean(0), clip["flow"][1:9][inside].mean(0), atol=0.05)
  packed = structure.structure_video(clip["flow"], clip["mask"].astype(np.uint8) * 255)
  np.testing.assert_allclose(structure.unpack_flow(packed), clip["flow"], atol=0.5 / structure.FLOW_SCALE)


def test_missing_source_dir_fails(tmp_path):
  with pytest.raises(ValueError, match="not a folder"):
    clip_folder.make_builder(str(tmp_path / "nope"), data_dir=str(tmp_path)).download_and_prepare()


def _preview(*args):
  return subprocess.run(
    [sys.executable, "-m", "videopoet_jax.data.preview", *args], capture_output=True, text=True, cwd=REPO
  )


def test_preview_writes_media_and_jsonl(tmp_path):
  out = tmp_path / "preview"
  result = _preview(
    "--dataset=shapes_world:num_train=3,num_validation=1,num_test=1",
    "--split=validation",
    "--num=5",
    f"--out={out}",
    f"--data_dir={tmp_path / 'tfds'}",
    "--display_size=64",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
  assert len(lines) == 1 and lines[0]["seed"] == shapes_world_dataset.SPLIT_SEEDS["validation"]
  clip = shapes_world.render(lines[0]["seed"])
  assert lines[0]["caption"] == clip["caption"] and lines[0]["objects"][0]["color"] == clip["color"]
  decoded = media.read_video(str(out / "0000.mp4"))
  assert decoded.frames.shape == (17, 64, 64, 3) and decoded.fps == pytest.approx(8)
  assert video_metrics.psnr(clip["video"][None], decoded.frames[None])[0] > 30
  wave, rate = soundfile.read(out / "0000.wav", dtype="float32")
  assert rate == shapes_world.SAMPLE_RATE and np.abs(wave - clip["audio"]).max() < 1e-3
  muxed = media.read_audio_track(str(out / "0000.mp4"), shapes_world.SAMPLE_RATE)
  assert muxed is not None and abs(len(muxed) - len(wave)) < 0.1 * len(wave)


def test_preview_bad_dataset_is_one_line_error(tmp_path):
  result = _preview("--dataset=nope", f"--out={tmp_path}")
  assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith(
    "error: unknown dataset"
  )


def test_precomputed_structure_videos_and_validation_files(footage, tmp_path):
  folder = footage[0]
  guides = tmp_path / "depth"
  guides.mkdir()
  # A "depth" video for good.mp4 only: a horizontal ramp that brightens over time.
  ramp = (
    np.linspace(0, 200, 64, dtype=np.float32)[None, None, :, None] + 2 * np.arange(40)[:, None, None, None]
  )
  media.write_video(str(guides / "good.mp4"), np.broadcast_to(ramp, (40, 64, 64, 3)).astype(np.uint8), 8)
  builder = clip_folder.make_builder(
    str(folder),
    data_dir=str(tmp_path / "tfds"),
    size=SIZE,
    structure_dir=str(guides),
    validation_files=("still.png",),
  )
  builder.download_and_prepare()
  sources = builder.as_data_source()
  train = [sources["train"][i] for i in range(len(sources["train"]))]
  assert [e["source"].decode() for e in train] == ["good.mp4", "good.mp4"]
  assert [e["source"].decode() for e in sources["validation"]] == ["still.png"]
  assert "damaged.avi" in clip_folder.build_summary(builder)["skipped"]  # no structure video for it
  for clip_index, example in enumerate(train):
    frames = np.broadcast_to(ramp, (40, 64, 64, 3)).astype(np.uint8)[clip_index * 17 : (clip_index + 1) * 17]
    expected = structure.grayscale(media.crop_resize(frames, SIZE)).astype(np.float32)
    assert np.abs(example["structure"].astype(np.float32) - expected).mean() < 4.0


def _texture(seed: int, side: int = 160) -> np.ndarray:
  """A smooth colourful `[side, side, 3]` uint8 picture (blurred noise, full range)."""
  from scipy import ndimage

  noise = np.random.default_rng(seed).random((side, side, 3))
  smooth = ndimage.gaussian_filter(noise, sigma=(6, 6, 0))
  smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
  return (40 + 200 * smooth).astype(np.uint8)


def _pan(seed: int, frames: int, step: int = 2) -> np.ndarray:
  """`[frames, 64, 64, 3]`: a camera panning right over `_texture(seed)`, `step` pixels a frame."""
  picture = _texture(seed)
  return np.stack([picture[40:104, 10 + step * i : 74 + step * i] for i in range(frames)])


def _edited_footage(folder):
  """Writes videos with a hard cut, a fade, a copy, a still, a black and a letterboxed one into `folder`."""
  fade = np.linspace(1, 0, 6)[:, None, None, None]
  cut_and_fade = np.concatenate([
    _pan(1, 24),  # shot 1, then a hard cut
    _pan(2, 24),  # shot 2, then a fade to black, black, a fade in
    (_pan(2, 30)[24:] * fade).astype(np.uint8),
    np.zeros((4, 64, 64, 3), np.uint8),
    (_pan(3, 6) * fade[::-1]).astype(np.uint8),
    _pan(3, 30)[6:],  # shot 3
  ])  # fmt: skip
  bars = np.zeros((24, 64, 64, 3), np.uint8)
  bars[:, 8:56] = _pan(4, 24)[:, 8:56]
  videos = {
    "cuts.mp4": cut_and_fade,
    "pan.mp4": _pan(5, 24),
    "copy.mp4": _pan(5, 24),  # the same footage again
    "static.mp4": np.repeat(_pan(6, 1), 24, axis=0),
    "black.mp4": np.zeros((24, 64, 64, 3), np.uint8),
    "letterboxed.mp4": bars,
  }
  folder.mkdir()
  for name, frames in videos.items():
    media.write_video(str(folder / name), frames, 8)
  return folder


def test_shots_and_filters_on_constructed_footage(tmp_path):
  folder = _edited_footage(tmp_path / "footage")
  builder = clip_folder.make_builder(str(folder), data_dir=str(tmp_path / "tfds"), size=SIZE)
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  kept = [(source[i]["source"].decode(), float(source[i]["start_s"])) for i in range(len(source))]
  summary = clip_folder.build_summary(builder)
  # cuts.mp4: the cut after 3 s and the fade after 6 s split it; the black frames belong to no shot.
  shots = summary["shots"]["cuts.mp4"]
  starts, stops = [round(a * 8) for a, _ in shots], [round(b * 8) for _, b in shots]
  assert len(shots) == 3 and starts[:2] == [0, 24] and stops[0] == 24
  assert 48 <= stops[1] <= 54 and 58 <= starts[2] <= 64  # the fade's dark middle is in no shot
  clip_seconds = 17 / 8
  for name, start in kept:
    assert any(a - 1e-6 <= start and start + clip_seconds <= b + 1e-6 for a, b in summary["shots"][name])
  # Files are read in name order: copy.mp4 is kept, pan.mp4 (the same footage) is the duplicate.
  assert sorted(kept) == [("copy.mp4", 0.0), ("cuts.mp4", 0.0), ("cuts.mp4", 3.0), ("cuts.mp4", shots[2][0]),
                          ("letterboxed.mp4", 0.0)]  # fmt: skip
  assert summary["filtered"] == {
    "too_short_shot": 0, "blank": 1, "dark": 0, "washed_out": 0, "static": 1, "duplicate": 1,
  }  # fmt: skip
  assert summary["letterboxed"] == {"letterboxed.mp4": [0, 8, 64, 56]}


def _examples(builder) -> dict[str, list[dict]]:
  out = {}
  for split, source in builder.as_data_source().items():
    out[split] = [source[i] for i in range(len(source))]
  return out


def test_beam_build_equals_the_single_process_build(tmp_path):
  """DirectRunner with 2 worker processes: the same examples, in the same order, and the same summary; the
  duplicate filter spans files and splits (pan.mp4 in validation is a copy of copy.mp4 in train)."""
  from videopoet_jax.data import datasets

  folder = _edited_footage(tmp_path / "footage")
  (folder / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(5_000))
  options = dict(size=SIZE, validation_files=("cuts.mp4", "pan.mp4"))
  single = clip_folder.make_builder(str(folder), data_dir=str(tmp_path / "single"), **options)
  datasets.prepare(single)
  name = f"clip_folder:source_dir={folder},size={SIZE},validation_files=cuts.mp4+pan.mp4"
  result = _build(
    f"--dataset={name}",
    f"--data_dir={tmp_path / 'beam'}",
    "--beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  printed = json.loads(result.stdout.strip().splitlines()[-1])
  beam = clip_folder.make_builder(str(folder), data_dir=str(tmp_path / "beam"), **options)
  datasets.prepare(beam)  # already built: loads it
  expected, got = _examples(single), _examples(beam)
  assert {k: len(v) for k, v in expected.items()} == {"train": 2, "validation": 3}  # copy + letterboxed, cuts
  assert sorted(got) == sorted(expected)
  for split in expected:
    assert len(got[split]) == len(expected[split])
    for a, b in zip(got[split], expected[split], strict=True):
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split} {key}")
  summary = clip_folder.build_summary(single)
  assert clip_folder.build_summary(beam) == printed["summary"] == summary
  assert printed["splits"] == {"train": 2, "validation": 3}
  assert summary["filtered"]["duplicate"] == 1 and "broken.mp4" in summary["skipped"]
  assert not list((tmp_path / "beam").rglob(clip_folder.ClipFolder.BEAM_SUMMARY))


def _build(*args):
  return subprocess.run(
    [sys.executable, "-m", "videopoet_jax.data.build", *args], capture_output=True, text=True, cwd=REPO
  )


def test_build_of_a_missing_folder_is_one_line_error(tmp_path):
  result = _build(f"--dataset=clip_folder:source_dir={tmp_path / 'nope'}", f"--data_dir={tmp_path}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith("error: clip_folder: source_dir")
