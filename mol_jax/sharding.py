"""Device mesh and shardings for data-parallel (optionally FSDP) training.

One mesh axis, `data`, spans every device of every process. Batches are split
along it; parameters are replicated by default, or (`param_sharding='fsdp'`)
each large parameter is split along its largest axis that the device count
divides, which XLA turns into all-gathers in the step.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'
# Parameters smaller than this stay replicated even under FSDP.
FSDP_MIN_SIZE = 2 ** 18
# `config.mesh.param_sharding`: every parameter on every device, or the large ones split.
PARAM_SHARDINGS = ('replicated', 'fsdp')


def create_mesh(num_devices: int = -1) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over `num_devices` devices (-1: all of them)."""
  total = jax.device_count()
  n = total if num_devices in (-1, None) else num_devices
  if n < 1 or n > total:
    raise ValueError(f'config.mesh.num_devices={num_devices}, but {total} devices are visible')
  devices = np.asarray(jax.devices()[:n])
  return jax.sharding.Mesh(devices, (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _fsdp_spec(shape: tuple[int, ...], size: int) -> P:
  if int(np.prod(shape, dtype=np.int64)) < FSDP_MIN_SIZE:
    return P()
  for axis in np.argsort(shape)[::-1]:
    if shape[axis] % size == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state: Any, mesh: jax.sharding.Mesh, mode: str = 'replicated'):
  """A sharding for every leaf of a (train) state pytree."""
  if mode == 'replicated':
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
  if mode == 'fsdp':
    size = mesh.shape[DATA_AXIS]
    return jax.tree.map(
        lambda x: NamedSharding(mesh, _fsdp_spec(tuple(getattr(x, 'shape', ())), size)),
        abstract_state)
  raise ValueError(f'config.mesh.param_sharding must be one of {PARAM_SHARDINGS}, got {mode!r}')


def global_batch(local_batch: dict[str, Any], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This process's numpy share -> global arrays split over `data`.

  Non-array entries (e.g. `video_id` strings) stay on the host.
  """
  sharding = batch_sharding(mesh)
  out = {}
  for key, value in local_batch.items():
    if isinstance(value, np.ndarray) and value.dtype != object:
      out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out
