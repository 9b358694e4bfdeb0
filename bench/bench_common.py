"""Shared by the bench scripts: emit a result as one JSON line, on stdout and into a file."""

import json


def emit(result: dict, path: str) -> None:
  line = json.dumps(result)
  with open(path, "w") as f:
    f.write(line + "\n")
  print(line, flush=True)
