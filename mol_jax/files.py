"""Files written whole or not at all: a reader never sees half of one."""

from __future__ import annotations

import json
import os
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
