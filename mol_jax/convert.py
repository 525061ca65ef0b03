"""Import the official PyTorch MOL weights.

    python -m mol_jax.convert --weights official.pth --num_classes 5 \
        --neighbor_num 4 --out DIR

reads a `state_dict` (`.pth` saved with `torch.save`, read with
`torch.load(weights_only=True)`; or an `.npz` with the same keys) and writes
an Orbax checkpoint that `mol_jax.from_checkpoint(DIR)` and the trainer read.

Every official key is either mapped to exactly one parameter of the Flax model
or deliberately ignored (the FCC feed-forward branch the official forward
never calls, and BatchNorm's `num_batches_tracked`); anything else is an error
that names the key, so a model is never half-loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import zipfile
from typing import Callable, Mapping

import numpy as np
from flax import nnx

from mol_jax import checkpointing
from mol_jax import exit_codes
from mol_jax.model.flow_refine import FlowRefinement
from mol_jax.model.mol import abstract_model

PathTuple = tuple
# Official keys that exist in the weights but have no counterpart.
_IGNORED = (
    re.compile(r'^FCC_[12]\.ffn\.'),
    re.compile(r'\.num_batches_tracked$'),
)


class WeightsError(ValueError):
  """The weights file does not fit the MOL model."""


def _conv2d(w):  # [out, in, kh, kw] -> [kh, kw, in, out]
  return np.transpose(w, (2, 3, 1, 0))


def _conv_transpose(w):  # [in, out, kh, kw] -> [kh, kw, in, out]
  return np.transpose(w, (2, 3, 0, 1))


def _linear(w):  # [out, in] -> [in, out]
  return np.transpose(w)


def _linear_from_nchw(channels: int, *spatial: int) -> Callable:
  """Linear layer after a PyTorch flatten in (C, *spatial) order, re-ordered
  for our channels-last flatten in (*spatial, C) order."""

  def fn(w):
    out = w.shape[0]
    w = w.reshape((out, channels) + spatial)
    w = np.transpose(w, tuple(range(2, 2 + len(spatial))) + (1, 0))
    return w.reshape(-1, out)

  return fn


def _same(w):
  return w


def _rules() -> list[tuple[re.Pattern, Callable[[re.Match], PathTuple], Callable]]:
  """(official key pattern, target path, value transform)."""
  bn = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean', 'running_var': 'var'}
  bn_keys = '|'.join(bn)
  r = []

  def add(pattern, path, fn):
    r.append((re.compile('^' + pattern + '$'), path, fn))

  add(r'conv_stack\.conv_stack\.(\d)\.weight',
      lambda m: ('conv_stack', 'layers', int(m[1]), 'kernel'), _conv2d)
  add(r'conv_stack\.conv_stack\.(\d)\.bias',
      lambda m: ('conv_stack', 'layers', int(m[1]), 'bias'), _same)
  # FCC: PyTorch keeps kernels and position embeddings as [64, 1, 32, 1] or
  # [1, 64, 1, 32]; ours are [32, 64] (tap, channel).
  add(r'FCC_([12])\.meta_kernel_([12])_([HW])',
      lambda m: (f'fcc_{m[1]}', f'meta_kernel_{m[2]}_{m[3].lower()}'),
      lambda w: w.reshape(w.shape[0], -1).T)
  add(r'FCC_([12])\.meta_pe_([12])_([HW])',
      lambda m: (f'fcc_{m[1]}', f'pe_{m[2]}_{m[3].lower()}'),
      lambda w: w.reshape(w.shape[1], -1).T)
  add(r'FCC_([12])\.meta_([12])_([HW])_bias',
      lambda m: (f'fcc_{m[1]}', f'meta_{m[2]}_{m[3].lower()}_bias'), _same)
  add(rf'FCC_([12])\.pre_Norm_([12])\.({bn_keys})',
      lambda m: (f'fcc_{m[1]}', 'norm_a' if m[2] == '1' else 'norm_b', bn[m[3]]), _same)
  # CCC: Conv1d(1, 256, kernel_size=256) is a dense map over positions.
  add(r'CCC_([12])\.conv([12])\.weight',
      lambda m: (f'ccc_{m[1]}', f'w{m[2]}'), lambda w: w[:, 0, :].T)
  add(r'CCC_([12])\.conv([12])\.bias', lambda m: (f'ccc_{m[1]}', f'b{m[2]}'), _same)
  add(r'flownet\.(conv\w+)\.0\.weight', lambda m: ('flownet', m[1], 'conv', 'kernel'), _conv2d)
  add(rf'flownet\.(conv\w+)\.1\.({bn_keys})',
      lambda m: ('flownet', m[1], 'bn', bn[m[2]]), _same)
  add(r'flownet\.(deconv\d)\.0\.weight', lambda m: ('flownet', m[1], 'kernel'), _conv_transpose)
  add(r'flownet\.(upsampled_flow\d_to_\d)\.weight',
      lambda m: ('flownet', m[1], 'kernel'), _conv_transpose)
  add(r'flownet\.(predict_flow\d)\.weight', lambda m: ('flownet', m[1], 'kernel'), _conv2d)
  add(r'mer_3dcnn\.conv3d\.weight', lambda m: ('mer_3dcnn', 'conv3d', 'kernel'),
      lambda w: np.transpose(w, (2, 3, 4, 1, 0)))
  add(r'mer_3dcnn\.fc1\.weight', lambda m: ('mer_3dcnn', 'fc1', 'kernel'),
      _linear_from_nchw(32, 4, 4, 5))
  add(r'mer_3dcnn\.fc2\.weight', lambda m: ('mer_3dcnn', 'fc2', 'kernel'), _linear)
  add(r'ldm_predictor\.convldm\.weight',
      lambda m: ('ldm_predictor', 'convldm', 'kernel'), _conv2d)
  add(r'ldm_predictor\.fc1\.weight', lambda m: ('ldm_predictor', 'fc1', 'kernel'),
      _linear_from_nchw(32, 14, 14))
  add(r'ldm_predictor\.fc2\.weight', lambda m: ('ldm_predictor', 'fc2', 'kernel'), _linear)
  add(r'(mer_3dcnn|ldm_predictor)\.(\w+)\.bias', lambda m: (m[1], m[2], 'bias'), _same)
  return r


def _rule_for(key: str, rules=None) -> tuple[PathTuple, Callable] | None:
  """(Flax path, layout transform) of an official key; None if it is ignored.

  Raises:
    WeightsError: the key is not part of the official model.
  """
  if any(p.search(key) for p in _IGNORED):
    return None
  for pattern, path_fn, fn in rules or _rules():
    match = pattern.match(key)
    if match:
      return path_fn(match), fn
  raise WeightsError(
      f'unexpected key {key!r} in the weights: not part of the official MOL '
      'model (is this a MOL state_dict?)')


def official_to_flat(state_dict: Mapping[str, np.ndarray],
                     sources: dict | None = None) -> dict[PathTuple, np.ndarray]:
  """Maps official keys to Flax state paths; raises on an unknown key.

  `sources`, if given, receives path -> official key.
  """
  rules = _rules()
  flat = {}
  for key, value in state_dict.items():
    rule = _rule_for(key, rules)
    if rule is None:
      continue
    path, fn = rule
    if path in flat:
      raise WeightsError(f'key {key!r} maps to {path}, which another key already set')
    try:
      flat[path] = np.ascontiguousarray(fn(np.asarray(value, np.float32)))
    except ValueError as e:  # a layout transform meets a shape it cannot take
      raise WeightsError(f'key {key!r} has shape {np.shape(value)}, which is not the '
                         f'official layer\'s shape ({e})') from None
    if sources is not None:
      sources[path] = key
  return flat


def flat_to_official(flat: Mapping[PathTuple, np.ndarray],
                     official_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """The inverse of `official_to_flat`: Flax arrays in official keys and layouts.

  Every layout transform only moves numbers, so it is inverted by sending
  the official positions through it: the same rules serve both directions.
  Keys that `official_to_flat` ignores are left out; values keep their
  dtype (gradients, running statistics, float64 all pass).

  Args:
    flat: Flax path -> array, as `nnx.to_flat_state` paths.
    official_shapes: official key -> shape, e.g. from a state_dict manifest.
  """
  rules = _rules()
  out = {}
  for key, shape in official_shapes.items():
    rule = _rule_for(key, rules)
    if rule is None:
      continue
    path, fn = rule
    if path not in flat:
      raise WeightsError(f'no value for {key!r}: the model has no {".".join(map(str, path))}')
    size = int(np.prod(shape))
    positions = np.asarray(fn(np.arange(size).reshape(shape)))
    value = np.asarray(flat[path])
    if positions.shape != value.shape:
      raise WeightsError(f'{".".join(map(str, path))} has shape {value.shape}; {key!r} of '
                         f'shape {tuple(shape)} needs {positions.shape}')
    official = np.empty(size, value.dtype)
    official[positions.ravel()] = value.ravel()
    out[key] = official.reshape(shape)
  return out


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads an official state_dict from `.pth`/`.pt` (torch) or `.npz`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'weights file not found: {path}')
  if path.endswith('.npz'):
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      # np.load's own messages name neither the file nor what is wrong with it.
      raise WeightsError(f'{path}: not a readable .npz file ({type(e).__name__}: {e}); '
                         'write it again with numpy.savez') from None
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        f'reading {path} needs PyTorch: pip install "mol_jax[torch]", or save the '
        'state_dict as .npz (numpy.savez(path, **{k: v.numpy() for k, v in sd.items()}))'
    ) from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises several types for a bad file
    raise WeightsError(f'cannot read {path} as a PyTorch state_dict: {e}') from e
  if isinstance(obj, Mapping) and 'state_dict' in obj and isinstance(obj['state_dict'], Mapping):
    obj = obj['state_dict']
  if not isinstance(obj, Mapping):
    raise WeightsError(f'{path} holds a {type(obj).__name__}, not a state_dict')
  out = {}
  for key, value in obj.items():
    # Weights saved from nn.DataParallel carry a 'module.' prefix.
    key = key[len('module.'):] if key.startswith('module.') else key
    out[key] = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
  return out


def num_classes_in(state_dict: Mapping[str, np.ndarray]) -> int:
  if 'mer_3dcnn.fc2.weight' not in state_dict:
    raise WeightsError('missing key mer_3dcnn.fc2.weight: not a MOL state_dict')
  return int(np.shape(state_dict['mer_3dcnn.fc2.weight'])[0])


def import_official(state_dict: Mapping[str, np.ndarray], num_classes: int | None = None,
                    neighbor_num: int = 4, source: str = 'state_dict',
                    dropout_rate: float = 0.5, use_fcc: bool = True, use_ccc: bool = True,
                    refused: dict[str, str] | None = None, flow_refinement: bool = False):
  """Builds a `MOL` model holding the official weights.

  Args:
    state_dict: official key -> array.
    num_classes: expected class count; None takes it from the weights.
    neighbor_num: k of the CCC's kNN graph (not stored in the weights).
    source: name of the file, for error messages.
    dropout_rate: the MER head's dropout in training (official 0.5; not
      stored in the weights).
    use_fcc, use_ccc: False builds an ablation without those blocks; their
      official keys are then refused (not loaded), each with its reason in
      `refused` (official key -> reason) and in the log.
    flow_refinement: build the model with the flow refinement
      (`flow_refine.FlowRefinement`), which the official weights do not
      have: it keeps its initialisation (seed 0), whose zero last layer
      leaves the official flow unchanged.

  Raises:
    WeightsError: naming the key that is unknown, missing or of a wrong shape.
  """

  found = num_classes_in(state_dict)
  if num_classes is not None and found != num_classes:
    raise WeightsError(
        f'{source}: mer_3dcnn.fc2.weight has {found} classes but num_classes={num_classes}; '
        f'pass num_classes={found} or use weights trained for {num_classes} classes')
  # Every variable comes from the weights (checked below): an abstract model
  # avoids running and compiling the ~90 initialisers.
  model = abstract_model(found, neighbor_num, dropout_rate, use_fcc, use_ccc, flow_refinement)
  state = nnx.state(model, (nnx.Param, nnx.BatchStat))
  expected = {path: v.shape for path, v in nnx.to_flat_state(state)}
  sources = {}
  flat = official_to_flat(state_dict, sources)
  built = {'fcc_1': use_fcc, 'fcc_2': use_fcc, 'ccc_1': use_ccc, 'ccc_2': use_ccc}
  reasons = {}
  for path in list(flat):
    if not built.get(path[0], True):
      block = path[0][:3].upper()
      reasons[sources[path]] = (f'not loaded: the model is built with use_{block.lower()}='
                                f'False, an ablation without {block} blocks')
      del flat[path]
  if reasons:
    logging.warning('%s: %d official keys refused, e.g. %s: %s', source, len(reasons),
                    *next(iter(reasons.items())))
  if refused is not None:
    refused.update(reasons)
  missing = sorted(p for p in set(expected) - set(flat) if p[0] != 'flow_refine')
  if missing:
    raise WeightsError(f'{source}: no official key provides {len(missing)} parameter(s), '
                       f'first {".".join(map(str, missing[0]))}')
  for path, value in flat.items():
    if path not in expected:
      raise WeightsError(f'{source}: unexpected key {sources[path]!r} (it would set '
                         f'{".".join(map(str, path))}, which the model does not have)')
    if value.shape != tuple(expected[path]):
      raise WeightsError(
          f'{source}: key {sources[path]!r} gives {".".join(map(str, path))} the shape '
          f'{value.shape}, the model needs {tuple(expected[path])}')
  nested: dict = {}
  if flow_refinement:
    nested['flow_refine'] = nnx.state(FlowRefinement(rngs=nnx.Rngs(0)),
                                      (nnx.Param, nnx.BatchStat)).to_pure_dict()
  for path, value in flat.items():
    node = nested
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  state.replace_by_pure_dict(nested)
  nnx.update(model, state)
  return model


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m mol_jax.convert',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--weights', required=True, help='official state_dict (.pth or .npz)')
  parser.add_argument('--num_classes', type=int, default=None,
                      help='class count; checked against the weights (default: from the weights)')
  parser.add_argument('--neighbor_num', type=int, default=4, help='k of the CCC kNN graph')
  parser.add_argument('--out', required=True, help='output checkpoint directory')
  parser.add_argument('--class_names', default='',
                      help='comma-separated class names in label order, stored with the '
                      'checkpoint so that predictions name them (see docs/DATA.md for each '
                      "dataset's order)")
  parser.add_argument('--verbose', action='store_true', help='print the traceback of an error')
  args = parser.parse_args(argv)
  names = [c.strip() for c in args.class_names.split(',') if c.strip()]
  try:
    sd = load_state_dict(args.weights)
    model = import_official(sd, args.num_classes, args.neighbor_num, source=args.weights)
  except (WeightsError, FileNotFoundError) as e:
    return exit_codes.report(str(e), exit_codes.BAD_WEIGHTS, e, args.verbose)
  except ImportError as e:  # PyTorch for a .pth: a missing dependency, as in predict.
    return exit_codes.report(str(e), exit_codes.USAGE, e, args.verbose)
  if names and len(names) != model.num_classes:
    return exit_codes.report(f'--class_names gives {len(names)} names; {args.weights} holds '
                             f'{model.num_classes} classes', exit_codes.USAGE)
  metadata = {'class_names': names, 'source': os.path.basename(args.weights)} if names else None
  try:
    path = checkpointing.save_model(args.out, model, metadata=metadata)
  except FileExistsError as e:
    return exit_codes.report(str(e), exit_codes.USAGE, e, args.verbose)
  print(f'wrote MOL checkpoint ({model.num_classes} classes, k={model.neighbor_num}) to {path}'
        + ('' if names else '; no --class_names, so predictions will read class_0, class_1, ...'))
  return exit_codes.OK


if __name__ == '__main__':
  sys.exit(main())
