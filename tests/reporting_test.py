"""Run reports (`mol_jax.reporting`): the metrics log of a resumed fold."""

from mol_jax import reporting


def test_metric_writer_drops_the_steps_a_resumed_fold_replays(tmp_path):
  """A fold killed after logging steps 1-3 with its checkpoint at step 2
  replays step 3: metrics.jsonl then holds each (fold, step) once."""
  import json  # pylint: disable=import-outside-toplevel
  writer = reporting.MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    writer.scalars('sy01/train', step, {'loss': float(step)})
  writer.scalars('sy01/test', 3, {'accuracy': 0.5})
  writer.scalars('sy02/train', 3, {'loss': 9.0})  # Another fold keeps its rows.
  writer.close()
  resumed = reporting.MetricWriter(str(tmp_path))
  assert resumed.drop_after(('sy01/train', 'sy01/test'), 2) == 2
  resumed.scalars('sy01/train', 3, {'loss': 3.5})
  resumed.close()
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['prefix'], r['step']) for r in rows] == [
      ('sy01/train', 1), ('sy01/train', 2), ('sy02/train', 3), ('sy01/train', 3)]
  assert rows[-1]['loss'] == 3.5
