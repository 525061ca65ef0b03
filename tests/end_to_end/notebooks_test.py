"""Executes notebooks/quickstart.ipynb then notebooks/inference.ipynb, tiny, with nbclient.

The notebooks read `MOL_NB_*` environment variables (their `parameters`
cells): one fold of 2 steps on `synthetic_me/small`, one clip of the video.
Any cell error fails the test.
"""

import os
import shutil

import pytest

from tests import REPO

nbclient = pytest.importorskip('nbclient', reason="pip install -e '.[test]' installs nbclient")
nbformat = pytest.importorskip('nbformat', reason="pip install -e '.[test]' installs nbformat")
NOTEBOOKS = os.path.join(REPO, 'notebooks')


def execute(name: str, cwd: str, timeout: int = 1800):
  """Runs notebook `name` in `cwd`; returns the executed notebook."""
  path = os.path.join(cwd, name)
  shutil.copy(os.path.join(NOTEBOOKS, name), path)
  notebook = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name='python3',
                                   resources={'metadata': {'path': cwd}})
  client.execute()
  nbformat.write(notebook, path)
  return notebook


def _outputs(notebook, mime):
  return [o for cell in notebook.cells if cell.cell_type == 'code'
          for o in cell.get('outputs', []) if mime in o.get('data', {})]


def _images(notebook):
  return [o for mime in ('image/png', 'image/jpeg') for o in _outputs(notebook, mime)]


@pytest.mark.slow
def test_quickstart_then_inference(tmp_path, monkeypatch):
  cwd = str(tmp_path)
  monkeypatch.setenv('MOL_NB_DATA_DIR', str(tmp_path / 'tfds'))
  monkeypatch.setenv('MOL_NB_WORKDIR', str(tmp_path / 'work'))
  monkeypatch.setenv('MOL_NB_STEPS', '2')
  monkeypatch.setenv('MOL_NB_FOLDS', 'sy01')
  monkeypatch.setenv('MOL_NB_OUT', str(tmp_path / 'out'))
  monkeypatch.setenv('MOL_NB_MAX_CLIPS', '1')

  quickstart = execute('quickstart.ipynb', cwd)
  assert os.path.isfile(tmp_path / 'work' / 'results.json')
  assert len(_images(quickstart)) >= 3  # confusion, curves, flow/landmarks

  inference = execute('inference.ipynb', cwd)
  for name in ('predictions.json', 'probabilities.png', 'clip_00.png', 'clip_00.gif',
               'face.avi'):
    assert os.path.isfile(tmp_path / 'out' / name), name
  assert len(_images(inference)) >= 3  # frames, probabilities, flow/landmarks
  assert _outputs(inference, 'image/gif')


def test_notebooks_have_parameters_cells_and_saved_pictures():
  for name in ('quickstart.ipynb', 'inference.ipynb'):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    tagged = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(tagged) == 1, name
    assert _images(notebook), f'{name} is committed without its pictures'
    for cell in notebook.cells:  # Saved outputs hold no error.
      assert all(o.get('output_type') != 'error' for o in cell.get('outputs', [])), name
    assert os.path.getsize(os.path.join(NOTEBOOKS, name)) < 600_000, name


def test_install_cell_on_a_runtime_without_mol_jax(tmp_path):
  """A fresh Colab runtime: mol_jax is not importable and nothing is set.
  The install cell has form fields for the repository, says to fill one in,
  and checks whether pip replaced packages the kernel had already imported."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  for name in ('quickstart.ipynb', 'inference.ipynb'):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == 'code')
    assert "REPO_URL = ''  #@param {type:\"string\"}" in cell.source, name
    assert 'had already imported' in cell.source and '(Runtime > Restart' in cell.source, name
    # A bare interpreter (-I: no site-packages of the user, no PYTHONPATH)
    # in an empty folder stands for the fresh runtime.
    env = {k: v for k, v in os.environ.items() if not k.startswith('MOL_JAX_')}
    proc = subprocess.run([sys.executable, '-I', '-S', '-c', cell.source], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
    assert "REPO_URL field" in proc.stderr.strip().splitlines()[-1], proc.stderr
