"""The command line: config files load from any working directory."""

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
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'ModuleNotFoundError' not in proc.stderr
  assert 'smic/3class is not built' in proc.stderr


def test_benchmark_names_a_missing_config():
  with pytest.raises(FileNotFoundError, match='configs/nope.py'):
    benchmark._load_config('nope')
