"""Times MOL's jitted train step and eval forward on this machine.

    python -m mol_jax.tools.benchmark --batch_sizes=1,8 [--config=default] [--flow_pairs=7]
        [--flow_clips=0]
        [--repeats=5] [--eval_with_flow=1] [--out=benchmark.json]
        [--append_to=docs/PERFORMANCE.md]

`--config` names a file of `configs/` (default: the official recipe); the
flags after it override its loss and evaluation settings.

For each batch size: compile time, median and range of repeated runs after a
warm-up, XLA's FLOP and byte counts of the compiled program, its memory
(arguments + outputs + temporaries, from XLA's buffer assignment), and
achieved FLOP/s as a fraction of a float32 matmul timed in the same run (the
machine's practical peak). Random inputs: speed does not depend on the data.
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import gzip
import json
import os
import platform
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax import clip_format, config_files, sharding, train
from mol_jax import inference
from mol_jax.model import conv
from mol_jax.model import layers as layers_lib
from mol_jax.model import mol
from mol_jax.tools import hlo_traffic


def _median_seconds(fn, x: jax.Array, repeats: int) -> float:
  """Median wall time of `fn(x)` after one warm-up call."""
  fn(x).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn(x).block_until_ready()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def matmul_peak(size: int | None = None, dtype: str = 'float32', repeats: int = 5) -> float:
  """FLOP/s of a jitted [size, size] matmul in `dtype` (median of repeats).

  Random operands: zeros or ones can run faster than real data. The default
  size is 2048 on a CPU and 8192 on an accelerator, large enough to fill it.
  """
  if size is None:
    size = 2048 if jax.default_backend() == 'cpu' else 8192
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype)
  return 2 * size ** 3 / _median_seconds(jax.jit(lambda x: x @ x), a, repeats)


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
  """Bytes/s of a jitted elementwise pass (read + write) over a large array."""
  x = jnp.ones((megabytes * 2 ** 20 // 4,), jnp.float32)
  return 2 * x.nbytes / _median_seconds(jax.jit(lambda v: v * 1.5 + 1.0), x, repeats)


_VECTOR_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile',
                 'asimd', 'sve')


def vector_extensions() -> str:
  """The CPU's vector instruction sets that set its float32 and bf16 rates
  (this machine kind has AVX2 only on some days, AVX-512 with bf16 on others)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith(('flags', 'Features')):
          have = set(line.split(':', 1)[1].split())
          return ' '.join(flag for flag in _VECTOR_FLAGS if flag in have)
  except OSError:
    pass
  return ''


def _cpu_name() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _valid_taps(size: int, out_size: int, window: int, stride: int, pad_lo: int,
                lhs_dilation: int, rhs_dilation: int) -> int:
  """(output position, kernel tap) pairs of one spatial dimension that read a
  real input element, not padding or a hole of input dilation."""
  last = (size - 1) * lhs_dilation
  count = 0
  for o in range(out_size):
    for k in range(window):
      pos = o * stride + k * rhs_dilation - pad_lo
      count += 0 <= pos <= last and pos % lhs_dilation == 0
  return count


def _conv_flops(eqn) -> float:
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  out = eqn.outvars[0].aval.shape
  p = eqn.params
  lhs_spec, rhs_spec, out_spec = p['dimension_numbers']
  lhs_dil = p['lhs_dilation'] or (1,) * (len(lhs) - 2)
  rhs_dil = p['rhs_dilation'] or (1,) * (len(lhs) - 2)
  taps = 1
  for i in range(len(lhs) - 2):
    taps *= _valid_taps(lhs[lhs_spec[2 + i]], out[out_spec[2 + i]], rhs[rhs_spec[2 + i]],
                        p['window_strides'][i], p['padding'][i][0], lhs_dil[i], rhs_dil[i])
  return 2.0 * out[out_spec[0]] * out[out_spec[1]] * rhs[rhs_spec[1]] * taps


def jaxpr_flops(jaxpr) -> float:
  """FLOPs of the matmuls and convolutions of a (closed) jaxpr, nested
  calls and scan bodies included (2 per multiply-add; convolutions count
  only the taps that meet real input, as XLA's cost analysis does).

  Unlike XLA's count of a compiled program, this does not depend on the
  backend: on GPU, XLA leaves out the convolutions it hands to cuDNN.
  """
  jaxpr = getattr(jaxpr, 'jaxpr', jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs[d] for d in lhs_contract])
    elif name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    times = eqn.params.get('length', 1) if name == 'scan' else 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        if hasattr(sub, 'eqns') or hasattr(getattr(sub, 'jaxpr', None), 'eqns'):
          total += times * jaxpr_flops(sub)
  return total


def _timed(fn, args, repeats, threads_state: bool, with_traffic: bool = True):
  """Compile, warm up, then time `repeats` calls. With `threads_state` the
  first output is fed back as the first argument (the train step donates
  its state, as in training)."""
  t = time.perf_counter()
  traced = fn.trace(*args)
  compiled = traced.lower().compile()
  compile_s = time.perf_counter() - t
  flops = jaxpr_flops(traced.jaxpr)
  cost = compiled.cost_analysis() or {}
  bytes_accessed = float(cost.get('bytes accessed', float('nan')))
  traffic = hlo_traffic.traffic(compiled.as_text()) if with_traffic else None
  memory = compiled.memory_analysis()
  memory_bytes = float('nan') if memory is None else float(
      memory.argument_size_in_bytes + memory.output_size_in_bytes
      + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
  times = []
  for i in range(repeats + 1):
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    if i:
      times.append(time.perf_counter() - t)
    if threads_state:
      args = (out[0],) + tuple(args[1:])
  return compile_s, flops, bytes_accessed, memory_bytes, times, traffic


def _predict_row(graphdef, state, video: np.ndarray, repeats: int, eval_row: dict,
                 compute_peak: float) -> dict:
  """The public prediction path on the same clips: `Predictor.predict`,
  numpy in and numpy out (what `mol_jax.predict` and the notebooks call).
  Its arithmetic is the eval forward's (the eval step adds only per-example
  errors), so its fraction of the peak uses that row's FLOPs."""
  predictor = inference.Predictor(nnx.merge(graphdef, state.params, state.batch_stats))
  t = time.perf_counter()
  predictor.predict(video)
  compile_s = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    predictor.predict(video)
    times.append(time.perf_counter() - t)
  median, flops = float(np.median(times)), eval_row['gflop'] * 1e9
  print(f"{'predict':13s} batch {len(video):3d}: {median:8.3f} s "
        f"[{min(times):.3f}, {max(times):.3f}], first call {compile_s:6.1f} s, "
        f"{median / eval_row['median_s']:.2f}x the eval forward "
        f"({100 * flops / median / compute_peak:4.1f}% of matmul)", flush=True)
  return {'name': 'predict', 'batch_size': len(video), 'compile_s': compile_s,
          'median_s': median, 'min_s': float(min(times)), 'max_s': float(max(times)),
          'gflop': eval_row['gflop'], 'gbytes_accessed': float('nan'),
          'gbytes_sliced': float('nan'),
          'memory_gb': float('nan'), 'gflop_per_s': flops / median / 1e9,
          'fraction_of_matmul_peak': flops / median / compute_peak}


def profile(fn, args, trace_dir: str, steps: int = 3, top: int = 25) -> dict:
  """Traces `steps` calls of `fn` (train-step style: state fed back) into
  `trace_dir` and summarises the device's operations (`summarise_trace`)."""
  out = jax.block_until_ready(fn(*args))  # warm-up, outside the trace
  args = (out[0],) + tuple(args[1:])
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    for _ in range(steps):
      out = jax.block_until_ready(fn(*args))
      args = (out[0],) + tuple(args[1:])
  return summarise_trace(trace_dir, steps, top)


# Events of XLA's CPU runtime that enclose or wait for the operations.
_RUNTIME_EVENTS = ('ThunkExecutor', 'SlinkyThreadPool', 'ThreadpoolListener')
# (kind, words of an HLO operation's name), first match wins: a fusion is
# named after the operations it fuses, so a matmul fusion that also slices
# counts as a matmul.
_OPERATION_KINDS = (
    ('matrix products', ('ynn', 'xnn', 'onednn', 'dot', 'gemm', 'convolution')),
    ('gather, scatter, top-k', ('gather', 'scatter', 'top_k', 'topk', 'sort')),
    ('concatenations', ('concatenate',)),
    ('slices and pads', ('slice', 'pad')),
    ('copies and transposes', ('copy', 'transpose')),
)


def operation_kind(name: str) -> str:
  """The kind of an HLO operation from its name, as grouped in docs/PERFORMANCE.md."""
  words = name.lower()
  for kind, keys in _OPERATION_KINDS:
    if any(k in words for k in keys):
      return kind
  return 'elementwise and reductions'


def summarise_trace(trace_dir: str, steps: int, top: int = 25) -> dict:
  """Device operations of a Perfetto trace under `trace_dir`, per step.

  Device lanes are the processes named after a GPU or TPU; on a CPU (no such
  lane) the host's XLA operation threads are used instead.

  Returns:
    {'top': the `top` busiest operations by name (op, seconds_per_step,
    share_of_busy, calls_per_step), 'by_kind': seconds per step of every
    operation grouped by `operation_kind`, busiest first}.
  """
  paths = glob.glob(os.path.join(trace_dir, '**', '*perfetto_trace.json.gz'), recursive=True)
  if not paths:
    raise FileNotFoundError(f'no perfetto_trace.json.gz under {trace_dir}')
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  process = {e['pid']: e['args'].get('name', '') for e in events
             if e.get('ph') == 'M' and e.get('name') == 'process_name'}
  thread = {(e['pid'], e['tid']): e['args'].get('name', '') for e in events
            if e.get('ph') == 'M' and e.get('name') == 'thread_name'}
  device = {pid for pid, name in process.items() if 'GPU' in name or 'TPU' in name}
  # A device process has a lane of HLO operations ("XLA Ops") beside lanes of
  # kernels and of whole modules that cover the same time: count one.
  ops_lanes = {key for key, name in thread.items() if key[0] in device and 'XLA Ops' in name}

  def on_device(e):
    if ops_lanes:
      return (e['pid'], e['tid']) in ops_lanes
    if device:
      return e['pid'] in device and 'Modules' not in thread.get((e['pid'], e['tid']), '')
    return 'xla' in thread.get((e['pid'], e['tid']), '').lower()

  totals = collections.defaultdict(float)
  counts = collections.Counter()
  for e in events:
    if (e.get('ph') == 'X' and 'dur' in e and on_device(e)
        and not e['name'].startswith(_RUNTIME_EVENTS)):
      totals[e['name']] += e['dur'] * 1e-6 / steps
      counts[e['name']] += 1
  busy = sum(totals.values())
  rows = [{'op': name, 'seconds_per_step': sec, 'share_of_busy': sec / busy if busy else 0.0,
           'calls_per_step': counts[name] / steps}
          for name, sec in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]
  print(f'device busy {1e3 * busy:.2f} ms per step, {len(totals)} distinct operations; top:')
  for r in rows:
    print(f"  {1e3 * r['seconds_per_step']:8.3f} ms {100 * r['share_of_busy']:5.1f}% "
          f"x{r['calls_per_step']:<5g} {r['op'][:110]}")
  kinds = collections.defaultdict(float)
  for name, sec in totals.items():
    kinds[operation_kind(name)] += sec
  kinds = dict(sorted(kinds.items(), key=lambda kv: -kv[1]))
  print('by kind:')
  for kind, sec in kinds.items():
    print(f'  {1e3 * sec:8.1f} ms {100 * sec / busy:5.1f}% {kind}')
  return {'top': rows, 'by_kind': kinds}


# The flow head's convolutions whose backward pass is most of the training
# step; their shapes are read off the model (`flow_layers`).
FLOW_LAYER_NAMES = ('conv1', 'conv2', 'conv3', 'conv3_1', 'conv4', 'conv4_1', 'deconv2',
                    'deconv1', 'deconv0', 'predict_flow1', 'predict_flow0')


def flow_layers(names: Sequence[str] = FLOW_LAYER_NAMES) -> list[tuple]:
  """(name, map size, in, out, kernel, stride, padding, transposed) of flow-head layers.

  Traced from one forward pass of the model's abstract shapes (nothing is
  computed), so the benchmark times the shapes the network really has.
  """
  graphdef, state = nnx.split(mol.abstract_model())
  found: dict[str, tuple] = {}
  module_names: dict[int, str] = {}
  originals = {cls: cls.__call__ for cls in (layers_lib.Conv2d, layers_lib.ConvTranspose2d)}

  def recording(cls):
    def call(module, x, *args, **kwargs):
      name = module_names.get(id(module))
      if name in names and name not in found:
        k, _, _, cout = module.kernel.shape
        transposed = cls is layers_lib.ConvTranspose2d
        found[name] = (name, x.shape[-2], x.shape[-1], cout, k,
                       2 if transposed else module.stride, 1 if transposed else module.padding,
                       transposed)
      return originals[cls](module, x, *args, **kwargs)
    return call

  def forward(state, video):
    model = nnx.merge(graphdef, state)
    module_names.update({id(node): str(path[0]) for path, node in nnx.iter_graph(model.flownet)
                         if path and isinstance(node, tuple(originals))})
    return model(video, train=False, with_flow=True)

  try:
    for cls in originals:
      cls.__call__ = recording(cls)
    jax.eval_shape(forward, state, jax.ShapeDtypeStruct(
        (1, clip_format.NUM_FRAMES, clip_format.CROP_SIZE, clip_format.CROP_SIZE, 1), jnp.float32))
  finally:
    for cls, call in originals.items():
      cls.__call__ = call
  missing = [n for n in names if n not in found]
  if missing:
    raise ValueError(f'the flow head has no convolution named {missing}')
  return [found[n] for n in names]


def layers(batch_size: int, impls=('xla', 'auto'), repeats: int = 3,
           dtype: str = 'float32') -> list[dict]:
  """Forward + backward time of each flow-head convolution per implementation.

  `batch_size` counts frame pairs (8 clips x 7 pairs = 56 in the official step).
  """
  rows = []
  key = jax.random.PRNGKey(0)
  for name, size, cin, cout, k, stride, pad, transposed in flow_layers():
    x = jax.random.normal(key, (batch_size, size, size, cin), dtype)
    w = (jax.random.normal(key, (k, k, cin, cout)) * 0.01).astype(dtype)
    for impl in impls:
      if impl == 'im2col' and transposed:
        continue  # a transposed convolution has no input-side patch path
      if transposed:
        fn = functools.partial(conv.conv_transpose2d, impl=impl)
      elif impl == 'cols' and stride != 1:
        continue
      else:
        fn = functools.partial(conv.conv2d, stride=stride, padding=pad, impl=impl)
      grad = jax.jit(jax.grad(
          lambda x, w, fn=fn: jnp.sum(fn(x, w).astype(jnp.float32) ** 2), argnums=(0, 1)))
      _, flops, _, _, times, _ = _timed(grad, (x, w), repeats, False, with_traffic=False)
      median = float(np.median(times))
      rows.append({'layer': name, 'impl': impl, 'median_s': median, 'gflop': flops / 1e9})
      print(f'{name:14s} {impl:7s} {1e3 * median:9.1f} ms {flops / median / 1e9:6.1f} GFLOP/s',
            flush=True)
  return rows


def _random_batch(batch_size: int, num_classes: int, mesh) -> tuple[dict, dict]:
  """(local numpy batch, global batch) of random clips with every target."""
  rng = np.random.default_rng(0)
  local = {
      'video': rng.standard_normal((batch_size, 8, 128, 128, 1)).astype(np.float32),
      'flow': rng.standard_normal((batch_size, 7, 128, 128, 2)).astype(np.float32),
      'landmarks': rng.uniform(20, 100, (batch_size, 7, 68, 2)).astype(np.float32),
      'label': rng.integers(0, num_classes, batch_size).astype(np.int32),
      'mask': np.ones(batch_size, np.float32),
  }
  return local, sharding.global_batch(local, mesh)


def _load_config(name: str):
  """The config `name`: a config file's path, or the name of a file of the
  checkout's `configs/` (`default`, `demo`, ...), from any working directory."""
  path = name if name.endswith('.py') else os.path.join(
      os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
      'configs', f'{name}.py')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no config file {path}: --config takes a config file or the name '
                            'of a file of the checkout\'s configs/ without .py')
  return config_files.load(path)


def run(batch_sizes, flow_pairs: int | None = None, repeats: int = 5, num_classes: int = 3,
        eval_with_flow: bool | None = None, compute_dtype: str | None = None,
        config_name: str = 'default', profile_dir: str = '',
        traffic_breakdown: bool = False, flow_clips: int | None = None) -> dict:
  """Times the steps of `configs/<config_name>.py`; None keeps the config's value.

  With `profile_dir`, the train step at the last batch size is also traced
  there and its busiest device operations are listed; with
  `traffic_breakdown`, its memory traffic is printed by operation
  (`hlo_traffic`).
  """
  peak = matmul_peak()
  bandwidth = memory_bandwidth()
  config = _load_config(config_name)
  if flow_pairs is not None:
    config.loss.flow_pairs_per_step = flow_pairs
  if flow_clips is not None:
    config.loss.flow_clips_per_step = flow_clips
  if eval_with_flow is not None:
    config.eval_with_flow = eval_with_flow
  if compute_dtype is not None:
    config.model.compute_dtype = compute_dtype
  # The step's fraction is taken of the matmul peak in its own compute dtype
  # (a GPU's bfloat16 matrix units are several times its float32 rate).
  compute_peak = peak
  if config.model.compute_dtype == 'bfloat16':
    compute_peak = matmul_peak(dtype='bfloat16')
  mesh = sharding.create_mesh(1)
  tx = train.create_optimizer(config)
  start = time.perf_counter()
  graphdef, state = train.create_train_state(config, num_classes, 0, tx)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - start
  print(f'model initialisation (first in this process): {init_s:.1f} s', flush=True)
  rows = []
  for batch_size in batch_sizes:
    steps = train.Steps(config, graphdef, tx, state, mesh)
    placed = steps.place(jax.tree.map(lambda x: x.copy(), state))  # donated below
    local, batch = _random_batch(batch_size, num_classes, mesh)
    mean_landmarks = jnp.asarray(local['landmarks'].mean(0))
    for name, fn, args, threads_state in (
        ('eval_forward', steps.eval, (placed, batch, mean_landmarks), False),
        ('train_step', steps.train, (placed, batch), True)):
      compile_s, flops, bytes_accessed, memory_bytes, times, traffic = _timed(
          fn, args, repeats, threads_state)
      median = float(np.median(times))
      if name == 'train_step':
        train_traffic = traffic
      rows.append({'name': name, 'batch_size': batch_size, 'compile_s': compile_s,
                   'median_s': median, 'min_s': float(min(times)), 'max_s': float(max(times)),
                   'gflop': flops / 1e9, 'gbytes_accessed': bytes_accessed / 1e9,
                   'gbytes_sliced': traffic.sliced_bytes / 1e9,
                   'memory_gb': memory_bytes / 1e9, 'gflop_per_s': flops / median / 1e9,
                   'fraction_of_matmul_peak': flops / median / compute_peak})
      print(f"{name:13s} batch {batch_size:3d}: {median:8.3f} s "
            f"[{min(times):.3f}, {max(times):.3f}], compile {compile_s:6.1f} s, "
            f"{flops / 1e9:8.1f} GFLOP, {flops / median / 1e9:6.1f} GFLOP/s "
            f"({100 * flops / median / compute_peak:4.1f}% of matmul)", flush=True)
    # The public path always estimates the flow, in float32.
    if config.eval_with_flow and config.model.compute_dtype == 'float32':
      rows.append(_predict_row(graphdef, state, local['video'], repeats, rows[-2],
                               compute_peak))
  trace = {'top': [], 'by_kind': {}}
  if profile_dir:
    fresh = steps.place(jax.tree.map(lambda x: x.copy(), state))  # `placed` was donated
    trace = profile(steps.train, (fresh, batch), profile_dir)
  if traffic_breakdown:
    print(hlo_traffic.markdown(train_traffic), flush=True)
  return {
      'machine': {'platform': platform.platform(), 'processor': _cpu_name(),
                  'vector_extensions': vector_extensions(),
                  'cpu_count': os.cpu_count(),
                  'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
                  'device_kind': jax.devices()[0].device_kind,
                  'jax': jax.__version__},
      'matmul_peak_gflop_per_s': peak / 1e9,
      'compute_dtype_matmul_peak_gflop_per_s': compute_peak / 1e9,
      'memory_gb_per_s': bandwidth / 1e9,
      'init_s': init_s,
      'config': config_name,
      'of_weight': config.loss.of_weight,
      'ldm_weight': config.loss.ldm_weight,
      'flow_pairs_per_step': config.loss.flow_pairs_per_step,
      'flow_clips_per_step': config.loss.flow_clips_per_step,
      'eval_with_flow': config.eval_with_flow,
      'compute_dtype': config.model.compute_dtype,
      'repeats': repeats,
      'results': rows,
      'profile_top_ops': trace['top'],
      'profile_seconds_by_kind': trace['by_kind'],
  }


def _cell(*values: float, digits: int) -> str:
  """A table cell of `values`: blank where the row has no such measurement (NaN)."""
  if any(np.isnan(v) for v in values):
    return ''
  return '; '.join(f'{v:.{digits}f}' for v in values)


def markdown(result: dict) -> str:
  """The result as a dated Markdown section (for docs/PERFORMANCE.md)."""
  m = result['machine']
  lines = [
      f"### {time.strftime('%Y-%m-%d')}: {m['backend']}, {len(m['devices'])} device(s)"
      f"{'' if m['backend'] == 'cpu' else ' ' + m.get('device_kind', '')}, "
      f"{m['processor']}, {m['cpu_count']} CPU cores"
      + (f", {m['vector_extensions']}" if m.get('vector_extensions') else ''),
      '',
      f"`python -m mol_jax.tools.benchmark` with configs/{result['config']}.py, "
      f"of_weight={result['of_weight']}, ldm_weight={result['ldm_weight']}, "
      f"flow_pairs_per_step={result['flow_pairs_per_step']}, "
      f"flow_clips_per_step={result['flow_clips_per_step']}, "
      f"eval_with_flow={result['eval_with_flow']}, compute {result['compute_dtype']}, "
      f"{result['repeats']} timed runs after a "
      f"warm-up; jax {m['jax']}; float32 matmul peak measured in the same run: "
      f"{result['matmul_peak_gflop_per_s']:.1f} GFLOP/s"
      + ('' if result['compute_dtype'] != 'bfloat16' else
         f", bfloat16 {result['compute_dtype_matmul_peak_gflop_per_s']:.1f} GFLOP/s "
         '(the fractions below are of this one)')
      + f"; memory bandwidth (elementwise "
      f"read + write) {result['memory_gb_per_s']:.1f} GB/s; model initialisation "
      f"{result['init_s']:.1f} s.",
      '',
      '| step | batch | median s | range s | compile s | GFLOP | GB accessed '
      '(XLA; slices only) | memory GB | GFLOP/s | of matmul peak |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for r in result['results']:
    lines.append(
        f"| {r['name']} | {r['batch_size']} | {r['median_s']:.3f} | "
        f"{r['min_s']:.3f}-{r['max_s']:.3f} | {r['compile_s']:.1f} | {r['gflop']:.1f} | "
        f"{_cell(r['gbytes_accessed'], r['gbytes_sliced'], digits=1)} | "
        f"{_cell(r['memory_gb'], digits=2)} | "
        f"{r['gflop_per_s']:.1f} | "
        f"{100 * r['fraction_of_matmul_peak']:.0f}% |")
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--batch_sizes', default='1,8,32')
  parser.add_argument('--config', default='default',
                      help='a file of configs/ without .py (default: the official recipe)')
  parser.add_argument('--flow_pairs', type=int, default=None,
                      help="config.loss.flow_pairs_per_step (default: the config's; 7 = official)")
  parser.add_argument('--flow_clips', type=int, default=None,
                      help="config.loss.flow_clips_per_step (default: the config's; 0 = every "
                           'clip, official)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--eval_with_flow', type=int, default=None,
                      help="1: the eval forward computes flow for all 7 pairs (default: the "
                           "config's)")
  parser.add_argument('--compute_dtype', default=None, choices=('float32', 'bfloat16'))
  parser.add_argument('--out', default='', help='JSON file for the results')
  parser.add_argument('--profile', default='',
                      help='folder for a profiler trace of the train step at the last batch '
                           'size; its busiest device operations are printed')
  parser.add_argument('--traffic', action='store_true',
                      help="print the train step's memory traffic (last batch size) by "
                           'operation, as XLA counts it and counting only sliced reads')
  parser.add_argument('--append_to', default='',
                      help='Markdown file to append the table to (docs/PERFORMANCE.md)')
  parser.add_argument('--layers', default='',
                      help="instead: time each flow-head convolution's forward+backward "
                           "for these implementations, e.g. xla,im2col,cols,auto "
                           "(im2col: ordinary ones only)")
  args = parser.parse_args(argv)
  if args.layers:
    rows = layers(int(args.batch_sizes.split(',')[0]), tuple(args.layers.split(',')),
                  args.repeats, args.compute_dtype or 'float32')
    if args.out:
      with open(args.out, 'w') as f:
        json.dump(rows, f, indent=2)
    return
  try:
    result = run([int(b) for b in args.batch_sizes.split(',')], args.flow_pairs, args.repeats,
                 eval_with_flow=None if args.eval_with_flow is None else bool(args.eval_with_flow),
                 compute_dtype=args.compute_dtype, config_name=args.config,
                 profile_dir=args.profile, traffic_breakdown=args.traffic,
                 flow_clips=args.flow_clips)
  except FileNotFoundError as e:
    parser.exit(2, f'error: {e}\n')
  print(f"matmul peak: {result['matmul_peak_gflop_per_s']:.1f} GFLOP/s")
  table = markdown(result)
  print(table)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=2)
  if args.append_to:
    with open(args.append_to, 'a') as f:
      f.write('\n' + table)


if __name__ == '__main__':
  main()
