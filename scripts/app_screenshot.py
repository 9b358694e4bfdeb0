"""Screenshot of the web page with a generated result (the README's picture): serves the page over the
bundled model, runs text_to_video in headless Chromium and saves the page.

  python scripts/app_screenshot.py [--prompt=...] [--out=docs/app.png]
"""

import socket
import tempfile

from absl import app, flags

from videopoet_jax.app import browser, handlers, page
from videopoet_jax.decoding.generator import Generator

flags.DEFINE_string("prompt", "a large red square moves right on a white background", "The prompt typed.")
flags.DEFINE_string("out", "docs/app.png", "Where the screenshot goes.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions as ec
  from selenium.webdriver.support.ui import WebDriverWait

  studio = handlers.Studio(Generator.load(), tempfile.mkdtemp(prefix="videopoet_app_"))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  demo = page.build(studio).queue(default_concurrency_limit=1)
  demo.launch(server_port=port, prevent_thread_lock=True, allowed_paths=[studio.out_dir])
  driver = browser.open_browser(1200, 1250)
  try:
    driver.get(f"http://127.0.0.1:{port}/")
    wait = WebDriverWait(driver, 600)
    prompt = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#text_to_video-prompt textarea")))
    prompt.send_keys(FLAGS.prompt)
    driver.find_element(By.ID, "text_to_video-run").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#text_to_video-video video[src]")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "text_to_video-info"), "sample.py"))
    driver.save_screenshot(FLAGS.out)
    print(f"wrote {FLAGS.out}")
  finally:
    driver.quit()
    demo.close()


if __name__ == "__main__":
  app.run(main)
