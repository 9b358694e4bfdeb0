"""Installs the videopoet_jax library.

The top-level `tokenizers/` folder holds programs, not a package: it is deliberately not
installed, so that `import tokenizers` keeps meaning Hugging Face's library.
"""

import setuptools

setuptools.setup(
  name="videopoet-jax",
  version="0.1.0",
  description="VideoPoet in JAX: MAGVIT-v2 / SoundStream tokenizers and a multimodal autoregressive LM.",
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  python_requires=">=3.10",
  packages=setuptools.find_packages(include=["videopoet_jax", "videopoet_jax.*"]),
  package_data={"videopoet_jax": ["assets/**/*"]},
  include_package_data=True,
  install_requires=[
    "jax>=0.6",
    "flax>=0.11",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "numpy>=1.26",
    "sentencepiece>=0.2",
    "tensorflow-datasets>=4.9.7",
    "grain>=0.2.10",
    "librosa>=0.10.2",
    "scipy>=1.11",
    "soundfile>=0.12",
    "av>=12",
    "imageio>=2.34",
    "imageio-ffmpeg>=0.5",
    "opencv-python-headless>=4.8",
    # Shot detection (clip_folder); 0.7 would pull in the GUI opencv-python beside the headless one.
    "scenedetect[opencv-headless]>=0.6.4,<0.7",
    "tensorboardX>=2.6",
    "absl-py>=2.1",
    "tqdm>=4.66",
  ],
  extras_require={
    # The web page (python -m videopoet_jax.app) and its API client.
    "app": ["gradio>=5", "gradio_client>=1"],
    # Building clip_folder on a Beam runner (python -m videopoet_jax.data.build --beam_pipeline_options=...).
    "beam": ["apache-beam>=2.60"],
    # The tests drive the page too: in headless Chromium (the system's package) through Selenium; they build
    # clip_folder on Beam's DirectRunner.
    "test": [
      "pytest>=8",
      "ruff>=0.6",
      "gradio>=5",
      "gradio_client>=1",
      "selenium>=4.20",
      "apache-beam>=2.60",
    ],
    # Only for bench/decode.py's comparison with Hugging Face GPT-2 (B3); never needed to run or test.
    "bench": ["torch>=2.2", "transformers>=4.40"],
  },
)
