"""Headless Chromium from the system's packages, driven by Selenium (no browser download at run time):
the page's browser test and `scripts/app_screenshot.py` open the page with it.

Debian: `apt-get install chromium chromium-driver` (what `.ci/run` does where it can).
"""

import shutil


def find() -> tuple[str, str] | None:
  """`(chromium, chromedriver)` executables on PATH, or None when either is missing."""
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  driver = shutil.which("chromedriver")
  return (chromium, driver) if chromium and driver else None


def open_browser(width: int = 1200, height: int = 1600):
  """A headless Chrome WebDriver on the system's Chromium; RuntimeError when it is not installed."""
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  found = find()
  if found is None:
    raise RuntimeError(
      "no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    )
  options = webdriver.ChromeOptions()
  options.binary_location = found[0]
  for argument in (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    f"--window-size={width},{height}",
  ):
    options.add_argument(argument)
  return webdriver.Chrome(service=Service(found[1]), options=options)
