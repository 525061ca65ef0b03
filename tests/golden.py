"""The official model's golden outputs (`tests/golden/`, described by its
README.md) and the rule that rebuilds its exact state_dict."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
# The files travel with the repository, so that the parity tests run in every
# clone; MOL_GOLDEN_DIR points the tests at another set of the same kind.
REPO_GOLDEN_DIR = os.path.join(_HERE, 'golden')
GOLDEN_DIR = os.environ.get('MOL_GOLDEN_DIR', REPO_GOLDEN_DIR)
GOLDEN_FILE = os.path.join(GOLDEN_DIR, 'mol_golden_c3_k4.npz')
MANIFEST_FILE = os.path.join(GOLDEN_DIR, 'official_state_dict_manifest_c3.json')


def available() -> bool:
  return os.path.isfile(GOLDEN_FILE) and os.path.isfile(MANIFEST_FILE)


def require(*paths: str) -> None:
  """Fails (never skips) when a golden file is missing: they are part of the
  repository, so a missing one is a broken checkout or a wrong MOL_GOLDEN_DIR."""
  for path in paths or (GOLDEN_FILE, MANIFEST_FILE):
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'{path}: golden file missing; restore tests/golden/ from the repository '
          'or point MOL_GOLDEN_DIR at a folder that holds it')


def golden_param(key: str, shape) -> np.ndarray:
  rng = np.random.default_rng(zlib.crc32(key.encode()))
  leaf = key.rsplit('.', 1)[-1]
  if leaf == 'num_batches_tracked':
    return np.zeros(shape, np.int64)
  if leaf == 'running_var' or (leaf == 'weight' and len(shape) == 1):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if len(shape) <= 1:
    return rng.normal(0.0, 0.1, shape).astype(np.float32)
  fan_in = int(np.prod(shape[1:]))
  return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def manifest(num_classes: int = 3) -> list[tuple[str, tuple[int, ...]]]:
  with open(MANIFEST_FILE) as f:
    entries = json.load(f)
  out = []
  for key, shape, _ in entries:
    shape = tuple(shape)
    if key == 'mer_3dcnn.fc2.weight':
      shape = (num_classes,) + shape[1:]
    elif key == 'mer_3dcnn.fc2.bias':
      shape = (num_classes,)
    out.append((key, shape))
  return out


def official_state_dict(num_classes: int = 3) -> dict[str, np.ndarray]:
  """The exact official state_dict behind the golden outputs (for 3 classes)."""
  return {key: golden_param(key, shape) for key, shape in manifest(num_classes)}


def outputs() -> dict[str, np.ndarray]:
  with np.load(GOLDEN_FILE) as data:
    return {k: data[k] for k in data.files}


def readme() -> str:
  """The repository's golden README: what each file holds and how it was made."""
  with open(os.path.join(REPO_GOLDEN_DIR, 'README.md')) as f:
    return f.read()


def relative_error(actual, expected) -> float:
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))
