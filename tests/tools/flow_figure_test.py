"""mol_jax.tools.flow_figure's command: every error is one line (its picture of
a tiny run is tested in flow_report_test.py)."""

import pytest

from mol_jax.tools import flow_figure


def test_figure_command_errors_are_one_line(tmp_path, capsys):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  with pytest.raises(SystemExit) as exit_info:
    flow_figure.main([str(tmp_path / 'none'), 'synthetic_me/small', '--subject', 'sy01',
                      '--out', str(afile / 'figure.png')])
  assert exit_info.value.code == 2
  with pytest.raises(SystemExit) as exit_info:
    flow_figure.main([str(tmp_path / 'none'), 'synthetic_me/small', '--subject', 'sy01',
                      '--data_dir', str(tmp_path / 'empty'), '--out', str(tmp_path / 'figure.png')])
  assert exit_info.value.code == 3
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 2 and all(line.startswith('error: ') for line in lines)
  assert 'synthetic_me/small' in lines[1] and not (tmp_path / 'figure.png').exists()
