"""How the user-facing programs report bad input: one `error: ...` line and exit status 1.

sample.py, tokenizers/eval.py, tokenizers/encode.py, python -m videopoet_jax.eval (and choose_sampling) and
the preview program all exit through `exit_with`, so a bad flag or file reads the same everywhere.
"""

import sys

from absl import flags

# Characters of an error line; the whole message with --verbosity=1 or higher.
ERROR_LINE_CHARS = 200
# What a program catches as bad input (MediaError is a ValueError).
BAD_INPUT = (ValueError, FileNotFoundError)


def one_line(error: Exception | str) -> str:
  """`error: ...` on one line of at most ERROR_LINE_CHARS, whatever the library's message looked like
  (all of it with --verbosity >= 1)."""
  line = "error: " + " ".join(str(error).split())
  verbose = flags.FLAGS.is_parsed() and flags.FLAGS.verbosity >= 1
  if len(line) > ERROR_LINE_CHARS and not verbose:
    line = line[: ERROR_LINE_CHARS - 1] + "…"
  return line


def check_at_least(**minimums: int) -> None:
  """ValueError (one line) for the first integer flag below its minimum, e.g. `check_at_least(num=1)`;
  a flag left unset (None) is not checked."""
  for name, least in minimums.items():
    value = flags.FLAGS[name].value
    if value is not None and value < least:
      raise ValueError(f"--{name}={value}: must be >= {least}")


def exit_with(error: Exception | str) -> None:
  """Prints `one_line(error)` to stderr and exits with status 1."""
  sys.exit(one_line(error))
