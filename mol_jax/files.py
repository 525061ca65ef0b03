"""Files written whole or not at all, and output folders checked before any work."""

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
