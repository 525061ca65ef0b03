"""Files written whole or not at all, output folders checked before any work,
and where config files import from."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_text(path: str, text: str) -> str:
  """Writes `text` to `path` through a temporary file renamed over it; returns `path`."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)
  return path


def write_json(path: str, value: Any, indent: int = 2) -> str:
  """`value` as JSON at `path`, atomically (`write_text`)."""
  return write_text(path, json.dumps(value, indent=indent))


def folder_problem(path: str, flag: str) -> str | None:
  """Why the output folder `path` (given as `flag`) cannot be written, or None.

  Checked before any work: an existing file, a path under a file, or a
  folder (the nearest existing one when `path` is not there yet) where a
  file cannot be created. Writability is tried, not read off the mode bits:
  root writes through them. Nothing is left behind.
  """
  if os.path.exists(path) and not os.path.isdir(path):
    return f'{path}: {flag} is a file, not a folder; name a folder'
  folder = os.path.abspath(path)
  while not os.path.exists(folder):
    folder = os.path.dirname(folder)
  if not os.path.isdir(folder):
    return f'{path}: {flag} cannot be created: {folder} is a file, not a folder'
  try:
    fd, probe = tempfile.mkstemp(prefix='.mol_jax_write_probe_', dir=folder)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    return f'{path}: {flag} cannot be written ({e.strerror or e}); choose a writable folder'
  return None


def config_path(argv: list[str]) -> str | None:
  """The `--config` file named in `argv` (without a `:override` suffix)."""
  for i, arg in enumerate(argv):
    # absl takes `--config=X`, `-config=X` and `--config X`.
    name, has_value, value = arg.lstrip('-').partition('=')
    if not arg.startswith('-') or name != 'config':
      continue
    path = value if has_value else (argv[i + 1] if i + 1 < len(argv) else '')
    if path:
      return path.split(':', 1)[0]
  return None


def config_root(argv: list[str]) -> str | None:
  """The folder that holds the `--config` file's folder.

  Config files import their base as `from configs import default`; with this
  folder on `sys.path` they load from any working directory, not only from
  the repository root.
  """
  path = config_path(argv)
  return os.path.dirname(os.path.dirname(os.path.abspath(path))) if path else None
