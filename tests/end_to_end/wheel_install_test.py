"""The package installed from a wheel works without the repository around it.

A fresh virtual environment gets a non-editable install of this checkout
(the wheel `pip install .` would build; its dependencies come from the test
environment through a .pth line, so nothing is downloaded), and every user
command then runs from a folder outside the checkout.
"""

import json
import os
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from tests import REPO, golden


def _run(python, args, cwd, timeout=900):
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH',)}
  env['MOL_JAX_NUM_WORKERS'] = '0'
  proc = subprocess.run([python] + args, cwd=cwd, capture_output=True, text=True,
                        timeout=timeout, env=env)
  assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
  return proc


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
  """(python of a fresh venv holding the wheel, a working folder outside the checkout)."""
  root = tmp_path_factory.mktemp('wheel')
  wheels = root / 'wheels'
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                  '-q', '-w', str(wheels), REPO], check=True, capture_output=True, timeout=600)
  venv = root / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
  python = str(venv / 'bin' / 'python')
  site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                        capture_output=True, text=True, check=True).stdout.strip()
  # The test environment's packages, without its editable mol_jax: a path
  # line in a .pth file adds the folder but runs none of the .pth files in it.
  with open(os.path.join(site, 'test_env_packages.pth'), 'w') as f:
    f.write(sysconfig.get_path('purelib') + '\n')
  subprocess.run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q',
                  str(next(wheels.glob('mol_jax-*.whl')))], check=True, timeout=600)
  outside = root / 'outside'
  outside.mkdir()
  where = _run(python, ['-c', 'import mol_jax; print(mol_jax.__file__)'], outside).stdout
  assert where.strip().startswith(site), where
  return python, outside


@pytest.mark.slow
def test_user_commands_run_from_the_installed_package(installed):
  python, outside = installed
  # The builder folder of the checkout: its thin file imports the packaged builder.
  data = outside / 'data'
  _run(python, ['-m', 'mol_jax.tfds_build', os.path.join(REPO, 'tfds_builders', 'synthetic_me'),
                '--config=small', f'--data_dir={data}'], outside)
  assert list((data / 'synthetic_me' / 'small').glob('*/dataset_info.json'))

  # Training with the checkout's test config, building its set on first use
  # from the installed builders.
  fresh, workdir = outside / 'fresh_data', outside / 'work'
  _run(python, ['-m', 'mol_jax.main', f'--config={REPO}/configs/test.py',
                f'--workdir={workdir}', f'--config.data_dir={fresh}', '--config.folds=sy01'],
       outside)
  results = json.loads((workdir / 'results.json').read_text())
  assert results['dataset'] == 'synthetic_me/small'

  # Prediction on a synthetic video reads the alignment from the checkpoint.
  _run(python, ['-m', 'mol_jax.data.synthetic', '--write_video', str(outside / 'face.avi')],
       outside)
  model = workdir / 'folds' / 'sy01' / 'model'
  _run(python, ['-m', 'mol_jax.predict', '--checkpoint', str(model), '--input',
                str(outside / 'face.avi'), '--out', str(outside / 'predictions'),
                '--max_clips=1'], outside)
  report = json.loads((outside / 'predictions' / 'predictions.json').read_text())
  metadata = json.loads(_run(python, ['-c', (
      'import json, sys; from mol_jax import checkpointing; '
      f'print(json.dumps(checkpointing.load_metadata({str(model)!r})))')], outside).stdout)
  assert metadata['alignment'] == 'per_frame'
  assert report['preprocessing']['align'] == metadata['alignment']
  assert report['class_names'] == ['surprise', 'positive', 'negative']

  # Official weights to a checkpoint.
  golden.require()
  weights = outside / 'official.npz'
  np.savez(weights, **golden.official_state_dict(3))
  _run(python, ['-m', 'mol_jax.convert', '--weights', str(weights), '--num_classes', '3',
                '--out', str(outside / 'converted')], outside)
  assert (outside / 'converted').is_dir()
