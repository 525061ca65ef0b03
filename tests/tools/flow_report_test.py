"""mol_jax.tools.flow_report: the error functions by hand, the markdown section,
and a tiny run with flow_figure's picture of it."""

import json
import os

import numpy as np
import pytest

from mol_jax import clip_format
from mol_jax import checkpointing
from mol_jax.data import sources
from mol_jax.tools import flow_figure, flow_report
from tests.random_weights import random_model


def test_epe_by_hand():
  truth = np.broadcast_to(np.array([3.0, 4.0], np.float32), (2, 5, 6, 2))
  assert flow_report.epe(np.zeros_like(truth), truth) == pytest.approx(5.0)
  half = np.zeros_like(truth)
  half[:, :, :3] = truth[:, :, :3]  # Right on half of the pixels, 5 px off on the rest.
  assert flow_report.epe(half, truth) == pytest.approx(2.5)
  assert flow_report.epe(truth, truth) == 0.0


def test_landmark_nme_by_hand():
  reference = np.zeros((68, 2))
  reference[36:42] = [10.0, 20.0]  # Left eye centre (10, 20).
  reference[42:48] = [50.0, 20.0]  # Right eye centre: inter-pupil distance 40.
  assert clip_format.inter_pupil_distance(reference) == pytest.approx(40.0)
  moved = reference + [0.0, 4.0]  # Every point 4 px off: 4 / 40.
  assert flow_report.landmark_nme(moved, reference) == pytest.approx(0.1)
  pairs = np.stack([reference, moved])
  assert flow_report.landmark_nme(pairs, np.stack([reference, reference])) == pytest.approx(
      0.05)


def test_section_between_markers(tmp_path):
  path = str(tmp_path / 'RESULTS.md')
  with open(path, 'w') as f:
    f.write('# Results\n\nkept text\n')
  flow_report.write_section(path, 'first table')
  with open(path) as f:
    text = f.read()
  assert text == ('# Results\n\nkept text\n\n<!-- flow-report:start -->\nfirst table\n'
                  '<!-- flow-report:end -->\n')
  with open(path, 'a') as f:
    f.write('\n## After\n')
  flow_report.write_section(path, 'second table')
  with open(path) as f:
    text = f.read()
  assert 'first table' not in text and text.count('second table') == 1
  assert text.startswith('# Results\n\nkept text\n') and text.endswith('\n## After\n')
  with open(path, 'w') as f:
    f.write('<!-- flow-report:start -->\nbroken\n')
  with pytest.raises(ValueError, match='only one'):
    flow_report.write_section(path, 'x')


@pytest.mark.slow
def test_report_on_the_small_synthetic_set(tmp_path, capsys):
  data_dir = str(tmp_path / 'tfds')
  sources.ensure_built(['synthetic_me/small'], data_dir, build_if_missing=True)
  # A fold model, with the metadata training writes: the report takes its
  # held-out subject by default.
  model = str(tmp_path / 'run' / 'folds' / 'sy01' / 'model')
  checkpointing.save_model(model, random_model(), metadata={'held_out_subject': 'sy01'})
  results_md = tmp_path / 'RESULTS.md'
  results_md.write_text('# Results\n')
  out_json = tmp_path / 'report.json'
  code = flow_report.main(['--checkpoint', model, '--dataset', 'synthetic_me/small',
                           '--data_dir', data_dir, '--results_md', str(results_md),
                           '--json', str(out_json)])
  assert code == 0
  result = json.loads(out_json.read_text())
  assert result['subjects'] == ['sy01'] and result['num_clips'] == 3  # 3 classes x 1 video.
  metrics = result['metrics']
  assert all(np.isfinite(v) and v >= 0 for v in metrics.values())
  # The true flow is right: TV-L1 is closer to it than no motion at all.
  assert metrics['epe_tvl1_true'] < metrics['epe_zero_true']
  assert metrics['nme_dlib_true'] < 0.05  # dlib on the moved face vs its exact motion.
  text = results_md.read_text()
  assert text.startswith('# Results\n\n<!-- flow-report:start -->\n')
  assert '| MOL flow (EPE, px) |' in text and text.rstrip().endswith('<!-- flow-report:end -->')
  assert ('Command:\n\n```bash\npython -m mol_jax.tools.flow_report --checkpoint ' + model) in text
  assert os.path.isdir(os.path.join(data_dir, 'downloads'))
  assert '| TV-L1 flow' in capsys.readouterr().out

  # The picture of MOL's flow beside the truth and TV-L1, on the clip with the most motion.
  panel, scores = flow_figure.figure(model, 'synthetic_me/small', data_dir, 'sy01', pairs=[1, 3])
  assert panel.dtype == np.uint8 and panel.ndim == 3
  assert set(scores['epe']) == {'MOL', 'TV-L1', 'zero flow'}
  assert scores['epe']['TV-L1'] < scores['epe']['zero flow']
  out = tmp_path / 'figure.png'
  flow_figure.main([model, 'synthetic_me/small', '--data_dir', data_dir, '--subject', 'sy01',
                    '--clip', str(scores['clip']), '--out', str(out)])
  assert out.stat().st_size > 0
  with pytest.raises(SystemExit, match='has clips 0..2'):
    flow_figure.figure(model, 'synthetic_me/small', data_dir, 'sy01', clip=3)
