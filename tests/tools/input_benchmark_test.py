"""`python -m mol_jax.tools.input_benchmark` on the small traceable set of
`tests/fake_me.py`."""

import pytest

from mol_jax.tools import input_benchmark
from tests import fake_me
from tests.fake_me import NAME


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_me.build(tmp_path_factory.mktemp('tfds'))


def test_input_benchmark_times_one_fold(data_dir, capsys):
  """`python -m mol_jax.tools.input_benchmark` (docs/PERFORMANCE.md's command)."""
  result = input_benchmark.main([NAME, f'--data_dir={data_dir}', '--test_subject=c',
                                 '--batch_size=2', '--num_batches=2'])
  # Subject c's 4 clips in batches of 2.
  assert (result['eval_batches'], result['batch_size']) == (2, 2)
  assert result['train_s_per_batch'] > 0 and result['eval_s_per_batch'] > 0
  assert "'eval_batches': 2" in capsys.readouterr().out
  with pytest.raises(ValueError, match='num_batches'):
    input_benchmark.time_batches(NAME, data_dir, 'c', num_batches=0)
