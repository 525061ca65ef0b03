"""Times MOL's jitted train step and eval forward on this machine.

    python -m mol_jax.benchmark --batch_sizes=1,8 [--config=default] [--flow_pairs=7]
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
import functools
import importlib
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from mol_jax import sharding, train


def _median_seconds(fn, x: jax.Array, repeats: int) -> float:
  """Median wall time of `fn(x)` after one warm-up call."""
  fn(x).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn(x).block_until_ready()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of a jitted float32 [size, size] matmul (median of repeats)."""
  a = jnp.ones((size, size), jnp.float32)
  return 2 * size ** 3 / _median_seconds(jax.jit(lambda x: x @ x), a, repeats)


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
  """Bytes/s of a jitted elementwise pass (read + write) over a large array."""
  x = jnp.ones((megabytes * 2 ** 20 // 4,), jnp.float32)
  return 2 * x.nbytes / _median_seconds(jax.jit(lambda v: v * 1.5 + 1.0), x, repeats)


def _cpu_name() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _timed(fn, args, repeats, threads_state: bool):
  """Compile, warm up, then time `repeats` calls. With `threads_state` the
  first output is fed back as the first argument (the train step donates
  its state, as in training)."""
  t = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis() or {}
  flops = float(cost.get('flops', float('nan')))
  bytes_accessed = float(cost.get('bytes accessed', float('nan')))
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
  return compile_s, flops, bytes_accessed, memory_bytes, times


# (name, map size, in, out, kernel, stride, padding, transposed): the flow
# head's convolutions, whose backward pass is most of the training step.
FLOW_LAYERS = (
    ('conv1', 128, 1, 64, 6, 2, 2, False), ('conv2', 64, 64, 128, 4, 2, 1, False),
    ('conv3', 32, 128, 256, 2, 2, 0, False), ('conv3_1', 16, 513, 256, 3, 1, 1, False),
    ('conv4', 16, 256, 512, 3, 2, 1, False), ('conv4_1', 8, 512, 512, 3, 1, 1, False),
    ('deconv2', 16, 386, 128, 4, 2, 1, True), ('deconv1', 32, 258, 64, 4, 2, 1, True),
    ('deconv0', 64, 130, 32, 4, 2, 1, True), ('predict_flow1', 64, 130, 2, 3, 1, 1, False),
    ('predict_flow0', 128, 35, 2, 3, 1, 1, False),
)


def layers(batch_size: int, impls=('xla', 'auto'), repeats: int = 3) -> list[dict]:
  """Forward + backward time of each flow-head convolution per implementation.

  `batch_size` counts frame pairs (8 clips x 7 pairs = 56 in the official step).
  """
  from mol_jax import conv  # pylint: disable=g-import-not-at-top
  rows = []
  key = jax.random.PRNGKey(0)
  for name, size, cin, cout, k, stride, pad, transposed in FLOW_LAYERS:
    x = jax.random.normal(key, (batch_size, size, size, cin))
    w = jax.random.normal(key, (k, k, cin, cout)) * 0.01
    for impl in impls:
      if transposed:
        fn = functools.partial(conv.conv_transpose2d, impl='cols' if impl == 'im2col' else impl)
      elif impl == 'cols' and stride != 1:
        continue
      else:
        fn = functools.partial(conv.conv2d, stride=stride, padding=pad, impl=impl)
      grad = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
      _, flops, _, _, times = _timed(grad, (x, w), repeats, False)
      median = float(np.median(times))
      rows.append({'layer': name, 'impl': impl, 'median_s': median, 'gflop': flops / 1e9})
      print(f'{name:14s} {impl:7s} {1e3 * median:9.1f} ms {flops / median / 1e9:6.1f} GFLOP/s',
            flush=True)
  return rows


def run(batch_sizes, flow_pairs: int | None = None, repeats: int = 5, num_classes: int = 3,
        eval_with_flow: bool | None = None, compute_dtype: str | None = None,
        config_name: str = 'default') -> dict:
  """Times the steps of `configs/<config_name>.py`; None keeps the config's value."""
  peak = matmul_peak()
  bandwidth = memory_bandwidth()
  config = importlib.import_module(f'configs.{config_name}').get_config()
  if flow_pairs is not None:
    config.loss.flow_pairs_per_step = flow_pairs
  if eval_with_flow is not None:
    config.eval_with_flow = eval_with_flow
  if compute_dtype is not None:
    config.model.compute_dtype = compute_dtype
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
    rng = np.random.default_rng(0)
    local = {
        'video': rng.standard_normal((batch_size, 8, 128, 128, 1)).astype(np.float32),
        'flow': rng.standard_normal((batch_size, 7, 128, 128, 2)).astype(np.float32),
        'landmarks': rng.uniform(20, 100, (batch_size, 7, 68, 2)).astype(np.float32),
        'label': rng.integers(0, num_classes, batch_size).astype(np.int32),
        'mask': np.ones(batch_size, np.float32),
    }
    batch = sharding.global_batch(local, mesh)
    for name, fn, threads_state in (('eval_forward', steps.eval, False),
                                    ('train_step', steps.train, True)):
      compile_s, flops, bytes_accessed, memory_bytes, times = _timed(
          fn, (placed, batch), repeats, threads_state)
      median = float(np.median(times))
      rows.append({'name': name, 'batch_size': batch_size, 'compile_s': compile_s,
                   'median_s': median, 'min_s': float(min(times)), 'max_s': float(max(times)),
                   'gflop': flops / 1e9, 'gbytes_accessed': bytes_accessed / 1e9,
                   'memory_gb': memory_bytes / 1e9, 'gflop_per_s': flops / median / 1e9,
                   'fraction_of_matmul_peak': flops / median / peak})
      print(f"{name:13s} batch {batch_size:3d}: {median:8.3f} s "
            f"[{min(times):.3f}, {max(times):.3f}], compile {compile_s:6.1f} s, "
            f"{flops / 1e9:8.1f} GFLOP, {flops / median / 1e9:6.1f} GFLOP/s "
            f"({100 * flops / median / peak:4.1f}% of matmul)", flush=True)
  return {
      'machine': {'platform': platform.platform(), 'processor': _cpu_name(),
                  'cpu_count': os.cpu_count(),
                  'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
                  'jax': jax.__version__},
      'matmul_peak_gflop_per_s': peak / 1e9,
      'memory_gb_per_s': bandwidth / 1e9,
      'init_s': init_s,
      'config': config_name,
      'of_weight': config.loss.of_weight,
      'ldm_weight': config.loss.ldm_weight,
      'flow_pairs_per_step': config.loss.flow_pairs_per_step,
      'eval_with_flow': config.eval_with_flow,
      'compute_dtype': config.model.compute_dtype,
      'repeats': repeats,
      'results': rows,
  }


def markdown(result: dict) -> str:
  """The result as a dated Markdown section (for docs/PERFORMANCE.md)."""
  m = result['machine']
  lines = [
      f"### {time.strftime('%Y-%m-%d')}: {m['backend']}, {len(m['devices'])} device(s), "
      f"{m['processor']}, {m['cpu_count']} CPU cores",
      '',
      f"`python -m mol_jax.benchmark` with configs/{result['config']}.py, "
      f"of_weight={result['of_weight']}, ldm_weight={result['ldm_weight']}, "
      f"flow_pairs_per_step={result['flow_pairs_per_step']}, "
      f"eval_with_flow={result['eval_with_flow']}, compute {result['compute_dtype']}, "
      f"{result['repeats']} timed runs after a "
      f"warm-up; jax {m['jax']}; float32 matmul peak measured in the same run: "
      f"{result['matmul_peak_gflop_per_s']:.1f} GFLOP/s; memory bandwidth (elementwise "
      f"read + write) {result['memory_gb_per_s']:.1f} GB/s; model initialisation "
      f"{result['init_s']:.1f} s.",
      '',
      '| step | batch | median s | range s | compile s | GFLOP | GB accessed | memory GB '
      '| GFLOP/s | of matmul peak |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for r in result['results']:
    lines.append(
        f"| {r['name']} | {r['batch_size']} | {r['median_s']:.3f} | "
        f"{r['min_s']:.3f}-{r['max_s']:.3f} | {r['compile_s']:.1f} | {r['gflop']:.1f} | "
        f"{r['gbytes_accessed']:.1f} | {r['memory_gb']:.2f} | {r['gflop_per_s']:.1f} | "
        f"{100 * r['fraction_of_matmul_peak']:.0f}% |")
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--batch_sizes', default='1,8,32')
  parser.add_argument('--config', default='default',
                      help='a file of configs/ without .py (default: the official recipe)')
  parser.add_argument('--flow_pairs', type=int, default=None,
                      help="config.loss.flow_pairs_per_step (default: the config's; 7 = official)")
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--eval_with_flow', type=int, default=None,
                      help="1: the eval forward computes flow for all 7 pairs (default: the "
                           "config's)")
  parser.add_argument('--compute_dtype', default=None, choices=('float32', 'bfloat16'))
  parser.add_argument('--out', default='', help='JSON file for the results')
  parser.add_argument('--append_to', default='',
                      help='Markdown file to append the table to (docs/PERFORMANCE.md)')
  parser.add_argument('--layers', default='',
                      help="instead: time each flow-head convolution's forward+backward "
                           "for these implementations, e.g. xla,im2col,cols,auto")
  args = parser.parse_args(argv)
  if args.layers:
    rows = layers(int(args.batch_sizes.split(',')[0]), tuple(args.layers.split(',')),
                  args.repeats)
    if args.out:
      with open(args.out, 'w') as f:
        json.dump(rows, f, indent=2)
    return
  result = run([int(b) for b in args.batch_sizes.split(',')], args.flow_pairs, args.repeats,
               eval_with_flow=None if args.eval_with_flow is None else bool(args.eval_with_flow),
               compute_dtype=args.compute_dtype, config_name=args.config)
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
