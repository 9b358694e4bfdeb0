import numpy as np
import pytest
from PIL import Image

from videopoet_jax.data import media, shapes_world, tokenizer_clips

from conftest import load_config


@pytest.fixture
def media_dirs(tmp_path):
  rng = np.random.default_rng(0)
  photos, videos = tmp_path / "photos", tmp_path / "videos"
  photos.mkdir()
  videos.mkdir()
  for i in range(3):
    smooth = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(smooth).resize((320, 240), Image.BICUBIC).save(photos / f"p{i}.jpg")
  Image.fromarray(smooth[:8, :8]).save(photos / "icon.png")  # too small: skipped
  clip = np.concatenate([shapes_world.render(s)["video"] for s in range(3)])
  media.write_video(str(videos / "train.mp4"), clip, 8)
  media.write_video(str(videos / "held_out.mp4"), clip[::-1], 8)
  return photos, videos


def _data(photos, videos):
  config = load_config("video_tokenizer", "demo")
  config.data.photo_dir, config.data.video_dir = str(photos), str(videos)
  config.data.holdout = ("held_out.mp4",)
  return config.data


def test_mixture_is_deterministic_and_in_range(media_dirs):
  data = _data(*media_dirs)
  clip_a, clip_b = tokenizer_clips.make_clip_fn(data, seed=3), tokenizer_clips.make_clip_fn(data, seed=3)
  for index in range(12):
    a, b = clip_a(index), clip_b(index)
    assert a.shape == (17, 64, 64, 3) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(clip_a(0), tokenizer_clips.make_clip_fn(data, seed=4)(0))


def test_holdout_and_small_photos_are_excluded(media_dirs):
  photos, videos = media_dirs
  names = [
    p.split("/")[-1]
    for p in tokenizer_clips.list_files(str(videos), media.VIDEO_EXTENSIONS, ("held_out.mp4",))
  ]
  assert names == ["train.mp4"]
  pans = tokenizer_clips.PhotoPans(tokenizer_clips.list_files(str(photos), media.IMAGE_EXTENSIONS))
  assert len(pans.images) == 3


def test_photo_pans_move(media_dirs):
  pans = tokenizer_clips.PhotoPans(tokenizer_clips.list_files(str(media_dirs[0]), media.IMAGE_EXTENSIONS))
  clip = pans.sample(np.random.default_rng(1), 17, 32)
  assert clip.shape == (17, 32, 32, 3) and clip.dtype == np.uint8
  assert np.abs(clip[0].astype(int) - clip[-1].astype(int)).mean() > 1.0


def test_missing_folders_are_reported(media_dirs):
  data = _data(*media_dirs)
  data.photo_dir = ""
  with pytest.raises(ValueError, match="photo_dir"):
    tokenizer_clips.make_clip_fn(data, seed=0)
  data = _data(*media_dirs)
  data.video_dir = ""
  with pytest.raises(ValueError, match="video_dir"):
    tokenizer_clips.make_clip_fn(data, seed=0)


def test_batches_resume_where_they_left_off(tiny_video_config):
  data, batch = tiny_video_config.data, 4
  straight = list(tokenizer_clips.training_batches(data, batch, seed=0, start_step=0, num_steps=4))
  resumed = list(tokenizer_clips.training_batches(data, batch, seed=0, start_step=2, num_steps=4))
  assert len(straight) == 4 and straight[0].shape == (batch, 5, 16, 16, 3)
  np.testing.assert_array_equal(np.stack(straight[2:]), np.stack(resumed))


def test_shapes_world_clip_is_deterministic_and_follows_its_caption():
  a, b = shapes_world.render(5), shapes_world.render(5)
  np.testing.assert_array_equal(a["video"], b["video"])
  np.testing.assert_array_equal(a["audio"], b["audio"])
  assert a["video"].shape == (17, 64, 64, 3) and a["audio"].shape == (34_000,)
  for seed in range(40):
    clip = shapes_world.render(seed)
    assert clip["caption"].startswith(f"a {clip['size']} {clip['color']} {clip['shape']}")
    ys, xs = np.nonzero(clip["mask"][0])
    first = np.array([xs.mean(), ys.mean()])
    ys, xs = np.nonzero(clip["mask"][shapes_world.FRAMES_BEFORE_BOUNCE])
    moved = np.array([xs.mean(), ys.mean()]) - first
    expected = np.array(shapes_world.DIRECTIONS[clip["direction"]])
    if clip["direction"] == "still":
      np.testing.assert_allclose(moved, 0.0)
    else:
      assert moved @ expected >= 2 * shapes_world.FRAMES_BEFORE_BOUNCE - 1, (seed, clip["caption"], moved)
