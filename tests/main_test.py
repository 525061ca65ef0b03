"""The command line: config files load from any working directory; --help;
one line and a documented exit code for every bad input."""

import os
import subprocess
import sys

import pytest

from mol_jax.tools import benchmark
from mol_jax.files import config_root

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('argv', [['--config=/r/configs/smic.py'],
                                  ['--config', '/r/configs/smic.py'],
                                  ['-config=/r/configs/smic.py', '--config.seed=1'],
                                  ['--config=/r/configs/smic.py:override']])
def test_config_root_is_the_folder_above_the_config_file(argv):
  assert config_root(['main.py', '--workdir=w'] + argv) == os.path.abspath('/r')


def test_config_root_without_a_config_flag():
  assert config_root(['main.py', '--workdir=w']) is None


def test_main_loads_a_config_from_another_working_directory(tmp_path):
  """configs/smic.py imports `configs.default`; run from outside the
  repository, the run reaches the dataset check and says the licensed set
  is missing, instead of failing to import the config."""
  proc = subprocess.run(
      [sys.executable, '-m', 'mol_jax.main', f'--config={REPO}/configs/smic.py',
       f'--workdir={tmp_path / "work"}', f'--config.data_dir={tmp_path / "empty"}'],
      cwd=tmp_path, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 3, proc.stderr[-2000:]  # data missing
  assert 'ModuleNotFoundError' not in proc.stderr and 'Traceback' not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith('error: dataset smic/3class is not built')
  assert not (tmp_path / 'work').exists()  # nothing written before the inputs are checked


def _main(tmp_path, *args):
  return subprocess.run([sys.executable, '-m', 'mol_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_help_names_the_configs_and_the_docs(tmp_path):
  proc = _main(tmp_path, '--help')
  assert proc.returncode == 0, proc.stderr
  for text in ('configs/smic.py', 'configs/demo.py', 'docs/TRAINING.md', 'exit codes'):
    assert text in proc.stdout, text


@pytest.mark.parametrize('args, expected', [
    (['--config=configs/smc.py'], '--config=configs/smc.py: no such config file'),
    (['--config=configs/test.py', '--config.not_a_field=1'],
     "--config.not_a_field=1: the config has no field 'not_a_field'"),
    (['--config=configs/test.py', '--config.batch_size=abc'], 'batch_size'),
    (['--config=configs/test.py', '--config.batch_size=-3'],
     'config.batch_size must be at least 1, got -3'),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, args, expected):
  work, data = tmp_path / 'work', tmp_path / 'tfds'
  proc = _main(tmp_path, *args, f'--workdir={work}', f'--config.data_dir={data}')
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr and lines[-1].startswith('error: '), proc.stderr[-3000:]
  assert expected in lines[-1], lines[-1]
  assert not work.exists() and not data.exists()  # nothing written, nothing built


def test_missing_workdir_is_exit_2(tmp_path):
  proc = _main(tmp_path, '--config=configs/test.py')
  assert proc.returncode == 2 and '--workdir' in proc.stderr.strip().splitlines()[-1]


def test_verbose_adds_the_traceback(tmp_path):
  proc = _main(tmp_path, '--config=configs/test.py', '--config.not_a_field=1', '--verbose',
               f'--workdir={tmp_path / "work"}')
  assert proc.returncode == 2 and 'Traceback' in proc.stderr


def test_benchmark_names_a_missing_config():
  with pytest.raises(FileNotFoundError, match='configs/nope.py'):
    benchmark._load_config('nope')
