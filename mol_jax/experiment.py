"""An experiment, checked and resolved once from its config.

`validate(config)` runs every check a config can fail without reading data
(fields, ranges, the dataset names, the protocol, the device mesh), so that
a mistake ends in one line naming the field before anything is built,
trained or written. `resolve(config)` then reads what the config names
(building a missing synthetic set when asked), and returns an `Experiment`:
the parsed datasets, folds, class names, alignment and mesh that the
training loop reads instead of parsing `config.dataset` again.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np

from mol_jax import clip_format, losses, protocols, sharding
from mol_jax.data import builder, input_pipeline, sources


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


# MOL's top-level parameter groups, the units `config.optimizer.lr_multipliers` names.
PARAMETER_GROUPS = ('conv_stack', 'fcc_1', 'fcc_2', 'ccc_1', 'ccc_2', 'flownet', 'flow_refine',
                    'ldm_predictor', 'mer_3dcnn')
EVAL_UNITS = ('video', 'clip')
COMPUTE_DTYPES = ('float32', 'bfloat16')
SCHEDULES = ('constant', 'cosine')


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What a validated config names, read once.

  Attributes:
    dataset: `config.dataset` as written (checkpoints record it).
    names: its TFDS names, in the given order.
    data_dir: the TFDS data directory (None: TFDS's default).
    alignment: the alignment every dataset was built with.
    folds: every fold of `config.protocol`, in order (a fold's index seeds it).
    chosen: the names of the folds `config.folds` runs (all when empty).
    class_names: label names, in label order.
    mesh: the device mesh the steps run on.
  """
  dataset: str
  names: tuple[str, ...]
  data_dir: str | None
  alignment: str
  folds: tuple[protocols.Fold, ...]
  chosen: frozenset[str]
  class_names: tuple[str, ...]
  mesh: jax.sharding.Mesh

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def parse_seeds(text: str) -> list[int]:
  """`config.seeds` ('0,1,2') as distinct integers; '' gives none."""
  try:
    seeds = [int(s) for s in str(text).split(',') if s.strip()]
  except ValueError:
    raise ConfigError(f"config.seeds must be comma-separated integers such as '0,1,2', got "
                      f'{text!r}') from None
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f'config.seeds repeats a seed: {text!r}')
  return seeds


def parse_lr_multipliers(text: str) -> dict[str, float]:
  """`config.optimizer.lr_multipliers`: '' or 'group=m,group=m' -> {group: m}.

  Raises:
    ConfigError: naming the field, for an unknown group or a multiplier not > 0.
  """
  multipliers = {}
  for item in filter(None, (t.strip() for t in str(text).split(','))):
    group, _, value = item.partition('=')
    try:
      multiplier = float(value)
    except ValueError:
      multiplier = float('nan')
    if group.strip() not in PARAMETER_GROUPS or not (np.isfinite(multiplier) and multiplier > 0):
      raise ConfigError(
          f'config.optimizer.lr_multipliers: {item!r} is not GROUP=MULTIPLIER with GROUP one '
          f"of {', '.join(PARAMETER_GROUPS)} and MULTIPLIER > 0 (e.g. 'flow_refine=10')")
    multipliers[group.strip()] = multiplier
  return multipliers


def pretrain_fold(config: ml_collections.ConfigDict) -> str:
  """The one fold of `config.pretrain` whose model starts the run.

  Raises:
    ConfigError: the stage names other than one fold, or the config also has
      an `init_from`.
  """
  text = config.pretrain.get('folds', '')
  folds = [s.strip() for s in text.split(',') if s.strip()]
  if len(folds) != 1:
    raise ConfigError(f'config.pretrain.folds must name the one fold whose model starts this '
                      f'run (its held-out subject scores the pre-training), got {text!r}')
  if config.get('init_from', ''):
    raise ConfigError('config.pretrain and config.init_from both say where the weights start: '
                      'keep one')
  return folds[0]


def pretrain_stage(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.pretrain` as the config of a run of its own (sharing `data_dir`)."""
  stage = config.pretrain.copy_and_resolve_references()
  if not stage.data_dir:
    stage.data_dir = config.data_dir
  return stage


def _dataset_names(dataset: str) -> list[str]:
  try:
    return sources.dataset_names(dataset)
  except ValueError as e:
    raise ConfigError(str(e)) from e


def collection_alignment(names: list[str]) -> str:
  """The alignment every dataset of a collection was built with.

  Raises:
    ConfigError: the datasets were aligned differently.
  """
  found = {n: builder.dataset_alignment(n) for n in names}
  if len(set(found.values())) > 1:
    raise ConfigError(f'config.dataset mixes alignments {found}; a collection needs one '
                      "(e.g. every dataset's 3class config, or every '_per_clip' one)")
  return next(iter(found.values()))


def create_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """`config.mesh`'s device mesh, its batch sizes checked against it."""
  try:
    mesh = sharding.create_mesh(config.mesh.num_devices)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if config.mesh.param_sharding not in sharding.PARAM_SHARDINGS:
    raise ConfigError(f'config.mesh.param_sharding must be one of {sharding.PARAM_SHARDINGS}, '
                      f'got {config.mesh.param_sharding!r}')
  if config.batch_size % mesh.size or config.eval_batch_size % mesh.size:
    raise ConfigError(f'config.batch_size={config.batch_size} and config.eval_batch_size='
                      f'{config.eval_batch_size} must be multiples of the {mesh.size} devices')
  return mesh


def validate(config: ml_collections.ConfigDict) -> None:
  """Every check of `config` that needs no data; `config.pretrain`'s stage
  too, so that neither config's mistake waits for the other's training.

  Raises:
    ConfigError: one line naming the first field that cannot work.
  """
  has_start = bool(config.get('init_from', ''))
  if config.get('pretrain'):
    pretrain_fold(config)
    try:
      validate(pretrain_stage(config))
    except ConfigError as e:
      raise ConfigError(f'config.pretrain: {e}') from e
    has_start = True  # The stage's model becomes init_from.
  parse_seeds(config.get('seeds', ''))
  if config.model.compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"config.model.compute_dtype must be 'float32' or 'bfloat16', got "
                      f'{config.model.compute_dtype!r}')
  if config.eval_unit not in EVAL_UNITS:
    raise ConfigError(f'config.eval_unit must be one of {EVAL_UNITS}, got {config.eval_unit!r}')
  try:
    losses.flow_loss_options(config.loss)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if config.optimizer.schedule not in SCHEDULES:
    raise ConfigError(f"config.optimizer.schedule must be 'constant' or 'cosine', got "
                      f'{config.optimizer.schedule!r}')
  parse_lr_multipliers(config.optimizer.get('lr_multipliers', ''))
  try:
    input_pipeline.training_crop_offsets(clip_format.CROP_SIZE, config.augment.crop_jitter,
                                         config.augment.scale)
  except ValueError as e:
    raise ConfigError(f'config.augment.{e}') from e
  for field in ('batch_size', 'eval_batch_size', 'num_train_steps'):
    # num_train_steps 0 is evaluation only: config.init_from's weights scored.
    least = 0 if field == 'num_train_steps' else 1
    if config[field] < least:
      raise ConfigError(f'config.{field} must be at least {least}, got {config[field]}')
  if not 0 <= config.loss.flow_clips_per_step <= config.batch_size:
    raise ConfigError(f'config.loss.flow_clips_per_step must be from 0 (every clip) to '
                      f'config.batch_size={config.batch_size}, got '
                      f'{config.loss.flow_clips_per_step}')
  if config.num_train_steps == 0 and not has_start:
    raise ConfigError('config.num_train_steps=0 scores config.init_from\'s weights without '
                      'training, and config.init_from is empty: name a checkpoint (a fold model '
                      'directory or a python -m mol_jax.convert output), or train at least 1 step')
  names = _dataset_names(config.dataset)
  try:
    sources.check_builder_configs(config.dataset)
    protocols.check(config.protocol, names)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  collection_alignment(names)
  create_mesh(config)


def resolve(config: ml_collections.ConfigDict) -> Experiment:
  """The `Experiment` a validated config names, its data built if missing.

  Raises:
    ConfigError: what the data shows cannot work (no exact motion for
      `flow_target='true_flow'`, datasets with different classes, a fold
      `config.folds` names that the protocol does not have).
    FileNotFoundError: a set that is not built (and not buildable here).
    sources.BuildError: building a missing synthetic set failed.
  """
  names = _dataset_names(config.dataset)
  data_dir = config.data_dir or None
  sources.ensure_built(names, data_dir, config.build_if_missing)
  if (losses.flow_loss_options(config.loss).target == 'true_flow'
      and not sources.has_truth(config.dataset, data_dir)):
    raise ConfigError(f"config.loss.flow_target='true_flow' needs the exact motion, which "
                      f'only synthetic_me records carry; {config.dataset} has none: use '
                      "config.loss.flow_target='flow' (the TV-L1 targets)")
  try:
    folds = protocols.folds(config.protocol, config.dataset, data_dir)
    class_names = sources.class_names(config.dataset, data_dir)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  every = [f.name for f in folds]
  chosen = [s.strip() for s in config.folds.split(',') if s.strip()] or every
  unknown = sorted(set(chosen) - set(every))
  if unknown:
    raise ConfigError(f'config.folds names folds {unknown} that {config.protocol} over '
                      f'{config.dataset} does not have; its folds are {every}')
  return Experiment(dataset=config.dataset, names=tuple(names), data_dir=data_dir,
                    alignment=collection_alignment(names), folds=tuple(folds),
                    chosen=frozenset(chosen), class_names=tuple(class_names),
                    mesh=create_mesh(config))
