"""Several built sets read as one collection (`mol_jax.data.sources`).

`synthetic_me/small` and `synthetic_me/small_b` are generated from different
seeds (other faces, other motions) with the same subject names, which the
dataset prefixes must keep apart; the sets of a collection share classes.
"""

import types

import numpy as np
import pytest

from mol_jax.data import input_pipeline, sources
from tests import two_sets
from tests.two_sets import ALIASES, TWO


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return two_sets.build(tmp_path_factory)


def test_a_collection_prefixes_subjects_and_videos(data_dir):
  own = {a: sources.list_subjects(n, data_dir) for a, n in zip(ALIASES, TWO.split(','))}
  assert own[ALIASES[0]] == own[ALIASES[1]]  # Same names in both sets...
  subjects = input_pipeline.list_subjects(TWO, data_dir)
  # ... kept apart by the prefix.
  assert subjects == sorted(f'{a}_{s}' for a in ALIASES for s in own[a])
  assert sources.subjects_by_dataset(TWO, data_dir) == {
      a: [f'{a}_{s}' for s in own[a]] for a in ALIASES}
  picked = [f'{ALIASES[1]}_{own[ALIASES[1]][0]}', f'{ALIASES[0]}_{own[ALIASES[0]][1]}']
  source = sources.source(TWO, data_dir, picked)
  plain = [sources.source(n, data_dir, [s]) for n, s in
           ((TWO.split(',')[0], own[ALIASES[0]][1]), (TWO.split(',')[1], own[ALIASES[1]][0]))]
  assert len(source) == sum(len(p) for p in plain)
  records = [source[i] for i in range(len(source))]
  expected = [dict(p[i]) for p in plain for i in range(len(p))]
  for record, original, alias in zip(records, expected,
                                     [ALIASES[0]] * len(plain[0]) + [ALIASES[1]] * len(plain[1])):
    assert record['subject'] == f"{alias}_{original['subject'].decode()}"
    assert record['video_id'] == f"{alias}_{original['video_id'].decode()}"
    np.testing.assert_array_equal(record['video'], original['video'])
    assert int(record['label']) == int(original['label'])
  # The two sets are different data, not one set read twice.
  assert not np.array_equal(records[0]['video'], records[-1]['video'])
  with pytest.raises(IndexError):
    source[len(source)]
  # Batches of a fold that mixes them.
  datasets = input_pipeline.create_datasets(
      TWO, data_dir, [subjects[0]], batch_size=2, process_index=0, process_count=1)
  assert set(datasets.train_subjects) == set(subjects[1:])
  batch = next(datasets.train)
  assert batch['video'].shape == (2, 8, 128, 128, 1)


def test_datasets_of_a_collection_must_share_classes(monkeypatch):
  labels = {'a/x': ['surprise', 'positive', 'negative'], 'b/y': ['happiness', 'others']}

  def fake(name, data_dir):
    del data_dir
    label = types.SimpleNamespace(names=labels[name])
    return types.SimpleNamespace(info=types.SimpleNamespace(features={'label': label}))

  monkeypatch.setattr(sources, 'built_builder', fake)
  with pytest.raises(ValueError, match=r"b/y has \['happiness', 'others'\].*3class"):
    sources.class_names('a/x,b/y')
  labels['b/y'] = labels['a/x']
  assert sources.class_names('a/x,b/y') == labels['a/x']
