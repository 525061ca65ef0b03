"""Metrics: micro-expression scores from a confusion matrix pooled over LOSO
folds, and the flow and landmark errors.

Every class metric treats an undefined ratio (a class never predicted, or absent
from the ground truth) as 0, as MER papers and the official code do, and
averages over all classes of the protocol.
"""

from __future__ import annotations

import numpy as np

from mol_jax import clip_format


def confusion_matrix(labels, predictions, num_classes: int, mask=None) -> np.ndarray:
  """[C, C] counts, rows = true class, columns = predicted class."""
  labels = np.asarray(labels, np.int64).reshape(-1)
  predictions = np.asarray(predictions, np.int64).reshape(-1)
  if mask is not None:
    keep = np.asarray(mask).reshape(-1) > 0
    labels, predictions = labels[keep], predictions[keep]
  return np.bincount(labels * num_classes + predictions,
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def softmax(logits) -> np.ndarray:
  """float64 softmax over the last axis."""
  z = np.asarray(logits, np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def pool_clips_by_video(logits, labels, video_index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One prediction per video from its clips: the mean of their softmax.

  A video of n frames gives n // 8 clips (MOL.md section 4); counting every
  clip as a sample, as the official code does, weighs long videos more than
  short ones. Pooling gives each video one vote.

  Args:
    logits: [clips, C].
    labels: [clips] int.
    video_index: [clips] int, equal for the clips of one video.

  Returns:
    probabilities [videos, C], labels [videos] and the video indices
    [videos] (sorted).

  Raises:
    ValueError: when the clips of one video carry different labels.
  """
  clip_probs = softmax(logits)
  labels = np.asarray(labels, np.int64).reshape(-1)
  videos, inverse = np.unique(np.asarray(video_index).reshape(-1), return_inverse=True)
  probabilities = np.zeros((len(videos), clip_probs.shape[-1]))
  np.add.at(probabilities, inverse, clip_probs)
  probabilities /= np.bincount(inverse, minlength=len(videos))[:, None]
  video_labels = np.zeros(len(videos), np.int64)
  video_labels[inverse] = labels
  mixed = np.flatnonzero(video_labels[inverse] != labels)
  if mixed.size:
    raise ValueError(f'video {videos[inverse[mixed[0]]]} has clips of different labels; '
                     'its clips must come from one labelled video.')
  return probabilities, video_labels, videos


def _safe_divide(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def summarize(confusion: np.ndarray) -> dict[str, float]:
  """accuracy (= WAR), UAR, UF1, WF1 and per-class recall/F1."""
  confusion = np.asarray(confusion, np.float64)
  true_positive = np.diag(confusion)
  support = confusion.sum(axis=1)
  predicted = confusion.sum(axis=0)
  recall = _safe_divide(true_positive, support)
  precision = _safe_divide(true_positive, predicted)
  f1 = _safe_divide(2 * precision * recall, precision + recall)
  total = support.sum()
  return {
      'accuracy': float(true_positive.sum() / total) if total else 0.0,
      'war': float(true_positive.sum() / total) if total else 0.0,
      'uar': float(recall.mean()),
      'uf1': float(f1.mean()),
      'wf1': float((f1 * support).sum() / total) if total else 0.0,
      'per_class_recall': recall.tolist(),
      'per_class_f1': f1.tolist(),
      'num_examples': int(total),
  }


# Flow and landmark errors: operators only, so that the jitted evaluation
# step and the numpy tools compute them with the same code.


def end_point_error(flow, reference):
  """[..., H, W, 2] -> [...]: mean over pixels of |flow - reference| (pixels)."""
  return ((((flow - reference) ** 2).sum(-1)) ** 0.5).mean((-2, -1))


def landmark_nme(points, reference):
  """[..., 68, 2] -> [...]: mean point error over the reference's inter-pupil distance."""
  error = ((((points - reference) ** 2).sum(-1)) ** 0.5).mean(-1)
  return error / clip_format.inter_pupil_distance(reference).clip(1e-6)
