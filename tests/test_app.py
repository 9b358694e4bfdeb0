"""The web page (videopoet_jax/app) over a tiny untrained bundle: its handlers without a browser, the API
with two clients at once, and the page itself in headless Chromium."""

import concurrent.futures
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from videopoet_jax import cli_errors
from videopoet_jax.app import browser, handlers, page
from videopoet_jax.data import media
from videopoet_jax.decoding import user_tasks
from videopoet_jax.decoding.generator import Generator

from conftest import REPO, make_tiny_bundle

FPS, FRAMES, SIZE = 8, 9, 16  # the tiny video tokenizer's clip (as in test_sample: shared compilations)
CAPTIONS = ["a small red circle moving left", "a big blue square moving up", "a green triangle moving right"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  return make_tiny_bundle(tmp_path_factory.mktemp("bundle"), CAPTIONS, FRAMES, SIZE, FPS)


@pytest.fixture(scope="module")
def studio(bundle, tmp_path_factory):
  gen = Generator.load(bundle["lm"], bundle["video_tokenizer"], bundle["audio_tokenizer"])
  return handlers.Studio(gen, str(tmp_path_factory.mktemp("results")))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
  root = tmp_path_factory.mktemp("uploads")
  frames = np.random.default_rng(0).integers(0, 255, (24, 30, 40, 3), np.uint8)
  media.write_video(str(root / "clip.mp4"), frames, 24)
  (root / "notes.txt").write_text("not a video")
  media.write_image(str(root / "first.png"), frames[0])
  return {"video": str(root / "clip.mp4"), "text": str(root / "notes.txt"), "image": str(root / "first.png")}


@pytest.fixture(scope="module")
def server(studio):
  """The page served on a free local port; yields its URL."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  demo = page.build(studio).queue(default_concurrency_limit=1)
  demo.launch(
    server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, allowed_paths=[studio.out_dir]
  )
  yield f"http://127.0.0.1:{port}/"
  demo.close()


def test_the_program_warms_up_then_serves_on_localhost(bundle, tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  command = [
    sys.executable,
    "-u",
    "-m",
    "videopoet_jax.app",
    f"--checkpoint={bundle['lm']}",
    f"--port={port}",
  ]
  command += [f"--out_dir={tmp_path}"]
  server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    lines = []
    for line in server.stdout:  # the warm-up is printed before the page opens
      lines.append(line)
      if "Running on local URL" in line:
        break
    assert any(line.startswith("warm-up text_to_video:") for line in lines), "".join(lines)[-2000:]
    assert f"http://127.0.0.1:{port}" in lines[-1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
      assert response.status == 200 and b"videopoet-jax" in response.read()
  finally:
    server.terminate()
    server.wait(timeout=30)


def test_a_bad_flag_is_one_line_before_the_model_loads(tmp_path):
  command = [sys.executable, "-m", "videopoet_jax.app", "--warmup=dance", "--checkpoint=/nonexistent"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("error: --warmup")


def test_a_result_is_written_with_the_command_that_reproduces_it(studio):
  silent = lambda total: page.Reporter(lambda *a, **k: None, total)  # noqa: E731
  given, controls = handlers.Inputs(prompt=CAPTIONS[0]), handlers.Controls(seed=5, temperature=0.9)
  result = studio.run("text_to_video", given, controls, silent)
  assert [p.rsplit(".", 1)[1] for p in result.downloads] == ["mp4", "gif"]
  frames = media.read_video(result.video).frames
  assert frames.shape == (FRAMES, SIZE, SIZE, 3)
  assert "--task=text_to_video" in result.command and "--seed=5" in result.command
  assert "--temperature=0.9" in result.command and "'--prompt=a small red circle" in result.command
  # What sample.py runs for that command (one jitted loop, no progress bar) gives the same clip.
  request, _ = studio.request("text_to_video", given, controls)
  (cli_frames, _), *_ = user_tasks.run(studio.gen, "text_to_video", request)
  media.write_video(studio.out_dir + "/cli.mp4", cli_frames, FPS)
  np.testing.assert_array_equal(media.read_video(studio.out_dir + "/cli.mp4").frames, frames)


@pytest.mark.parametrize(
  "task, given, message",
  [
    ("text_to_video", handlers.Inputs(prompt="  "), "the prompt is empty"),
    ("extend", handlers.Inputs(), "extend needs video"),
    ("extend", handlers.Inputs(video="{text}", seconds=1.0), "not a video file"),
    ("extend", handlers.Inputs(video="{video}", seconds=-1.0), "seconds must be > 0"),
    ("inpaint", handlers.Inputs(video="{video}", box="0,0,99,10"), "does not lie inside the 40x30"),
    ("inpaint", handlers.Inputs(video="{video}", box="1,2,3"), "four whole numbers"),
    ("bridge", handlers.Inputs(image="{image}"), r"needs last_image \(or video and next_video\)"),
  ],
)
def test_bad_input_is_one_line_and_writes_nothing(task, given, message, studio, uploads):
  given = handlers.Inputs(
    **{k: v.format(**uploads) if isinstance(v, str) else v for k, v in vars(given).items()}
  )
  before = sorted(os.listdir(studio.out_dir))
  with pytest.raises(cli_errors.BAD_INPUT, match=message) as error:
    studio.run(task, given, handlers.Controls())
  assert "\n" not in cli_errors.one_line(error.value)
  assert sorted(os.listdir(studio.out_dir)) == before


def test_a_bridge_and_a_backward_extension_from_the_page(studio, uploads):
  """The inputs of the new tabs reach the generator: a bridge between two images is one clip; a backward
  extension ends with the given clip's frames, and its command says which way it went."""
  bridge = studio.run(
    "bridge", handlers.Inputs(image=uploads["image"], last_image=uploads["image"]), handlers.Controls()
  )
  assert media.read_video(bridge.video).frames.shape == (FRAMES, SIZE, SIZE, 3)
  assert "--last_image=first.png" in bridge.command
  given = handlers.Inputs(video=uploads["video"], seconds=1.0, direction="backward")
  backward = studio.run("extend", given, handlers.Controls())
  assert "--direction=backward" in backward.command
  assert media.read_video(backward.video).frames.shape[0] == 8 + 8  # 1 s of 8 fps input, 8 frames before


def test_an_upload_over_the_size_limit_is_refused(studio, uploads, monkeypatch):
  monkeypatch.setattr(handlers, "MAX_UPLOAD_MB", 0.001)
  with pytest.raises(media.MediaError, match="the limit is"):
    studio.run("video_to_audio", handlers.Inputs(video=uploads["video"]), handlers.Controls())


def test_two_api_clients_at_once_get_their_own_results_in_order(server, studio):
  from gradio_client import Client

  def call(seed):
    client = Client(server, verbose=False)
    # Inputs by name; those left out take the page's defaults (the model's sampling settings).
    video, *_ = client.predict(prompt=CAPTIONS[1], seed=seed, api_name="/text_to_video")
    return time.time(), media.read_video(video["video"] if isinstance(video, dict) else video).frames

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    first = pool.submit(call, 1)
    time.sleep(0.5)
    second = pool.submit(call, 2)
    (t1, frames1), (t2, frames2) = first.result(), second.result()
  assert t1 <= t2  # one generation at a time, in the order asked
  for seed, frames in ((1, frames1), (2, frames2)):
    request, _ = studio.request("text_to_video", handlers.Inputs(prompt=CAPTIONS[1]), handlers.Controls(seed))
    (own, _), *_ = user_tasks.run(studio.gen, "text_to_video", request)
    path = f"{studio.out_dir}/own_{seed}.mp4"
    media.write_video(path, own, FPS, page.DISPLAY_SIZE)  # as the page writes it
    np.testing.assert_array_equal(frames, media.read_video(path).frames)


def test_a_cancelled_request_leaves_the_server_serving(server, studio):
  from gradio_client import Client

  client = Client(server, verbose=False)
  job = client.submit(prompt=CAPTIONS[0], seconds=5.0, seed=0, api_name="/text_to_video")  # 4 rounds
  time.sleep(1.0)
  job.cancel()
  video, *_ = client.predict(prompt=CAPTIONS[0], seed=4, api_name="/text_to_video")
  assert media.read_video(video).frames.shape[0] == FRAMES


def test_the_page_in_a_browser_makes_a_clip_and_shows_bad_input(server, tmp_path):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.common.keys import Keys
  from selenium.webdriver.support import expected_conditions as ec
  from selenium.webdriver.support.ui import WebDriverWait

  if browser.find() is None:
    pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
  driver = browser.open_browser()
  try:
    driver.get(server)
    wait = WebDriverWait(driver, 120)
    prompt = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#text_to_video-prompt textarea")))
    prompt.send_keys(CAPTIONS[2])
    driver.find_element(By.ID, "text_to_video-run").click()
    video = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#text_to_video-video video[src]")))
    path = tmp_path / "shown.mp4"
    urllib.request.urlretrieve(video.get_attribute("src"), path)
    shown = page.DISPLAY_SIZE  # written upscaled for the page
    assert media.read_video(str(path)).frames.shape == (FRAMES, shown, shown, 3)
    assert "python sample.py --task=text_to_video" in driver.find_element(By.ID, "text_to_video-info").text
    prompt.send_keys(Keys.CONTROL, "a")
    prompt.send_keys(Keys.DELETE)
    driver.find_element(By.ID, "text_to_video-run").click()
    try:
      wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "the prompt is empty"))
    finally:
      driver.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 0
  finally:
    driver.quit()
