"""The benchmark runs end to end at a tiny size, so that it cannot rot."""

import json

import pytest

from mol_jax import benchmark


@pytest.mark.slow
def test_benchmark_writes_json_and_markdown(tmp_path):
  out, doc = tmp_path / 'bench.json', tmp_path / 'PERF.md'
  doc.write_text('# Performance\n')
  benchmark.main(['--batch_sizes=1', '--repeats=1', '--flow_pairs=1', '--eval_with_flow=0',
                  f'--out={out}', f'--append_to={doc}'])
  result = json.loads(out.read_text())
  assert result['matmul_peak_gflop_per_s'] > 0
  rows = {r['name']: r for r in result['results']}
  assert set(rows) == {'eval_forward', 'train_step'}
  for row in rows.values():
    assert row['batch_size'] == 1 and row['median_s'] > 0 and row['gflop'] > 0
    assert row['memory_gb'] > 0 and 0 < row['fraction_of_matmul_peak'] < 2
  # One flow pair makes the train step cost more than a forward without flow.
  assert rows['train_step']['gflop'] > 3 * rows['eval_forward']['gflop']
  text = doc.read_text()
  assert text.startswith('# Performance\n') and '| train_step | 1 |' in text
  assert result['config'] == 'default' and 'configs/default.py' in text
  assert result['flow_pairs_per_step'] == 1 and result['init_s'] > 0
