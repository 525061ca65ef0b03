"""Does a trained model read the facial motion or the face? Its folds on still clips.

    python -m mol_jax.tools.still_check --workdir=DIR [--data_dir=TFDS_DIR]

For every fold model of a finished LOSO run (`DIR/folds/<subject>/model`),
the held-out subject's evaluation clips (centred crop, normalised as in
evaluation) are classified twice: as they are, and with every frame
replaced by the clip's first frame, a still face with nothing else changed.
A micro-expression lives in the change between frames, so a model whose
class comes from the motion answers the still clips with one class, at
chance; a model that reads who the person is or how the clip was lit keeps
classifying them. Clips, not videos, are the unit here (the same on sets
with one clip per video). Writes `DIR/still_check.json` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Callable, Sequence

import numpy as np

from mol_jax import files
from mol_jax import inference
from mol_jax.data import input_pipeline

RESULT = 'still_check.json'


def still_clips(video: np.ndarray) -> np.ndarray:
  """[batch, time, ...] -> the same shape, every frame the clip's first."""
  return np.repeat(video[:, :1], video.shape[1], axis=1)


def compare(predict: Callable[[np.ndarray], np.ndarray], video: np.ndarray,
            labels: np.ndarray, num_classes: int) -> dict:
  """Accuracy on the clips as they are and as still clips.

  Args:
    predict: [batch, 8, 128, 128, 1] float32 -> [batch, num_classes] logits.
    video: the clips, as `predict` takes them.
    labels: int [batch].
    num_classes: for the histogram of still predictions.
  """
  moving = np.asarray(predict(video)).argmax(-1)
  still = np.asarray(predict(still_clips(video))).argmax(-1)
  return {
      'clips': int(len(labels)),
      'accuracy': float((moving == labels).mean()),
      'still_accuracy': float((still == labels).mean()),
      'still_predictions': np.bincount(still, minlength=num_classes).tolist(),
  }


def check_run(workdir: str, data_dir: str | None = None, batch_size: int = 8) -> dict:
  """`compare` for every fold model of a finished run; also writes RESULT."""
  results_path = os.path.join(workdir, 'results.json')
  if not os.path.isfile(results_path):
    raise FileNotFoundError(f'{results_path} not found: still_check needs a finished '
                            'LOSO run (python -m mol_jax.main ... --workdir=DIR).')
  with open(results_path) as f:
    dataset = json.load(f)['dataset']
  folds_dir = os.path.join(workdir, 'folds')
  subjects = sorted(s for s in os.listdir(folds_dir)
                    if os.path.isdir(os.path.join(folds_dir, s, 'model')))
  folds = {}
  for subject in subjects:
    predictor = inference.from_checkpoint(os.path.join(folds_dir, subject, 'model'))
    clips = [clip for _, clip in input_pipeline.evaluation_clips(dataset, data_dir, [subject])]
    video = np.stack([c['video'] for c in clips])
    labels = np.array([c['label'] for c in clips])
    folds[subject] = compare(
        lambda v, p=predictor: p.predict_batched(v, batch_size)['logits'],
        video, labels, predictor.num_classes)
  total = sum(f['clips'] for f in folds.values())
  pooled = {key: sum(f[key] * f['clips'] for f in folds.values()) / total
            for key in ('accuracy', 'still_accuracy')}
  summary = {'dataset': dataset, 'folds': folds, 'pooled': dict(pooled, clips=total)}
  files.write_json(os.path.join(workdir, RESULT), summary, indent=1)
  return summary


def table(summary: dict) -> str:
  lines = ['| held-out subject | clips | accuracy | still-clip accuracy | still-clip predictions per class |',
           '|---|---|---|---|---|']
  for subject, f in summary['folds'].items():
    lines.append(f"| {subject} | {f['clips']} | {f['accuracy']:.3f} | "
                 f"{f['still_accuracy']:.3f} | {f['still_predictions']} |")
  p = summary['pooled']
  lines.append(f"| **pooled** | {p['clips']} | {p['accuracy']:.3f} | {p['still_accuracy']:.3f} | |")
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='work directory of a finished LOSO run')
  parser.add_argument('--data_dir', default=None, help='TFDS data dir of its dataset')
  args = parser.parse_args(argv)
  summary = check_run(args.workdir, args.data_dir)
  print(table(summary))
  print(f"written: {os.path.join(args.workdir, RESULT)}")


if __name__ == '__main__':
  main()
