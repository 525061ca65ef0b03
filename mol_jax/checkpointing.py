"""Orbax checkpoints of MOL models, behind one small interface.

A checkpoint directory is an Orbax `CheckpointManager` directory whose steps
hold a `model` item (parameters and BatchNorm statistics as a nested dict)
and a `model_config` item (JSON: `num_classes`, `neighbor_num`,
`dropout_rate`, `use_fcc`, `use_ccc`, `flow_refinement`), so `restore_model`
rebuilds the model without a config file (a field a checkpoint predates
takes the official network's value).
An optional `metadata` item (JSON, e.g. `class_names`, `dataset`) says what
the model was trained on; `load_metadata` reads it ({} when absent).
Imported official weights are step 0; training adds its own items beside
these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import threading
import traceback
import warnings
from typing import Any, Iterator

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

from mol_jax.model import flow_refine
from mol_jax.model.mol import MOL, abstract_model


class CheckpointError(ValueError):
  """A checkpoint directory exists but cannot be read (truncated, corrupt)."""


def _innermost_message(error: BaseException) -> str:
  """The first line of the innermost cause: Orbax wraps TensorStore's
  precise message ("Error reading X ... byte range ...") in a generic one."""
  while (error.__cause__ or error.__context__) is not None:
    error = error.__cause__ or error.__context__
  line = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return line if len(line) <= 300 else line[:297] + '...'


def _raised_in_orbax(error: BaseException | None) -> bool:
  """Whether `error` or an exception it chains to was raised in Orbax's code."""
  while error is not None:
    if any(f'{os.sep}orbax{os.sep}' in frame.filename
           for frame in traceback.extract_tb(error.__traceback__)):
      return True
    error = error.__cause__ or error.__context__
  return False


def _is_abandoned_read(unraisable) -> bool:
  """A report of a read that outlived its failed restore.

  Orbax stops waiting at the first array that fails and closes its event
  loop; each TensorStore read still in flight then reports `Event loop is
  closed` from its own thread, and each unfinished read coroutine reports
  its GeneratorExit when it is collected: tracebacks before or after the
  error line, a different number on every run.
  """
  error = unraisable.exc_value
  if isinstance(error, RuntimeError) and str(error) == 'Event loop is closed':
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return any(frame.name == 'call_soon_threadsafe' for frame in frames)
  code = getattr(unraisable.object, 'cr_code', None)
  return (code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename
          and _raised_in_orbax(error))


class _UnretrievedReadFilter(logging.Filter):
  """Drops asyncio's `exception was never retrieved` for the other reads
  of a failed restore, logged whenever their futures are collected: Orbax's
  own, and TensorStore's (no Python frames; its messages begin with an absl
  status code such as `OUT_OF_RANGE: `)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if 'never retrieved' not in record.getMessage() or not record.exc_info:
      return True
    error = record.exc_info[1]
    return not (_raised_in_orbax(error) or re.match(r'[A-Z_]+: ', str(error)))


def _silence_abandoned_reads() -> None:
  """Drops the reports of a failed restore's other reads (and nothing
  else) for the rest of the process: they can come before the restore's
  own exception reaches us, so this is in place before any restore."""
  if getattr(sys.unraisablehook, 'drops_abandoned_reads', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _is_abandoned_read(unraisable):
      previous(unraisable)
  hook.drops_abandoned_reads = True
  sys.unraisablehook = hook
  logging.getLogger('asyncio').addFilter(_UnretrievedReadFilter())
  # A read coroutine that the failure left unstarted, when it is collected.
  warnings.filterwarnings('ignore', r"coroutine '_read\w*' was never awaited", RuntimeWarning)


@contextlib.contextmanager
def _readable(directory: str) -> Iterator[None]:
  """Turns any failure to read `directory` into one CheckpointError that
  names it (our own FileNotFoundError and CheckpointError pass through)."""
  _silence_abandoned_reads()
  try:
    yield
  except (FileNotFoundError, CheckpointError):
    raise
  except Exception as e:  # Orbax and TensorStore raise many types, bare Exception too.
    raise CheckpointError(
        f'{directory}: the checkpoint is damaged or incomplete ({_innermost_message(e)}); '
        'write it again (training, or python -m mol_jax.convert)') from e


@contextlib.contextmanager
def _ctrl_c_after_the_save() -> Iterator[None]:
  """Holds a Ctrl-C that arrives during the block until the block ends.

  Orbax's save starts threads that wait for the caller to create the step's
  temporary directories; a KeyboardInterrupt raised inside the save leaves
  them waiting on a barrier that never opens (minutes, then a traceback at
  exit). Held, the interrupt is raised as soon as the save has been handed
  to those threads, and `TrainCheckpointer.close` lets it finish.
  """
  if threading.current_thread() is not threading.main_thread():
    yield  # Signals are only delivered to the main thread.
    return
  received = []
  previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
  if received and callable(previous):
    previous(signal.SIGINT, received[0])
  elif received and previous == signal.SIG_DFL:
    raise KeyboardInterrupt


def model_config(model: MOL) -> dict[str, Any]:
  # Checkpoints from before the ablation switches have neither flag: the full
  # MOL; from before the flow refinement, no `flow_refinement`: the official
  # flow head alone. `abstract_model`'s defaults are those values.
  config = {'num_classes': model.num_classes, 'neighbor_num': model.neighbor_num,
            'dropout_rate': model.mer_3dcnn.dropout_rate, 'use_fcc': model.use_fcc,
            'use_ccc': model.use_ccc, 'flow_refinement': model.flow_refinement}
  if model.flow_refinement:
    config['flow_refinement_version'] = flow_refine.VERSION
  return config


def model_variables(model: MOL) -> dict:
  """Parameters and BatchNorm statistics as a nested dict of arrays."""
  return nnx.state(model, (nnx.Param, nnx.BatchStat)).to_pure_dict()


def save_model(directory: str, model: MOL, step: int = 0, overwrite: bool = False,
               metadata: dict[str, Any] | None = None) -> str:
  """Writes `model` as checkpoint `step` of `directory`; returns its path.

  `overwrite` replaces whatever `directory` holds (used for a fold's final
  model, which a resumed run may write again). `metadata` (JSON-serialisable,
  e.g. {'class_names': [...], 'dataset': 'casme2/5class'}) is stored beside
  the model and read back by `load_metadata`.
  """
  directory = os.path.abspath(directory)
  if overwrite:
    if jax.process_index() == 0:
      shutil.rmtree(directory, ignore_errors=True)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'rmtree {directory}')
  with ocp.CheckpointManager(directory) as manager:
    if step in manager.all_steps():
      raise FileExistsError(
          f'{directory} already holds checkpoint step {step}; choose another --out '
          'or delete it')
    items = {'model': ocp.args.StandardSave(model_variables(model)),
             'model_config': ocp.args.JsonSave(model_config(model))}
    if metadata is not None:
      items['metadata'] = ocp.args.JsonSave(dict(metadata))
    with _ctrl_c_after_the_save():
      manager.save(step, args=ocp.args.Composite(**items), force=True)
      manager.wait_until_finished()
  return os.path.join(directory, str(step))


def _resolve_step(manager: ocp.CheckpointManager, step: int | None) -> int | None:
  """`step`, or the latest one; None when the checkpoint does not hold it."""
  step = manager.latest_step() if step is None else step
  return step if step is not None and step in manager.all_steps() else None


def is_training_checkpoint_folder(directory: str) -> bool:
  """Whether `directory` holds a fold's resumable training checkpoints
  (`TrainCheckpointer`, WORKDIR/folds/<subject>/checkpoints), not a model.

  Training steps hold a `state` item and no `model_config`; a folder named
  `checkpoints` of a fold (beside its `model`, or under `folds/`) counts
  even before its first step is complete.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    return False
  steps = [os.path.join(directory, n) for n in os.listdir(directory) if n.isdigit()]
  if any(os.path.isdir(os.path.join(s, 'state'))
         and not os.path.isdir(os.path.join(s, 'model_config')) for s in steps):
    return True
  fold = os.path.dirname(directory)
  return (os.path.basename(directory) == 'checkpoints' and not steps and
          (os.path.isdir(os.path.join(fold, 'model'))
           or os.path.basename(os.path.dirname(fold)) == 'folds'))


def _checkpoint_dir(directory: str) -> str:
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'checkpoint directory not found: {directory}')
  if is_training_checkpoint_folder(directory):
    # The usual slip: the fold's folder holds `checkpoints` (resumable
    # training state) beside `model` (what inference loads).
    model = os.path.join(os.path.dirname(directory), 'model')
    later = ('' if os.path.isdir(model) else
             ' (not there yet: training writes it when the fold finishes)')
    raise CheckpointError(f'{directory}: this is a training checkpoint folder; the model is '
                          f'in ../model{later}')
  return directory


def restore_model(directory: str, step: int | None = None) -> MOL:
  """Restores a model written by `save_model` or by training.

  Args:
    directory: checkpoint directory.
    step: which step; default the latest.
  """
  directory = _checkpoint_dir(directory)
  with _readable(directory), ocp.CheckpointManager(directory) as manager:
    step = _existing_step(manager, step, directory, '; write one with python -m mol_jax.convert')
    config = manager.restore(step, args=ocp.args.Composite(
        model_config=ocp.args.JsonRestore()))['model_config']
    # A refinement without a version is version 1, from before it was recorded.
    version = config.pop('flow_refinement_version', 1)
    if config.get('flow_refinement') and version != flow_refine.VERSION:
      raise CheckpointError(
          f'{directory}: its flow refinement is version {version}, whose layers this '
          f'mol_jax no longer builds (version {flow_refine.VERSION} reads Lucas-Kanade '
          'estimates too); train the model again, or load it with the mol_jax that wrote it')
    abstract = abstract_model(**config)
    # Restore onto this process's first device, whatever topology wrote it
    # (e.g. a multi-host training run).
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        model_variables(abstract))
    restored = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.StandardRestore(target)))['model']
    # Every variable is a Param or a BatchStat and comes from the checkpoint:
    # an abstract model avoids running (and compiling) ~90 initialisers.
    model = abstract
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    state.replace_by_pure_dict(restored)
    nnx.update(model, state)
  return model


def checkpoint_step(directory: str, step: int | None = None) -> int:
  """The step `restore_model(directory, step)` reads (default the latest), e.g.
  to report where a run's starting weights came from.

  Raises:
    FileNotFoundError: no such directory, or no such step in it.
  """
  directory = _checkpoint_dir(directory)
  with _readable(directory), ocp.CheckpointManager(directory) as manager:
    return _existing_step(manager, step, directory)


def _existing_step(manager, step: int | None, directory: str, hint: str = '') -> int:
  """`_resolve_step`, or FileNotFoundError naming the steps there are."""
  found = _resolve_step(manager, step)
  if found is None:
    raise FileNotFoundError(
        f'no checkpoint{"" if step is None else f" step {step}"} in {directory} '
        f'(steps found: {list(manager.all_steps())}){hint}')
  return found


def load_metadata(directory: str, step: int | None = None) -> dict[str, Any]:
  """The `metadata` item of a checkpoint written by `save_model` ({} if none).

  Args:
    directory: checkpoint directory.
    step: which step; default the latest.
  """
  directory = _checkpoint_dir(directory)
  with _readable(directory), ocp.CheckpointManager(directory) as manager:
    step = _resolve_step(manager, step)
    if step is None:
      return {}
    if not os.path.isdir(os.path.join(directory, str(step), 'metadata')):
      return {}
    restored = manager.restore(step, args=ocp.args.Composite(
        metadata=ocp.args.JsonRestore()))['metadata']
  return dict(restored or {})


class TrainCheckpointer:
  """Resumable training checkpoints of one LOSO fold.

  Each step holds the train state (model, optimiser, step, RNG), the input
  iterator's position and a small JSON history, so a killed run restarts
  where it stopped and sees the same batches it would have seen.
  """

  def __init__(self, directory: str, save_every_steps: int, max_to_keep: int = 1):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(save_interval_steps=save_every_steps,
                                           max_to_keep=max_to_keep, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def restore_or(self, state: Any, data_iterator: Any,
                 shardings: Any = None) -> tuple[Any, Any, dict]:
    """Latest checkpoint if any, else `state` unchanged.

    Args:
      state: a template of the train state.
      data_iterator: restored in place to its saved position.
      shardings: where to put each restored leaf (default: like `state`).

    Returns:
      (state, data iterator state or None, history dict).
    """
    step = self._manager.latest_step()
    if step is None:
      return state, None, {}
    if shardings is None:
      shardings = jax.tree.map(lambda x: x.sharding, state)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            state, shardings)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ocp.args.JsonRestore(),
        history=ocp.args.JsonRestore()))
    data_state = restored['data'].get('iterator')
    if data_state is not None and data_iterator is not None:
      data_iterator.set_state(data_state)
    return restored['state'], data_state, restored['history'] or {}

  def save(self, step: int, state: Any, data_iterator: Any, history: dict) -> None:
    data = {'iterator': data_iterator.get_state() if data_iterator is not None else None}
    with _ctrl_c_after_the_save():
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=ocp.args.JsonSave(data),
          history=ocp.args.JsonSave(history)), force=True)

  def close(self, delete: bool = False) -> int | None:
    """Waits for the saves in flight and closes; returns the newest saved step (or None)."""
    self._manager.wait_until_finished()
    latest = self._manager.latest_step()
    self._manager.close()
    if delete and jax.process_index() == 0:
      shutil.rmtree(self.directory, ignore_errors=True)
    return latest
