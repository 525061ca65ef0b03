"""Multi-task training and evaluation of MOL, fold by fold.

`train_and_evaluate(config, workdir)` runs one fold per held-out subject
(`config.protocol` 'loso' or 'composite') or per held-out dataset ('lodo';
`mol_jax.protocols`): a fresh model, `config.num_train_steps` sharded
training steps, evaluation of what the fold holds out, and at the end
metrics from the confusion matrix pooled over folds. Every fold checkpoints
and resumes; finished folds are skipped when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx, struct
from jax.experimental import multihost_utils

from mol_jax import files
from mol_jax import clip_format
from mol_jax import checkpointing, experiment, losses, metrics as metrics_lib, protocols
from mol_jax import reporting, sharding
# ConfigError and BuildError are also train's: callers catch train.ConfigError.
from mol_jax.experiment import (EVAL_UNITS, ConfigError, Experiment, parse_lr_multipliers,
                                parse_seeds)
from mol_jax.data import input_pipeline, sources
from mol_jax.data.sources import BuildError  # pylint: disable=unused-import
from mol_jax.model import MOL, abstract_model, create_model
from mol_jax.model.initialisers import (flow_at_zero, landmarks_at_mean_shape, load_weights,
                                       weights_mismatch)



class NonFiniteError(RuntimeError):
  """Training produced a NaN or infinite loss or gradient."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C during a fold's steps; the message says where it stopped."""


@struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  `params` and `batch_stats` are the model's `nnx.Param` and `nnx.BatchStat`
  states; the model structure (`graphdef`) is static and kept outside.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class StartingWeights:
  """`config.init_from`'s weights, read once and started from in every fold.

  Attributes:
    path: the checkpoint directory, as the config names it.
    step: the checkpoint step read (its latest).
    weights: parameters and BatchNorm statistics, a nested dict of numpy
      arrays (`checkpointing.model_variables`).
  """
  path: str
  step: int
  weights: dict

  def source(self) -> dict[str, Any]:
    """Where the weights came from, as results.json records it."""
    return {'path': self.path, 'step': self.step}


def load_init_from(config: ml_collections.ConfigDict, num_classes: int) -> StartingWeights | None:
  """Reads `config.init_from` (None when '') and checks that it fits the model.

  A checkpoint fits when it holds every layer of the configured model, each
  of the same shape, and no other: the class count, `use_fcc`, `use_ccc` and
  `flow_refinement` must agree, except that a checkpoint without the flow
  refinement's layers (official weights, a run without the option) starts a
  model with it, whose new layers keep their initialisation.

  Raises:
    ConfigError: one line naming config.init_from and what differs.
  """
  path = config.get('init_from', '')
  if not path:
    return None
  where = f'config.init_from={path}'
  try:
    step = checkpointing.checkpoint_step(path)
    source = checkpointing.restore_model(path, step)
  except (FileNotFoundError, checkpointing.CheckpointError) as e:
    raise ConfigError(f'{where}: {e} (give a fold model directory, WORKDIR/folds/<fold>/model, '
                      'or a python -m mol_jax.convert output)') from e
  weights = jax.device_get(checkpointing.model_variables(source))
  wanted = abstract_model(num_classes, config.model.neighbor_num, config.model.dropout_rate,
                          config.model.use_fcc, config.model.use_ccc,
                          config.model.get('flow_refinement', False))
  problem = weights_mismatch(wanted, weights)
  if problem is not None:
    raise ConfigError(f'{where} (step {step}) does not fit the configured model: {problem}')
  if source.neighbor_num != config.model.neighbor_num:
    # Not a shape: the weights load, but the CCC graph they were trained
    # with differs.
    logging.warning('%s was trained with neighbor_num=%d; this run uses config.model.'
                    'neighbor_num=%d', path, source.neighbor_num, config.model.neighbor_num)
  return StartingWeights(path, step, weights)


def create_learning_rate_fn(config: ml_collections.ConfigDict) -> optax.Schedule:
  opt = config.optimizer
  steps = max(config.num_train_steps, 1)
  if opt.schedule == 'constant':
    schedule = optax.constant_schedule(opt.learning_rate)
  elif opt.schedule == 'cosine':
    schedule = optax.cosine_decay_schedule(opt.learning_rate, max(steps - opt.warmup_steps, 1))
  else:
    raise ConfigError(f"config.optimizer.schedule must be 'constant' or 'cosine', got "
                      f'{opt.schedule!r}')
  if opt.warmup_steps:
    warmup = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
    schedule = optax.join_schedules([warmup, schedule], [opt.warmup_steps])
  return schedule


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW as the official code sets it (lr 1e-4, weight decay 1e-3).

  `config.optimizer.lr_multipliers` gives named parameter groups their own
  AdamW at a multiple of the schedule.
  """
  opt = config.optimizer
  schedule = create_learning_rate_fn(config)
  adamw = lambda lr: optax.adamw(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps,
                                 weight_decay=opt.weight_decay)
  multipliers = parse_lr_multipliers(opt.get('lr_multipliers', ''))
  if not multipliers:
    return adamw(schedule)
  # Under AdamW a layer's step size is its learning rate whatever its loss
  # weight, so this is the lever on how fast one group moves.
  labels = lambda params: {group: jax.tree.map(
      lambda _, g=group: g if g in multipliers else 'rest', value)
                           for group, value in params.items()}
  transforms = {group: adamw(lambda step, m=m: m * schedule(step))
                for group, m in multipliers.items()}
  return optax.multi_transform(dict(transforms, rest=adamw(schedule)), labels)


def create_train_state(config: ml_collections.ConfigDict, num_classes: int, seed: int,
                       tx: optax.GradientTransformation,
                       mean_landmarks: np.ndarray | None = None,
                       start: StartingWeights | None = None
                       ) -> tuple[nnx.GraphDef, TrainState]:
  """A fresh model and optimiser state, with the config's initialisation choices.

  `mean_landmarks` ([7, 68, 2], the training clips' mean landmark target) is
  needed by `config.model.landmarks_at_mean_shape`; shapes alone do not
  depend on it. `start` (`config.init_from`'s weights, `load_init_from`)
  replaces every weight it holds, after the initialisation choices.
  """
  model = create_model(num_classes, config.model.neighbor_num, config.model.dropout_rate,
                       seed=seed, use_fcc=config.model.use_fcc, use_ccc=config.model.use_ccc,
                       flow_refinement=config.model.get('flow_refinement', False))
  if config.model.landmarks_at_mean_shape and mean_landmarks is not None:
    landmarks_at_mean_shape(model, mean_landmarks)
  if config.model.flow_at_zero:
    flow_at_zero(model)
  if start is not None:
    kept = load_weights(model, start.weights)
    if kept:
      logging.info('%s (step %d) has no %s layers: they keep their initialisation',
                   start.path, start.step, ', '.join(kept))
  return state_from_model(config, model, seed, tx)


def state_from_model(config: ml_collections.ConfigDict, model: MOL, seed: int,
                     tx: optax.GradientTransformation) -> tuple[nnx.GraphDef, TrainState]:
  """The training state that starts from `model`'s weights (for example the
  official ones, `convert.import_official`): step 0, a fresh optimiser."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  trainable, _ = split_frozen(params, frozen_heads(config.loss.of_weight,
                                                   config.loss.ldm_weight))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=tx.init(trainable), rng=jax.random.PRNGKey(seed))
  return graphdef, state


def frozen_heads(of_weight: float, ldm_weight: float) -> tuple[str, ...]:
  """Heads whose loss weight is 0: not trained, no optimiser state.

  Their gradient would be exactly zero, and AdamW would still read and write
  all their weights every step (the flow head is 90 % of the 44 M
  parameters) only to apply weight decay to weights nothing uses.
  """
  return tuple(name for name, weight in (('flownet', of_weight), ('ldm_predictor', ldm_weight))
               if weight == 0)


def split_frozen(params: nnx.State, frozen: tuple[str, ...]) -> tuple[dict, dict]:
  """(trainable, frozen): the model's top-level parameter groups, as dicts."""
  if 'flownet' in frozen:
    # The flow refinement (config.model.flow_refinement) serves the flow
    # term alone, as the flow head does: it is frozen with it.
    frozen = tuple(frozen) + ('flow_refine',)
  return ({k: v for k, v in params.items() if k not in frozen},
          {k: v for k, v in params.items() if k in frozen})


def _join(trainable: dict, frozen: dict, template: nnx.State) -> nnx.State:
  """Inverse of `split_frozen`, with `template`'s pytree structure."""
  groups = [trainable[k] if k in trainable else frozen[k] for k in template.keys()]
  return jax.tree.unflatten(jax.tree.structure(template),
                            [leaf for group in groups for leaf in jax.tree.leaves(group)])


def _merge(graphdef: nnx.GraphDef, params, batch_stats, compute_dtype: str) -> MOL:
  """The model with its parameters cast to the compute dtype.

  The cast is inside the differentiated function, so gradients, the
  optimiser and the master weights stay float32; BatchNorm statistics are
  float32 too (GroupedBatchNorm computes them in float32).
  """
  if compute_dtype != 'float32':
    dtype = jnp.dtype(compute_dtype)
    params = jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating)
                          else p, params)
  return nnx.merge(graphdef, params, batch_stats, copy=True)


def _model_inputs(model: MOL, batch: dict) -> jax.Array:
  """The video in the dtype of the model's (possibly cast) parameters."""
  return batch['video'].astype(model.conv_stack.layers[0].kernel[...].dtype)


def _loss_terms(model: MOL, batch: dict, *, train: bool, dropout_rng, flow_pairs,
                with_flow: bool, flow_options: losses.FlowLossOptions = losses.OFFICIAL_FLOW,
                flow_clips: int = 0) -> tuple[dict, dict]:
  """Forward pass and each official loss term.

  Args:
    batch: `video` [b, 8, 128, 128, 1], `flow` [b, 7, 128, 128, 2],
      `landmarks` [b, 7, 68, 2], `label` [b], `mask` [b]; `true_flow` too
      when `flow_options.target` names it.
    flow_clips: k > 0 supervises the flow of the batch's first k clips only
      (the batches are shuffled: an unbiased estimate of the same term).
    flow_options: how the flow term compares (`losses.flow_loss_options`);
      the default is the official MSE against `flow`.
  """
  pyramid = with_flow and bool(flow_options.pyramid_weights)
  out = model(_model_inputs(model, batch), train=train, dropout_rng=dropout_rng,
              flow_pairs=flow_pairs, flow_clips=flow_clips or None, with_flow=with_flow,
              flow_pyramid=pyramid)
  out = jax.tree.map(lambda x: x.astype(jnp.float32), out)  # losses in float32
  mask = batch['mask']
  terms = {
      'mer': losses.classification_loss(out['logits'], batch['label'], mask),
      'landmarks': losses.landmark_loss(out['landmarks'], batch['landmarks'], mask),
  }
  if with_flow:
    target = batch[flow_options.target]
    target = target if flow_pairs is None else target[:, flow_pairs]
    clips = slice(flow_clips or None)
    terms['flow'] = losses.flow_pyramid_loss(out['flow'], out.get('flow_pyramid'),
                                             target[clips], mask[clips], clip_format.NUM_PAIRS,
                                             flow_options)
  return terms, out


def _total(terms: dict, of_weight: float, ldm_weight: float) -> jax.Array:
  total = terms['mer']
  if ldm_weight:  # A zero weight adds nothing, and no backward pass through the head.
    total = total + ldm_weight * terms['landmarks']
  if 'flow' in terms:
    total = total + of_weight * terms['flow']
  return total


def _step_randomness(state: TrainState, flow_pairs_per_step: int):
  """Dropout key and the pairs whose flow is supervised, fixed by the step."""
  rng = jax.random.fold_in(state.rng, state.step)
  dropout_rng, pair_rng = jax.random.split(rng)
  flow_pairs = None
  if flow_pairs_per_step < clip_format.NUM_PAIRS:
    flow_pairs = jnp.sort(jax.random.choice(pair_rng, clip_format.NUM_PAIRS, (flow_pairs_per_step,),
                                            replace=False))
  return dropout_rng, flow_pairs


def loss_and_grads(state: TrainState, batch: dict, *, graphdef: nnx.GraphDef,
                   of_weight: float, ldm_weight: float, flow_pairs_per_step: int,
                   compute_dtype: str = 'float32',
                   flow_options: losses.FlowLossOptions = losses.OFFICIAL_FLOW,
                   flow_clips_per_step: int = 0):
  """The multi-task loss of one training batch and its gradient.

  The forward runs in training mode: BatchNorm normalises with batch
  statistics and returns its updated running statistics.

  Args:
    batch: `video` [b, 8, 128, 128, 1], `flow` [b, 7, 128, 128, 2],
      `landmarks` [b, 7, 68, 2], `label` [b], `mask` [b].

  Returns:
    (total loss, each loss term, the model outputs, the updated
    `batch_stats`, the gradient of the total loss with respect to the
    trainable parameters: a dict of the top-level parameter groups, heads
    with loss weight 0 left out).
  """
  dropout_rng, flow_pairs = _step_randomness(state, flow_pairs_per_step)
  trainable, frozen = split_frozen(state.params, frozen_heads(of_weight, ldm_weight))

  def loss_fn(trainable):
    params = _join(trainable, frozen, state.params)
    model = _merge(graphdef, params, state.batch_stats, compute_dtype)
    terms, out = _loss_terms(model, batch, train=True, dropout_rng=dropout_rng,
                             flow_pairs=flow_pairs, with_flow=of_weight > 0,
                             flow_options=flow_options, flow_clips=flow_clips_per_step)
    return _total(terms, of_weight, ldm_weight), (terms, out, nnx.state(model, nnx.BatchStat))

  (loss, (terms, out, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      trainable)
  return loss, terms, out, batch_stats, grads


def train_step(state: TrainState, batch: dict, *, graphdef: nnx.GraphDef,
               tx: optax.GradientTransformation, of_weight: float, ldm_weight: float,
               flow_pairs_per_step: int, compute_dtype: str = 'float32',
               flow_options: losses.FlowLossOptions = losses.OFFICIAL_FLOW,
               flow_clips_per_step: int = 0) -> tuple[TrainState, dict]:
  """One AdamW step on the multi-task loss (heads with loss weight 0 stay frozen).

  A step whose loss or gradient is not finite leaves the state unchanged and
  reports `nonfinite` = 1; the loop stops the run on it.
  """
  loss, terms, out, batch_stats, grads = loss_and_grads(
      state, batch, graphdef=graphdef, of_weight=of_weight, ldm_weight=ldm_weight,
      flow_pairs_per_step=flow_pairs_per_step, compute_dtype=compute_dtype,
      flow_options=flow_options, flow_clips_per_step=flow_clips_per_step)
  trainable, frozen = split_frozen(state.params, frozen_heads(of_weight, ldm_weight))
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

  # A branch, not a select of new and old states: the update then reads and
  # writes each weight and moment once, in place in the donated buffers; a
  # select over the state would add a pass over every one of them.
  def update(trainable, opt_state, _):
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return (optax.apply_updates(trainable, updates), opt_state, batch_stats,
            optax.global_norm(updates))

  def keep(trainable, opt_state, old_batch_stats):
    return trainable, opt_state, old_batch_stats, jnp.zeros((), jnp.float32)

  trainable, opt_state, new_batch_stats, update_norm = jax.lax.cond(
      finite, update, keep, trainable, state.opt_state, state.batch_stats)
  new_state = state.replace(step=state.step + finite.astype(state.step.dtype),
                            params=_join(trainable, frozen, state.params),
                            batch_stats=new_batch_stats, opt_state=opt_state)
  correct = (jnp.argmax(out['logits'], -1) == batch['label']) * batch['mask']
  step_metrics = {
      'loss': loss,
      'grad_norm': grad_norm,
      'param_norm': optax.global_norm(state.params),
      'update_norm': update_norm,
      'accuracy': jnp.sum(correct) / jnp.maximum(jnp.sum(batch['mask']), 1.0),
      'nonfinite': 1 - finite.astype(jnp.int32),
  }
  step_metrics.update({f'loss/{k}': v for k, v in terms.items()})
  return new_state, step_metrics


def term_grad_norms(state: TrainState, batch: dict, *, graphdef: nnx.GraphDef,
                    of_weight: float, ldm_weight: float, flow_pairs_per_step: int,
                    compute_dtype: str = 'float32',
                    flow_options: losses.FlowLossOptions = losses.OFFICIAL_FLOW,
                    groups: tuple[str, ...] | None = None, flow_clips_per_step: int = 0) -> dict:
  """Gradient norm of each weighted loss term (one batched backward pass).

  Costs about three backward passes, so the loop calls it only every
  `config.log_term_grad_norms_every_steps`. With `groups` (top-level
  parameter groups, e.g. the shared trunk's) it returns each term's norm
  over each of those groups instead, `grad_norm/<term>/<group>`.
  """
  dropout_rng, flow_pairs = _step_randomness(state, flow_pairs_per_step)
  weights = {'mer': 1.0, 'landmarks': ldm_weight, 'flow': of_weight}

  def weighted_terms(params):
    model = _merge(graphdef, params, state.batch_stats, compute_dtype)
    terms, _ = _loss_terms(model, batch, train=True, dropout_rng=dropout_rng,
                           flow_pairs=flow_pairs, with_flow=of_weight > 0,
                           flow_options=flow_options, flow_clips=flow_clips_per_step)
    return jnp.stack([weights[k] * terms[k] for k in sorted(terms)])

  values, vjp = jax.vjp(weighted_terms, state.params)
  grads = jax.vmap(vjp)(jnp.eye(values.shape[0]))[0]
  names = sorted(weights if of_weight > 0 else ('mer', 'landmarks'))
  if groups is not None:
    return {f'grad_norm/{k}/{group}': jax.vmap(optax.global_norm)(grads[group])[i]
            for group in groups for i, k in enumerate(names)}
  norms = jax.vmap(optax.global_norm)(grads)
  return {f'grad_norm/{k}': norms[i] for i, k in enumerate(names)}


def eval_step(state: TrainState, batch: dict, mean_landmarks: jax.Array, *,
              graphdef: nnx.GraphDef, with_flow: bool, compute_dtype: str = 'float32') -> dict:
  """Per-example outputs and errors for one evaluation batch (padding has mask 0).

  Args:
    batch: an evaluation batch; synthetic sets add `true_flow` and
      `true_landmarks`, the exact motion.
    mean_landmarks: [7, 68, 2] the training clips' mean landmark target, the
      fixed mean-shape predictor MOL's landmarks are compared with.

  Returns:
    `logits` [b, C] and per-example errors [b]: landmark NME (mean point
    error / inter-pupil distance) of MOL and of the mean shape against the
    targets (`*_vs_targets`) and, with the truth, of MOL, dlib (the targets)
    and the mean shape against it (`*_vs_truth`); with `with_flow`, flow
    end-point errors likewise (MOL, and zero flow; TV-L1 against the truth).
  """
  model = _merge(graphdef, state.params, state.batch_stats, compute_dtype)
  out = model(_model_inputs(model, batch), train=False, with_flow=with_flow)
  out = jax.tree.map(lambda x: x.astype(jnp.float32), out)
  nme = lambda points, reference: metrics_lib.landmark_nme(points, reference).mean(1)
  epe = lambda flow, reference: metrics_lib.end_point_error(flow, reference).mean(1)
  mean_shape = jnp.broadcast_to(mean_landmarks, batch['landmarks'].shape)
  result = {'logits': out['logits'],
            'landmark_nme_vs_targets': nme(out['landmarks'], batch['landmarks']),
            'mean_shape_nme_vs_targets': nme(mean_shape, batch['landmarks'])}
  truth = 'true_landmarks' in batch
  if truth:
    result.update(landmark_nme_vs_truth=nme(out['landmarks'], batch['true_landmarks']),
                  dlib_nme_vs_truth=nme(batch['landmarks'], batch['true_landmarks']),
                  mean_shape_nme_vs_truth=nme(mean_shape, batch['true_landmarks']))
  if with_flow:
    result.update(flow_epe_vs_targets=epe(out['flow'], batch['flow']),
                  zero_flow_epe_vs_targets=epe(0.0, batch['flow']))
    if truth:
      result.update(flow_epe_vs_truth=epe(out['flow'], batch['true_flow']),
                    tvl1_epe_vs_truth=epe(batch['flow'], batch['true_flow']),
                    zero_flow_epe_vs_truth=epe(0.0, batch['true_flow']))
  return result


class Steps:
  """The jitted step functions, compiled once and shared by every fold."""

  def __init__(self, config: ml_collections.ConfigDict, graphdef: nnx.GraphDef,
               tx: optax.GradientTransformation, abstract_state: TrainState,
               mesh: jax.sharding.Mesh):
    self.mesh = mesh
    self.graphdef = graphdef
    self.state_sharding = sharding.state_shardings(abstract_state, mesh,
                                                   config.mesh.param_sharding)
    data = sharding.batch_sharding(mesh)
    loss_args = dict(graphdef=graphdef, of_weight=config.loss.of_weight,
                     ldm_weight=config.loss.ldm_weight,
                     flow_pairs_per_step=config.loss.flow_pairs_per_step,
                     flow_clips_per_step=config.loss.flow_clips_per_step,
                     compute_dtype=config.model.compute_dtype,
                     flow_options=losses.flow_loss_options(config.loss))
    self.train = jax.jit(
        functools.partial(train_step, tx=tx, **loss_args),
        in_shardings=(self.state_sharding, data),
        out_shardings=(self.state_sharding, sharding.replicated(mesh)),
        donate_argnums=0)
    self.term_grad_norms = jax.jit(functools.partial(term_grad_norms, **loss_args),
                                   in_shardings=(self.state_sharding, data))
    self.eval = jax.jit(
        functools.partial(eval_step, graphdef=graphdef, with_flow=config.eval_with_flow,
                          compute_dtype=config.model.compute_dtype),
        in_shardings=(self.state_sharding, data, sharding.replicated(mesh)),
        out_shardings=data)

  def place(self, state: TrainState) -> TrainState:
    return jax.device_put(state, self.state_sharding)



def evaluate(steps: Steps, state: TrainState, eval_ds, num_classes: int,
             mean_landmarks: np.ndarray, unit: str = 'video') -> dict:
  """Runs the held-out subject; returns its scores (padding removed).

  `unit` 'video': one sample per video, its clips' softmax averaged
  (`metrics.pool_clips_by_video`); 'clip': every clip is a sample (the
  official count). The two agree when every video gives one clip. Flow and
  landmark errors are means over clips (`num_clips`), whatever the unit.
  """
  if unit not in EVAL_UNITS:
    raise ValueError(f'config.eval_unit must be one of {EVAL_UNITS}, got {unit!r}.')
  outputs: dict[str, list] = {}
  labels, video_index = [], []
  for local in eval_ds:
    batch = sharding.global_batch(local, steps.mesh)
    out = multihost_utils.process_allgather(
        steps.eval(state, batch, mean_landmarks), tiled=True)
    gathered = multihost_utils.process_allgather(
        {k: batch[k] for k in ('mask', 'label', 'video_index')}, tiled=True)
    mask = np.asarray(gathered['mask']) > 0
    for key, value in out.items():
      outputs.setdefault(key, []).append(np.asarray(value)[mask])
    labels.append(np.asarray(gathered['label'])[mask])
    video_index.append(np.asarray(gathered['video_index'])[mask])
  logits = np.concatenate(outputs.pop('logits')) if labels else np.zeros((0, num_classes))
  labels = np.concatenate(labels) if labels else np.zeros((0,), np.int64)
  video_index = np.concatenate(video_index) if video_index else np.zeros((0,), np.int64)
  num_clips = len(labels)
  if unit == 'video' and len(labels):
    probabilities, labels, video_index = metrics_lib.pool_clips_by_video(
        logits, labels, video_index)
    predictions = probabilities.argmax(-1)
  else:
    predictions = logits.argmax(-1)
  result = {
      'unit': unit,
      'labels': labels.tolist(),
      'predictions': predictions.tolist(),
      'video_ids': [eval_ds.video_ids[i] for i in video_index],
      'confusion': metrics_lib.confusion_matrix(labels, predictions, num_classes).tolist(),
      'num_clips': num_clips,
  }
  result.update({k: float(np.concatenate(v).mean()) for k, v in outputs.items() if num_clips})
  result.update({k: v for k, v in metrics_lib.summarize(np.asarray(result['confusion'])).items()
                 if k in ('accuracy', 'uar', 'uf1', 'wf1')})
  return result


def train_fold(config: ml_collections.ConfigDict, fold_dir: str, fold: protocols.Fold,
               fold_index: int, steps: Steps, exp: Experiment,
               writer, start_from: StartingWeights | None = None) -> tuple[TrainState, dict]:
  """Trains and evaluates one fold, resuming from its checkpoint.

  `start_from` (`load_init_from`) is the model's starting point instead of
  its initialisation; with `config.num_train_steps` 0 the fold only scores it.
  """
  class_names = list(exp.class_names)
  num_classes = len(class_names)
  seed = config.seed + fold_index
  subject = fold.name
  datasets = input_pipeline.create_datasets(
      exp.dataset, exp.data_dir, list(fold.test_subjects),
      batch_size=config.batch_size,
      eval_batch_size=config.eval_batch_size, seed=seed, grain_workers=config.grain_workers,
      flip=config.augment.flip, intensity=config.augment.intensity,
      crop_jitter=config.augment.crop_jitter, scale=config.augment.scale,
      train_truth=losses.flow_loss_options(config.loss).target == 'true_flow')
  tx = create_optimizer(config)
  _, state = create_train_state(config, num_classes, seed, tx, datasets.mean_landmarks,
                                start=start_from)
  if start_from is not None:
    logging.info('fold %s: starting from the weights of %s (step %d)%s', subject,
                 start_from.path, start_from.step,
                 '' if config.num_train_steps else '; evaluation only (num_train_steps=0)')
  ckpt = checkpointing.TrainCheckpointer(os.path.join(fold_dir, 'checkpoints'),
                                         config.checkpoint_every_steps)
  state, _, history = ckpt.restore_or(state, datasets.train, steps.state_sharding)
  state = steps.place(state)
  start = int(state.step)
  if start:
    logging.info('fold %s: resumed at step %d', subject, start)
  # Steps an interrupted run logged after its last checkpoint are replayed now.
  writer.drop_after((f'{subject}/train', f'{subject}/test'), start)

  best = history.get('best_on_test')
  pending, nonfinite = [], None
  progress = reporting.progress(config.num_train_steps, start, f'fold {subject}')
  t_last = time.perf_counter()
  data_wait = 0.0
  try:
    for step in range(start + 1, config.num_train_steps + 1):
      t0 = time.perf_counter()
      local = next(datasets.train)
      data_wait += time.perf_counter() - t0
      state, step_metrics = steps.train(state, sharding.global_batch(local, steps.mesh))
      pending.append(step_metrics)
      nonfinite = step_metrics['nonfinite'] if nonfinite is None else nonfinite + step_metrics['nonfinite']
      last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or last:
        fetched = jax.device_get(pending)
        if int(jax.device_get(nonfinite)):
          raise NonFiniteError(
              f'fold {subject}: non-finite loss or gradient before step {step}; the run stops '
              f'and keeps the last good checkpoint in {ckpt.directory}. Lower '
              'config.optimizer.learning_rate or check the data for NaNs.')
        summary = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0] if k != 'nonfinite'}
        elapsed = time.perf_counter() - t_last
        summary['steps_per_second'] = len(fetched) / elapsed
        summary['data_wait_fraction'] = data_wait / elapsed
        if config.log_term_grad_norms_every_steps and (
            step % config.log_term_grad_norms_every_steps == 0):
          summary.update({k: float(v) for k, v in jax.device_get(
              steps.term_grad_norms(state, sharding.global_batch(local, steps.mesh))).items()})
        writer.scalars(f'{subject}/train', step, summary)
        progress.update(step, summary)
        pending, t_last, data_wait = [], time.perf_counter(), 0.0
      if config.eval_every_steps and step % config.eval_every_steps == 0 and not last:
        result = evaluate(steps, state, datasets.eval, num_classes, datasets.mean_landmarks,
                          config.eval_unit)
        writer.scalars(f'{subject}/test', step, reporting.scalar_scores(result))
        if config.report_best_on_test and (best is None or result['accuracy'] > best['accuracy']):
          best = dict(result, step=step)
      if step % config.checkpoint_every_steps == 0 or last:
        ckpt.save(step, state, datasets.train, {'best_on_test': best})
  except KeyboardInterrupt:
    progress.close()
    # A save in flight finishes, so that the next run resumes from it.
    saved = ckpt.close()
    raise Interrupted(
        f'fold {subject} stopped before step {config.num_train_steps}; '
        + (f'its last checkpoint is step {saved}' if saved else 'it had no checkpoint yet')
        ) from None
  progress.close()

  final = evaluate(steps, state, datasets.eval, num_classes, datasets.mean_landmarks,
                   config.eval_unit)
  final['step'] = int(state.step)
  writer.scalars(f'{subject}/test', int(state.step), reporting.scalar_scores(final))
  result = {'subject': subject, 'dataset': fold.dataset, 'fixed': final}
  if start_from is not None:
    result['init_from'] = start_from.source()
  if config.report_best_on_test:
    if best is None or final['accuracy'] > best['accuracy']:
      best = final
    result['best_on_test'] = best
  # The training checkpoints' async writes finish before another manager
  # saves (Orbax names its cross-process barriers by step). Every process
  # takes part: Orbax saves are collective.
  ckpt.close(delete=not config.keep_fold_checkpoints)
  checkpointing.save_model(os.path.join(fold_dir, 'model'),
                           nnx.merge(steps.graphdef, state.params, state.batch_stats),
                           step=int(state.step), overwrite=True,
                           metadata={'class_names': class_names, 'dataset': exp.dataset,
                                     'alignment': exp.alignment,
                                     'protocol': config.protocol,
                                     ('held_out_dataset' if config.protocol == 'lodo'
                                      else 'held_out_subject'): subject,
                                     **({'init_from': start_from.source()}
                                        if start_from is not None else {})})
  return state, result


def _train_and_evaluate_seeds(config: ml_collections.ConfigDict, workdir: str,
                              seeds: list[int]) -> tuple[Any, dict]:
  """The protocol once per seed, in WORKDIR/seeds/<seed>/ (each resumable),
  then the mean and standard deviation over seeds in WORKDIR/results.*."""
  summaries, state = {}, None
  for seed in seeds:
    run = config.copy_and_resolve_references()
    run.seed, run.seeds = seed, ''
    logging.info('seed %d of %s', seed, seeds)
    state, summaries[seed] = train_and_evaluate(run, os.path.join(workdir, 'seeds', str(seed)))
  summary = reporting.summarize_seeds(summaries)
  summary['init_from'] = next(iter(summaries.values())).get('init_from')
  if jax.process_index() == 0:
    reporting.write_seed_results(workdir, summary)
  return state, summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> tuple[Any, dict]:
  """Training and evaluation by `config.protocol` (once per seed of `config.seeds`, if any).

  Returns:
    (state of the last fold trained here, or None if every fold was already
    finished; the summary dict also written to `workdir/results.json`).

  Raises:
    ConfigError: a config mistake, found before anything is trained or written.
  """
  # Both configs of a pre-training run are checked before either trains.
  experiment.validate(config)
  exp = experiment.resolve(config)
  if config.get('pretrain'):
    config = pretrained_start(config, workdir)
  seeds = parse_seeds(config.get('seeds', ''))
  if seeds:
    return _train_and_evaluate_seeds(config, workdir, seeds)
  start_from = load_init_from(config, exp.num_classes)
  # Written only once the config and the data are known to be usable.
  os.makedirs(workdir, exist_ok=True)

  tx = create_optimizer(config)
  graphdef, template = create_train_state(config, exp.num_classes, config.seed, tx)
  steps = Steps(config, graphdef, tx, template, exp.mesh)
  del template

  writer = reporting.MetricWriter(workdir)
  fold_results, state = [], None
  for index, fold in enumerate(exp.folds):
    if fold.name not in exp.chosen:
      continue
    fold_dir = os.path.join(workdir, 'folds', fold.name)
    finished = finished_fold(config, fold_dir)
    if finished is not None:
      fold_results.append(finished)
      continue
    os.makedirs(fold_dir, exist_ok=True)
    state, result = train_fold(config, fold_dir, fold, index, steps, exp, writer, start_from)
    if jax.process_index() == 0:
      files.write_json(os.path.join(fold_dir, 'result.json'), result)
    fold_results.append(result)

  summary = reporting.summarize_folds(fold_results, list(exp.class_names), config)
  # Where every fold's weights started: a checkpoint (`config.init_from`),
  # or None, each fold's own initialisation.
  summary['init_from'] = start_from.source() if start_from is not None else None
  if jax.process_index() == 0:
    reporting.write_results(workdir, summary, list(exp.class_names))
  writer.close()
  return state, summary


def finished_fold(config: ml_collections.ConfigDict, fold_dir: str) -> dict | None:
  """The result of a fold an earlier run finished (None: not finished).

  Raises:
    ConfigError: it was counted in another `config.eval_unit`.
  """
  result_path = os.path.join(fold_dir, 'result.json')
  if not os.path.exists(result_path):
    return None
  with open(result_path) as f:
    finished = json.load(f)
  if finished.get('fixed', {}).get('unit', config.eval_unit) != config.eval_unit:
    raise ConfigError(f'{result_path} counted {finished["fixed"]["unit"]}s, this run asks '
                      f'config.eval_unit={config.eval_unit!r}: use another workdir or the '
                      'same eval_unit')
  logging.info('fold %s already finished; skipping', os.path.basename(fold_dir))
  return finished


def pretrained_start(config: ml_collections.ConfigDict, workdir: str
                     ) -> ml_collections.ConfigDict:
  """Runs the `config.pretrain` stage and returns `config` starting from its model.

  The stage is a training run of its own into WORKDIR/pretrain, resumed or
  skipped like any run when it has finished; it shares this config's
  `data_dir`. Its one fold's model becomes `init_from`.

  Raises:
    ConfigError: the stage names other than one fold, or this config already
      has an `init_from` (`experiment.validate` checks both first).
  """
  fold = experiment.pretrain_fold(config)
  stage = experiment.pretrain_stage(config)
  stage_dir = os.path.join(workdir, 'pretrain')
  logging.info('pre-training stage into %s (%s, %d steps)', stage_dir, stage.dataset,
               stage.num_train_steps)
  train_and_evaluate(stage, stage_dir)
  config = config.copy_and_resolve_references()
  config.pretrain = ml_collections.ConfigDict()
  config.init_from = os.path.join(stage_dir, 'folds', fold, 'model')
  return config
