"""Serves the web page: `python -m videopoet_jax.app [--checkpoint=DIR] [--host=127.0.0.1] [--port=7860]`.

The model loads once and every task's first request is compiled before the page opens (warm-up), so no
user pays it. It listens on 127.0.0.1 unless --host says otherwise, and never makes a public share link.
Results are written under --out_dir (a fresh temporary folder by default).
"""

import tempfile
import time

from absl import app, flags

from videopoet_jax import cli_errors
from videopoet_jax.app import handlers, page
from videopoet_jax.decoding import cli, user_tasks
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 7860, "Port to listen on.")
flags.DEFINE_string("out_dir", None, "Where results are written (default: a new temporary folder).")
flags.DEFINE_list("warmup", ["text_to_video"], "Tasks compiled before the page opens ('' for none).")
FLAGS = flags.FLAGS


def warm_up(studio: handlers.Studio, tasks: list[str]) -> None:
  """Runs each of `tasks` once on the page's path (token-by-token), so its compile happens now."""
  silent = lambda total: page.Reporter(lambda *a, **k: None, total)  # noqa: E731
  for task in tasks:
    start = time.time()
    studio.run(task, handlers.Inputs(prompt="warm-up"), handlers.Controls(), silent)
    print(f"warm-up {task}: {time.time() - start:.1f} s")


def main(argv):
  del argv
  quiet_unless_verbose()
  try:
    cli_errors.check_at_least(port=1)
    unknown = [t for t in FLAGS.warmup if t not in user_tasks.NAMES]
    if unknown:
      raise ValueError(f"--warmup: unknown task {unknown[0]!r}; known: {', '.join(user_tasks.NAMES)}")
    studio = handlers.Studio(cli.load_generator(), FLAGS.out_dir or tempfile.mkdtemp(prefix="videopoet_app_"))
    warm_up(studio, [t for t in FLAGS.warmup if "prompt" in user_tasks.get(t).needs])
  except cli_errors.BAD_INPUT as e:
    cli_errors.exit_with(e)
  page.build(studio).queue(default_concurrency_limit=1).launch(
    server_name=FLAGS.host,
    server_port=FLAGS.port,
    share=False,
    max_file_size=f"{handlers.MAX_UPLOAD_MB}mb",
    allowed_paths=[studio.out_dir],
  )


if __name__ == "__main__":
  app.run(main)
