"""Two training steps of the project equal two training steps of the official code.

The reference (`tests/golden/official_train_step_c3_k4_b2.npz`, or the file
named by MOL_TRAIN_GOLDEN; `tests/golden/README.md` describes it) holds two
float64 steps of the official training loop from the golden-rule weights on
one fixed batch. Here the same weights go through the project's own import
(`convert.import_official`), the training state is built by
`train.state_from_model`, and the step is the jitted `Steps.train` that
training runs, with the file's loss weights and AdamW settings, dropout off
and all 7 flow pairs. Gradients and outputs come from `train.loss_and_grads`,
the function inside that step. Every quantity is mapped back to the official
keys and layouts by `convert.flat_to_official` (the converter's own map) and
compared within the file's float32 tolerances. A failure lists every
quantity out of tolerance, grouped by module.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mol_jax import clip_format, convert, sharding, train
from tests import golden

TRAIN_GOLDEN_NAME = 'official_train_step_c3_k4_b2.npz'
TRAIN_GOLDEN_FILE = os.environ.get(
    'MOL_TRAIN_GOLDEN', os.path.join(golden.GOLDEN_DIR, TRAIN_GOLDEN_NAME))
# The repository's own file: the official code's defaults (its README), which
# configs/default.py claims as its recipe, whichever file the steps compare with.
DEFAULTS_GOLDEN_FILE = os.path.join(golden.REPO_GOLDEN_DIR, TRAIN_GOLDEN_NAME)
# The report's groups: official key prefix -> module.
GROUPS = (('conv_stack.', 'conv stack'), ('FCC_', 'FCC'), ('CCC_', 'CCC'),
          ('flownet.', 'flow head'), ('ldm_predictor.', 'landmark head'),
          ('mer_3dcnn.', 'MER head'))


def group_of(key: str) -> str:
  if key.endswith(('running_mean', 'running_var', 'num_batches_tracked')):
    return 'BatchNorm statistics'
  return next(name for prefix, name in GROUPS if key.startswith(prefix))


def relative(actual, expected) -> float:
  return golden.relative_error(actual, expected)


@dataclasses.dataclass
class Check:
  group: str
  quantity: str
  error: float
  tolerance: float

  @property
  def ok(self) -> bool:
    return bool(self.error <= self.tolerance)  # NaN fails


def report(checks: list[Check], only_failures: bool) -> str:
  """Worst error per group and quantity kind; with `only_failures` the
  failing quantities themselves, worst first."""
  lines = []
  by_group = collections.defaultdict(list)
  for c in checks:
    if c.ok and only_failures:
      continue
    by_group[c.group].append(c)
  for group, group_checks in by_group.items():
    if only_failures:
      lines.append(f'{group}: {len(group_checks)} quantities out of tolerance')
      for c in sorted(group_checks, key=lambda c: -c.error / max(c.tolerance, 1e-300))[:12]:
        lines.append(f'  {c.quantity}: {c.error:.3g} > {c.tolerance:.3g}')
    else:
      kinds = collections.defaultdict(list)
      for c in group_checks:
        kinds[c.quantity.split(' ')[0]].append(c)
      for kind, kind_checks in kinds.items():
        worst = max(kind_checks, key=lambda c: c.error / max(c.tolerance, 1e-300))
        lines.append(f'{group:22s} {kind:28s} worst {worst.error:9.3g} (tolerance '
                     f'{worst.tolerance:.3g}, {worst.quantity.partition(" ")[2]})')
  return '\n'.join(lines)


def parity_config(ref: dict):
  """The default config with the file's settings: loss weights, AdamW,
  dropout off, every flow pair supervised."""
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  assert float(ref['mer_weight']) == 1.0, 'the project weighs the class loss by 1'
  assert not bool(ref['adam_amsgrad']), 'the project uses AdamW without amsgrad'
  config.loss.of_weight = float(ref['of_weight'])
  config.loss.ldm_weight = float(ref['ldm_weight'])
  config.loss.flow_pairs_per_step = clip_format.NUM_PAIRS
  config.optimizer.learning_rate = float(ref['lr'])
  config.optimizer.weight_decay = float(ref['weight_decay'])
  config.optimizer.b1 = float(ref['adam_beta1'])
  config.optimizer.b2 = float(ref['adam_beta2'])
  config.optimizer.eps = float(ref['adam_eps'])
  config.optimizer.schedule = 'constant'
  config.optimizer.warmup_steps = 0
  config.model.dropout_rate = 0.0
  config.model.neighbor_num = int(ref['neighbor_num'])
  config.model.compute_dtype = 'float32'
  config.seed = int(ref['seed'])
  config.mesh.num_devices = 1
  return config


def official_batch(ref: dict) -> dict[str, np.ndarray]:
  """The file's batch in the project's layout."""
  b = int(ref['batch'])
  landmarks = ref['ldm_target'][:, :, 1:]  # [B, 136, 8] -> the 7 second frames
  return {
      'video': np.ascontiguousarray(np.transpose(ref['x'], (0, 2, 3, 4, 1)), np.float32),
      'flow': np.ascontiguousarray(np.transpose(ref['flow_target'], (0, 2, 3, 4, 1)),
                                   np.float32),
      'landmarks': np.ascontiguousarray(
          np.transpose(landmarks, (0, 2, 1)).reshape(b, clip_format.NUM_PAIRS,
                                                     clip_format.NUM_LANDMARKS, 2), np.float32),
      'label': ref['label'].astype(np.int32),
      'mask': np.ones((b,), np.float32),
  }


def flat_arrays(tree) -> dict[tuple, np.ndarray]:
  """Flax path -> numpy array for a dict of `nnx.State` groups or a State."""
  groups = tree.items() if isinstance(tree, dict) else [((), tree)]
  out = {}
  for prefix, sub in groups:
    prefix = prefix if isinstance(prefix, tuple) else (prefix,)
    for path, value in nnx.to_flat_state(sub):
      out[prefix + tuple(path)] = np.asarray(value[...] if isinstance(value, nnx.Variable)
                                             else value)
  return out


def official_layout_outputs(out: dict) -> dict[str, np.ndarray]:
  """logits [B, C]; flow [B, 2, 128, 128, 7]; landmarks [B, 136, 7]."""
  flow = np.transpose(np.asarray(out['flow'], np.float64), (0, 4, 2, 3, 1))
  landmarks = np.asarray(out['landmarks'], np.float64)
  b = landmarks.shape[0]
  return {'logits': np.asarray(out['logits'], np.float64), 'flow': flow,
          'ldm': np.transpose(landmarks.reshape(b, clip_format.NUM_PAIRS, -1), (0, 2, 1))}


def knn_calls(intermediates: dict) -> np.ndarray:
  """[14, B, 256, k] in the official call order: call 2t is frame t
  (CCC_1 of pair t), call 2t + 1 is frame t + 1 (CCC_2 of pair t)."""
  first = np.asarray(intermediates['ccc_1']['neighbors'][0])   # [B, 7, 256, k]
  second = np.asarray(intermediates['ccc_2']['neighbors'][0])
  calls = np.stack([first, second], axis=2)                     # [B, 7, 2, 256, k]
  b = calls.shape[0]
  return np.transpose(calls.reshape((b, -1) + calls.shape[3:]), (1, 0, 2, 3))


def running_updates(intermediates: dict) -> dict[tuple, int]:
  """BatchNorm module path -> running-statistic updates in one forward."""
  counts = {}

  def visit(node, path):
    if isinstance(node, dict):
      for key, value in node.items():
        if key == 'running_updates':
          counts[path] = int(np.asarray(value[0]))
        else:
          visit(value, path + (key,))
  visit(intermediates, ())
  return counts


def test_default_config_is_the_recipe_the_file_ran():
  """configs/default.py is the official recipe: the loss weights and AdamW
  settings of the repository's own file (run with the official defaults),
  and every option of ours that departs from the official training off.
  (Dropout is the official 0.5; the file switched it off.) A MOL_TRAIN_GOLDEN
  file may run another recipe, so it is not the reference here."""
  from configs import default  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  ref = load(DEFAULTS_GOLDEN_FILE)
  assert "all other settings main.py's defaults" in golden.readme(), (
      'tests/golden/README.md no longer says that the file ran the official defaults')
  assert (config.loss.of_weight, config.loss.ldm_weight) == (ref['of_weight'], ref['ldm_weight'])
  opt = config.optimizer
  assert (opt.learning_rate, opt.weight_decay, opt.b1, opt.b2, opt.eps) == (
      ref['lr'], ref['weight_decay'], ref['adam_beta1'], ref['adam_beta2'], ref['adam_eps'])
  assert (opt.schedule, opt.warmup_steps) == ('constant', 0)
  assert config.model.neighbor_num == ref['neighbor_num']
  assert config.model.dropout_rate == 0.5
  assert config.loss.flow_pairs_per_step == clip_format.NUM_PAIRS
  assert config.loss.flow_clips_per_step == 0  # Every clip.
  assert config.model.compute_dtype == 'float32'
  assert config.model.use_fcc and config.model.use_ccc
  assert not any(config.model[name] for name in ('landmarks_at_mean_shape', 'flow_at_zero'))


def official_shapes(ref: dict) -> dict[str, tuple[int, ...]]:
  return {str(k): tuple(int(n) for n in ref[f'shape/{k}']) for k in ref['keys']}


def official_train_state(ref: dict, config, tx):
  """The golden-rule weights imported by the converter, as a training state."""
  shapes = official_shapes(ref)
  state_dict = {k: golden.golden_param(k, shape) for k, shape in shapes.items()}
  model = convert.import_official(state_dict, int(ref['num_classes']), config.model.neighbor_num,
                                  dropout_rate=config.model.dropout_rate)
  return train.state_from_model(config, model, config.seed, tx)


def loss_args(config, graphdef) -> dict:
  return dict(graphdef=graphdef, of_weight=config.loss.of_weight,
              ldm_weight=config.loss.ldm_weight,
              flow_pairs_per_step=config.loss.flow_pairs_per_step,
              compute_dtype=config.model.compute_dtype)


def load(path: str) -> dict:
  golden.require(path)
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope='module')
def ref() -> dict:
  golden.require(golden.MANIFEST_FILE)
  return load(TRAIN_GOLDEN_FILE)


@pytest.fixture(scope='module')
def run(ref) -> dict:
  """Two project training steps on the file's batch, recorded in official
  keys and layouts."""
  config = parity_config(ref)
  shapes = official_shapes(ref)
  tx = train.create_optimizer(config)
  graphdef, state = official_train_state(ref, config, tx)
  mesh = sharding.create_mesh(config.mesh.num_devices)
  steps = train.Steps(config, graphdef, tx, state, mesh)
  state = steps.place(state)
  batch = sharding.global_batch(official_batch(ref), mesh)

  loss_and_grads = jax.jit(functools.partial(train.loss_and_grads,
                                             **loss_args(config, graphdef)))

  @jax.jit
  def intermediates(state, batch):
    model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
    model(batch['video'], train=True)
    return nnx.state(model, nnx.Intermediate).to_pure_dict()

  is_stat = lambda key: key.endswith(('running_mean', 'running_var'))
  param_shapes = {k: v for k, v in shapes.items() if not is_stat(k)}
  stat_shapes = {k: v for k, v in shapes.items() if is_stat(k)}
  official = lambda state: (convert.flat_to_official(flat_arrays(state.params), param_shapes)
                            | convert.flat_to_official(flat_arrays(state.batch_stats),
                                                       stat_shapes))
  record = {'init': official(jax.device_get(state))}
  # Full precision: a GPU's default TF32 would be ~1e-3 and swap kNN ties.
  with jax.default_matmul_precision('highest'):
    for step in (1, 2):
      loss, terms, out, _, grads = jax.device_get(loss_and_grads(state, batch))
      inter = jax.device_get(intermediates(state, batch))
      state, metrics = steps.train(state, batch)
      record[f'step{step}'] = {
          'loss_total': float(loss), 'loss_me': float(terms['mer']),
          'loss_flow': float(terms['flow']), 'loss_ldm': float(terms['landmarks']),
          'outputs': official_layout_outputs(out),
          'grads': convert.flat_to_official(flat_arrays(grads), param_shapes),
          'knn': knn_calls(inter),
          'running_updates': running_updates(inter),
          'after': official(jax.device_get(state)),
          'step_loss': float(metrics['loss']),
      }
  record.update(shapes=shapes)
  return record


def _tol(ref, name):
  return float(ref[f'tolerance/{name}'])


def _flownet(key):
  return key.startswith('flownet.')


def parity_checks(ref: dict, run: dict) -> list[Check]:
  """Every recorded quantity against its rule in the golden README."""
  checks = []
  add = lambda group, quantity, error, tol: checks.append(Check(group, quantity, error, tol))
  lr = float(ref['lr'])
  keys = [str(k) for k in ref['keys']]
  no_grad = {str(k) for k in ref['params_without_grad']}
  params = [str(k) for k in ref['param_keys'] if str(k) not in no_grad]
  # Statistics of modules the model has (the FCC feed-forward's BatchNorm,
  # never called, is covered by the untouched-keys test).
  stats = [k for k in keys if k.endswith(('running_mean', 'running_var'))
           and k in run['step1']['after']]

  for step in (1, 2):
    got = run[f'step{step}']
    for name in ('loss_me', 'loss_flow', 'loss_ldm', 'loss_total'):
      add('losses and outputs', f'{name} (step {step})',
          relative(got[name], ref[name][step - 1]), _tol(ref, 'loss_rel'))
    add('losses and outputs', f'train_step_loss (step {step})',
        relative(got['step_loss'], ref['loss_total'][step - 1]), _tol(ref, 'loss_rel'))
    out = got['outputs']
    tol = _tol(ref, f'out_step{step}_rel')
    add('losses and outputs', f'logits (step {step})',
        relative(out['logits'], ref[f'logits_step{step}']), tol)
    add('losses and outputs', f'ldm (step {step})', relative(out['ldm'], ref[f'ldm_step{step}']),
        tol)
    add('losses and outputs', f'flow_norm (step {step})',
        relative(np.linalg.norm(out['flow']), ref[f'flow_step{step}_norm']), tol)
    add('losses and outputs', f'flow_values (step {step}, 64 positions)',
        relative(out['flow'].ravel()[ref['flow_index']], ref[f'flow_step{step}']),
        tol if step == 1 else _tol(ref, 'flow_step2_values_rel'))
    if step == 1:
      pair_norm = np.sqrt(np.sum(np.square(out['flow']), axis=(1, 2, 3)))  # [B, 7]
      add('losses and outputs', 'flow_pair_norms (step 1)',
          relative(pair_norm, ref['flow_step1_pair_norm']), tol)

    # Gradients: norm (relative) and the recorded values (max |d| / norm).
    group_tol = lambda key, name: _tol(ref, f'{name}_{"flownet" if _flownet(key) else "other"}')
    for key in params:
      grad = got['grads'][key]
      norm = float(ref[f'grad{step}_norm/{key}'])
      tol = group_tol(key, f'grad{step}')
      # The norm in float64: a float32 sum of 3 M squares is itself ~1e-5 off.
      add(group_of(key), f'grad{step}_norm {key}',
          relative(np.linalg.norm(grad.astype(np.float64)), norm), tol)
      values = grad.ravel()[ref[f'idx/{key}']]
      add(group_of(key), f'grad{step}_values {key}',
          float(np.max(np.abs(values - ref[f'grad{step}/{key}']))) / max(norm, 1e-30), tol)

    # Values after the step.
    for key in params:
      after = got['after'][key].ravel()[ref[f'idx/{key}']].astype(np.float64)
      over_lr = np.abs(after - ref[f'after{step}/{key}']) / lr
      if step == 1 and not _flownet(key):
        add(group_of(key), f'after1_over_lr {key}', float(over_lr.max()),
            _tol(ref, 'after1_other_over_lr'))
      elif step == 1:
        rms = float(ref[f'grad1_norm/{key}']) / np.sqrt(np.prod(run['shapes'][key]))
        conditioned = np.abs(ref[f'grad1/{key}']) >= _tol(ref, 'after1_flownet_tau_rms') * rms
        if conditioned.any():
          add(group_of(key), f'after1_conditioned_over_lr {key}',
              float(over_lr[conditioned].max()), _tol(ref, 'after1_flownet_conditioned_over_lr'))
        if (~conditioned).any():
          add(group_of(key), f'after1_sign_step_over_lr {key}',
              float(over_lr[~conditioned].max()), _tol(ref, 'after1_flownet_other_over_lr'))
      elif not _flownet(key):
        add(group_of(key), f'after2_over_lr {key}', float(over_lr.max()),
            _tol(ref, 'after2_other_over_lr'))
      else:
        for stat, fn in (('median', np.median), ('p90', lambda v: np.percentile(v, 90)),
                         ('max', np.max)):
          add(group_of(key), f'after2_{stat}_over_lr {key}', float(fn(over_lr)),
              _tol(ref, f'after2_flownet_{stat}_over_lr'))

    # How far each tensor moved, parameters and running statistics.
    for key in params + stats:
      delta = np.linalg.norm(got['after'][key].astype(np.float64) - run['init'][key])
      if step == 1:
        tol = _tol(ref, 'delta1_norm_rel')
      else:
        tol = _tol(ref, f'delta2_norm_{"flownet" if _flownet(key) else "other"}_rel')
      add(group_of(key), f'delta{step}_norm {key}',
          relative(delta, ref[f'delta{step}_norm/{key}']), tol)

    # BatchNorm running statistics in full.
    for key in stats:
      tol = (_tol(ref, 'bn_after1_rel') if step == 1 else
             _tol(ref, f'bn_after2_{"flownet" if _flownet(key) else "other"}_rel'))
      add('BatchNorm statistics', f'bn_after{step} {key}',
          relative(got['after'][key], ref[f'bn_after{step}/{key}']), tol)
  return checks


def test_knn_order_equals_official(ref, run):
  """The CCC's neighbours in torch.topk's rank order, call by call; a
  difference is tolerated only at a near-tie of the similarities."""
  k = int(ref['neighbor_num'])
  for step in (1, 2):
    got, want = run[f'step{step}']['knn'], ref[f'knn_idx_step{step}'].astype(np.int64)
    assert got.shape == want.shape == (14, int(ref['batch']), 256, k)
    differs = np.any(got != want, axis=-1)
    near_tie = ref[f'knn_gap_step{step}'] < _tol(ref, 'knn_swap_gap_below')
    assert not np.any(differs & ~near_tie), (
        f'step {step}: kNN order differs at {int(np.sum(differs & ~near_tie))} positions '
        'whose similarity gap is not a float32 tie: a real difference in cosine_knn')
    # The rest of the comparison assumes the official order everywhere.
    assert not np.any(differs), (
        f'step {step}: kNN swapped {int(np.sum(differs))} near-tied neighbours; the '
        'other parity tests then compare a different computation')


def test_two_training_steps_equal_official(ref, run):
  checks = parity_checks(ref, run)
  print('\nTraining parity against', os.path.basename(TRAIN_GOLDEN_FILE))
  print(report(checks, only_failures=False))
  failures = [c for c in checks if not c.ok]
  assert not failures, ('training step differs from the official one:\n'
                        + report(checks, only_failures=True))


def test_every_official_key_is_compared_or_provably_untouched(ref, run):
  """Each state_dict entry is mapped by the converter, or it is one the
  official step leaves exactly as it was (the FCC feed-forward branch the
  forward never calls, and its BatchNorm)."""
  keys = [str(k) for k in ref['keys']]
  mapped = run['step1']['after'].keys()
  no_grad = {str(k) for k in ref['params_without_grad']}
  for key in keys:
    if key in mapped or key.endswith('num_batches_tracked'):
      continue
    assert key.startswith(('FCC_1.ffn.', 'FCC_2.ffn.')), key
    for step in (1, 2):
      np.testing.assert_array_equal(ref[f'after{step}/{key}'], ref[f'init/{key}'], err_msg=key)
    if key in no_grad:
      np.testing.assert_array_equal(ref[f'grad1/{key}'], 0.0, err_msg=key)


def test_batchnorm_updates_per_step_equal_official(ref, run):
  """num_batches_tracked after each step: the official count of BatchNorm
  calls, which fixes how many momentum updates the running statistics take."""
  keys = [str(k) for k in ref['keys'] if str(k).endswith('num_batches_tracked')]
  for step in (1, 2):
    counts = run[f'step{step}']['running_updates']
    for key in keys:
      base = key[:-len('num_batches_tracked')] + 'running_mean'
      flat = convert.official_to_flat({base: np.zeros(run['shapes'][base], np.float32)})
      per_step = counts.get(next(iter(flat))[:-1], 0) if flat else 0
      official = int(np.asarray(ref[f'after{step}/{key}']).ravel()[0])
      assert step * per_step == official, (
          f'{key}: {per_step} updates per step; the official step makes {official // step}')


def test_adamw_alone_equals_official_in_float64(ref):
  """The project's optimiser (`train.create_optimizer`) applied in float64 to
  the recorded initial values and gradients gives the recorded values after
  each step: this sees lr, weight decay, betas, eps and bias corrections,
  which float32 cannot resolve at the first step."""
  no_grad = {str(k) for k in ref['params_without_grad']}
  params = [str(k) for k in ref['param_keys'] if str(k) not in no_grad]
  lr = float(ref['lr'])
  with jax.enable_x64(True):
    tx = train.create_optimizer(parity_config(ref))
    p = {k: jnp.asarray(ref[f'init/{k}'], jnp.float64) for k in params}
    opt_state = tx.init(p)
    for step in (1, 2):
      g = {k: jnp.asarray(ref[f'grad{step}/{k}'], jnp.float64) for k in params}
      updates, opt_state = tx.update(g, opt_state, p)
      p = optax.apply_updates(p, updates)
      worst = max(params, key=lambda k: float(jnp.max(jnp.abs(p[k] - ref[f'after{step}/{k}']))))
      error = float(jnp.max(jnp.abs(p[worst] - ref[f'after{step}/{worst}']))) / lr
      assert error <= _tol(ref, 'optimizer_float64_over_lr'), (
          f'step {step}: AdamW differs from the official update by {error:.3g} lr at {worst}')


def test_first_step_in_float64_equals_official(ref):
  """The same first step in float64 (the file's own precision): outputs and
  every gradient, the flow head's too, agree far below the float32
  tolerances, so no formula differs. The loss terms are cast to float32 as
  the official loss statements do, which bounds the agreement near 1e-7."""
  config = parity_config(ref)
  with jax.enable_x64(True):
    tx = train.create_optimizer(config)
    graphdef, state = official_train_state(ref, config, tx)
    as64 = lambda a: (jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating)
                      else jnp.asarray(a))
    state = jax.tree.map(as64, state)
    batch = {k: as64(v) for k, v in official_batch(ref).items()}
    _, terms, out, _, grads = jax.device_get(jax.jit(functools.partial(
        train.loss_and_grads, **loss_args(config, graphdef)))(state, batch))
  assert flat_arrays(grads)[('flownet', 'conv1', 'conv', 'kernel')].dtype == np.float64
  for name, term in (('loss_me', 'mer'), ('loss_flow', 'flow'), ('loss_ldm', 'landmarks')):
    assert relative(terms[term], ref[name][0]) < 1e-6, name
  out = official_layout_outputs(out)
  assert relative(out['logits'], ref['logits_step1']) < 1e-6
  assert relative(out['ldm'], ref['ldm_step1']) < 1e-6
  assert relative(out['flow'].ravel()[ref['flow_index']], ref['flow_step1']) < 1e-6
  shapes = {k: v for k, v in official_shapes(ref).items()
            if not k.endswith(('running_mean', 'running_var'))}
  grads = convert.flat_to_official(flat_arrays(grads), shapes)
  for key, grad in grads.items():
    norm = float(ref[f'grad1_norm/{key}'])
    assert relative(np.linalg.norm(grad), norm) < 1e-6, key
    assert np.max(np.abs(grad.ravel()[ref[f'idx/{key}']] - ref[f'grad1/{key}'])) < 1e-6 * norm, key
