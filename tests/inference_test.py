"""The prediction API (`mol_jax.inference`): class names and the alignment a
checkpoint gives, and still clips left out of a video's answer."""

import json

import numpy as np
import pytest

from mol_jax import checkpointing, inference
from tests.fake_prediction import fake_prediction
from tests.random_weights import random_model


def test_class_names_come_from_the_checkpoint_alone(tmp_path):
  """A fold model takes its names from its own metadata; a `results.json`
  beside it in the work directory is not a second source."""
  workdir = tmp_path / 'run'
  model_path = workdir / 'folds' / 'sy02' / 'model'
  checkpointing.save_model(str(model_path), random_model(num_classes=2),
                           metadata={'class_names': ['a', 'b'], 'held_out_subject': 'sy02',
                                     'dataset': 'synthetic_me/default_per_clip'})
  (workdir / 'results.json').write_text(json.dumps({'class_names': ['p', 'q']}))
  predictor = inference.from_checkpoint(str(model_path))
  assert predictor.class_names == ['a', 'b']
  assert predictor.metadata['class_names_source'] == 'checkpoint metadata'
  assert predictor.metadata['held_out_subject'] == 'sy02'
  assert inference.from_checkpoint(str(model_path), class_names=['x', 'y']).class_names == [
      'x', 'y']
  with pytest.raises(ValueError, match='2 classes'):
    inference.from_checkpoint(str(model_path), class_names=['x', 'y', 'z'])
  bare = tmp_path / 'bare'
  checkpointing.save_model(str(bare), random_model(num_classes=2))
  assert inference.from_checkpoint(str(bare)).class_names == ['class_0', 'class_1']


def test_alignment_of_a_checkpoint_without_it_still_comes_from_its_dataset():
  """The fallback that now imports the builders when it runs: older
  checkpoints name only their dataset, whose builder config says how its
  clips were aligned."""
  import types  # pylint: disable=g-import-not-at-top
  from mol_jax import inference  # pylint: disable=g-import-not-at-top
  alignment = lambda metadata: inference.Predictor.model_alignment(
      types.SimpleNamespace(metadata=metadata))
  assert alignment({'alignment': 'per_clip', 'dataset': 'synthetic_me/demo'}) == (
      'per_clip', 'checkpoint metadata')
  assert alignment({'dataset': 'synthetic_me/demo'}) == ('registered', 'dataset synthetic_me/demo')
  assert alignment({'dataset': 'samm/3class_per_clip'})[0] == 'per_clip'
  assert alignment({})[0] == 'per_frame'


def test_still_clips_are_left_out_of_the_video():
  prediction = fake_prediction(motion=(0.1, 2.0))
  np.testing.assert_allclose(prediction.video_probabilities, [0.1, 0.2, 0.7])
  assert prediction.label == 'negative' and not prediction.still
  report = prediction.to_json()
  assert [c['still'] for c in report['clips']] == [True, False]
  assert [c['probabilities_meaningful'] for c in report['clips']] == [False, True]
  assert report['video']['pooled_clips'] == [1] and report['video']['still'] is False
  assert any('clip 0' in w and 'is still' in w for w in prediction.warnings)
  every = fake_prediction(motion=(0.1, 0.0))
  assert every.still and every.to_json()['video']['still'] is True
  assert every.to_json()['video']['label'] == every.label
  np.testing.assert_allclose(every.video_probabilities, [0.4, 0.2, 0.4])
