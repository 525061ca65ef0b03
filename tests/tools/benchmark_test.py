"""The benchmark runs end to end at a tiny size, so that it cannot rot; its FLOP
count, its trace summary and its config lookup."""

import json

import pytest

from mol_jax.tools import benchmark


@pytest.mark.slow
def test_benchmark_writes_json_and_markdown(tmp_path):
  out, doc = tmp_path / 'bench.json', tmp_path / 'PERF.md'
  doc.write_text('# Performance\n')
  benchmark.main(['--batch_sizes=1', '--repeats=1', '--flow_pairs=1', '--eval_with_flow=0',
                  f'--out={out}', f'--append_to={doc}', f'--profile={tmp_path / "trace"}',
                  '--traffic'])
  result = json.loads(out.read_text())
  assert result['matmul_peak_gflop_per_s'] > 0
  rows = {r['name']: r for r in result['results']}
  assert set(rows) == {'eval_forward', 'train_step'}
  for row in rows.values():
    assert row['batch_size'] == 1 and row['median_s'] > 0 and row['gflop'] > 0
    assert row['memory_gb'] > 0 and 0 < row['fraction_of_matmul_peak'] < 2
    assert 0 < row['gbytes_sliced'] <= row['gbytes_accessed'] * 1.05
  # One flow pair makes the train step cost more than a forward without flow.
  assert rows['train_step']['gflop'] > 3 * rows['eval_forward']['gflop']
  text = doc.read_text()
  assert text.startswith('# Performance\n') and '| train_step | 1 |' in text
  assert result['config'] == 'default' and 'configs/default.py' in text
  assert result['flow_pairs_per_step'] == 1 and result['init_s'] > 0
  if result['machine']['processor'] and open('/proc/cpuinfo').read().count(' avx2'):
    assert 'avx2' in result['machine']['vector_extensions'].split()
    assert result['machine']['vector_extensions'] in text
  # The traced train step lists the device's (here: the host's) busiest ops.
  assert result['profile_top_ops'] and all(
      r['seconds_per_step'] > 0 for r in result['profile_top_ops'])
  assert result['profile_seconds_by_kind']['matrix products'] > 0


@pytest.mark.parametrize('transposed,stride,padding', [
    (False, 1, 1), (False, 2, 1), (False, 2, 0), (True, 2, 1)])
def test_jaxpr_flops_match_xla_cpu_count(transposed, stride, padding):
  """The backend-independent count agrees with XLA's count of the compiled
  CPU program (which also counts the few elementwise FLOPs) for convolutions,
  their gradients and transposed convolutions."""
  import jax
  import jax.numpy as jnp
  from mol_jax.model import conv
  x, w = jnp.ones((3, 16, 16, 24)), jnp.ones((4, 4, 24, 8))
  if transposed:
    loss = lambda x, w: jnp.sum(conv.conv_transpose2d(x, w, impl='xla') ** 2)
  else:
    loss = lambda x, w: jnp.sum(conv.conv2d(x, w, stride, padding, impl='xla') ** 2)
  for fn in (jax.jit(loss), jax.jit(jax.grad(loss, argnums=(0, 1)))):
    traced = fn.trace(x, w)
    xla = traced.lower().compile().cost_analysis()['flops']
    assert benchmark.jaxpr_flops(traced.jaxpr) == pytest.approx(xla, rel=0.02)


def test_jaxpr_flops_count_scan_bodies_and_matmuls():
  import jax
  import jax.numpy as jnp
  a = jnp.ones((5, 6))
  b = jnp.ones((6, 7))
  step = lambda c, _: (c, c @ b)
  jaxpr = jax.make_jaxpr(lambda a: jax.lax.scan(step, a, None, length=4))(a)
  assert benchmark.jaxpr_flops(jaxpr) == 4 * 2 * 5 * 6 * 7


def test_summarise_trace_counts_one_lane_per_device(tmp_path):
  """Kernel and module lanes cover the time of the operation lane: only the
  operation lane is summed, per step, busiest first."""
  import gzip
  meta = lambda pid, tid, kind, name: {'ph': 'M', 'pid': pid, 'tid': tid, 'name': kind,
                                       'args': {'name': name}}
  span = lambda tid, name, dur: {'ph': 'X', 'pid': 1, 'tid': tid, 'name': name, 'ts': 0,
                                 'dur': dur}
  events = [meta(1, 0, 'process_name', '/device:GPU:0'), meta(2, 0, 'process_name', '/host:CPU'),
            meta(1, 1, 'thread_name', 'XLA Modules'), meta(1, 2, 'thread_name', 'XLA Ops'),
            meta(1, 3, 'thread_name', 'Stream #1'),
            span(1, 'jit_train_step', 9000), span(3, 'kernel', 3000),
            span(2, 'conv.1', 3000), span(2, 'conv.1', 1000), span(2, 'fusion.2', 2000),
            {'ph': 'X', 'pid': 2, 'tid': 0, 'name': 'python', 'ts': 0, 'dur': 50000}]
  folder = tmp_path / 'plugins' / 'profile' / 'run'
  folder.mkdir(parents=True)
  with gzip.open(folder / 'host.perfetto_trace.json.gz', 'wt') as f:
    json.dump({'traceEvents': events}, f)
  rows = benchmark.summarise_trace(str(tmp_path), steps=2)['top']
  assert [r['op'] for r in rows] == ['conv.1', 'fusion.2']
  assert rows[0]['seconds_per_step'] == pytest.approx(0.002)
  assert rows[0]['calls_per_step'] == 1 and rows[0]['share_of_busy'] == pytest.approx(2 / 3)


def test_summarise_trace_on_a_cpu_skips_the_runtime_and_groups_by_kind(tmp_path):
  """On a CPU the operations run on the host's XLA threads inside the
  runtime's ThunkExecutor spans, which must not count twice."""
  import gzip
  meta = lambda tid, name: {'ph': 'M', 'pid': 7, 'tid': tid, 'name': 'thread_name',
                            'args': {'name': name}}
  span = lambda tid, name, dur: {'ph': 'X', 'pid': 7, 'tid': tid, 'name': name, 'ts': 0,
                                 'dur': dur}
  events = [meta(1, 'tf_XLAEigen/123'), meta(2, 'tf_XLAPjRtCpuClient/4'), meta(3, 'python'),
            span(1, 'ThunkExecutor::Execute', 10000), span(2, 'ThunkExecutor::Execute', 10000),
            span(1, 'SlinkyThreadPool::Await', 500),
            span(1, 'ynn_fusion.3', 4000), span(1, 'dot.1', 1000),
            span(1, 'bitcast_slice_fusion.2', 1500), span(1, 'copy_bitcast_fusion.9', 1000),
            span(1, 'concatenate.5', 1000), span(1, 'wrapped_scatter.1', 500),
            span(1, 'multiply_add_fusion', 1000), span(3, 'ynn_fusion.3', 99000)]
  folder = tmp_path / 'plugins' / 'profile' / 'run'
  folder.mkdir(parents=True)
  with gzip.open(folder / 'host.perfetto_trace.json.gz', 'wt') as f:
    json.dump({'traceEvents': events}, f)
  summary = benchmark.summarise_trace(str(tmp_path), steps=1)
  assert summary['top'][0] == pytest.approx(
      {'op': 'ynn_fusion.3', 'seconds_per_step': 0.004, 'share_of_busy': 0.4,
       'calls_per_step': 1})
  assert summary['by_kind'] == pytest.approx({
      'matrix products': 0.005, 'slices and pads': 0.0015, 'copies and transposes': 0.001,
      'concatenations': 0.001, 'elementwise and reductions': 0.001,
      'gather, scatter, top-k': 0.0005})
  assert list(summary['by_kind'])[0] == 'matrix products'


def test_summarise_trace_without_a_trace_names_the_folder(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    benchmark.summarise_trace(str(tmp_path), steps=1)


def test_benchmark_names_a_missing_config():
  with pytest.raises(FileNotFoundError, match='configs/nope.py'):
    benchmark._load_config('nope')
