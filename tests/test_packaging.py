import ast
import subprocess
import sys

from conftest import REPO


def test_top_level_tokenizers_folder_is_not_a_package():
  assert not (REPO / "tokenizers" / "__init__.py").exists()
  source = (REPO / "setup.py").read_text()
  assert 'include=["videopoet_jax", "videopoet_jax.*"]' in source
  ast.parse(source)


def test_import_tokenizers_does_not_reach_this_repo(tmp_path):
  # Run from elsewhere, as a user would: only the installed distribution is on the path.
  code = (
    "import importlib.util, sys\n"
    "spec = importlib.util.find_spec('tokenizers')\n"
    "locations = ';'.join(spec.submodule_search_locations or []) if spec else ''\n"
    "print('' if spec is None else (spec.origin or '') + '|' + locations)"
  )
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
  assert str(REPO) not in out.stdout, out.stdout
