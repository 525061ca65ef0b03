"""Face registration: a clip's face warped onto one reference face shape.

The official eye-based alignment (`faces.alignment_matrix`) fixes position,
roll and scale, but leaves each person's proportions: brows, nose and mouth
of two subjects sit several pixels apart in the aligned frame. A classifier
trained on a handful of subjects then reads motion at the wrong place on a
new face (docs/RESULTS.md measures it). Registration, as the CASME II and SMIC
baselines do it with a model face, removes that: a piecewise-affine warp,
over a triangulation of the inner-face landmarks (`MESH_POINTS`) and fixed
anchors on the frame border, moves the clip's onset-frame landmarks exactly
onto the reference shape. One warp per clip, computed from the onset frame, so the expression
that follows is carried through unchanged and cannot change the warp.

The reference shape is dlib's 68 landmarks of the one face photograph that
scikit-image ships (`skimage.data.astronaut()`), aligned to the frame like
any clip: a fixed, label-free template that every dataset shares and that
the project computes itself.
"""

from __future__ import annotations

import functools

import numpy as np

from mol_jax import clip_format
from mol_jax.data import faces

# Border anchors per side; they stay in place, so the warp is the identity on
# the frame border and every pixel lies inside the triangulation.
_ANCHORS_PER_SIDE = 5
# The mesh uses the inner face (brows, nose, eyes, mouth: points 17-67). The
# jaw line (0-16) reaches the frame border at the chin, where its triangles
# with the border anchors are slivers that flip at the slightest change of
# face shape; the jaw does not carry micro-expressions.
MESH_POINTS = slice(17, 68)


class FoldedWarp(ValueError):
  """The landmarks would turn a triangle of the mesh inside out."""


@functools.lru_cache(maxsize=1)
def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
  """scikit-image's face photograph and its dlib landmarks ([512, 512, 3] uint8, [68, 2])."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  image = data.astronaut()
  detector = faces.FaceDetector(upsample=1)
  box = detector.detect(image)
  if box is None:
    raise RuntimeError('dlib found no face in skimage.data.astronaut(); check '
                       'the dlib and scikit-image installs.')
  return image, detector.landmarks(image, box).astype(np.float64)


@functools.lru_cache(maxsize=4)
def reference_shape(size: int = clip_format.STORED_SIZE,
                    box_scale: float = faces.BOX_SCALE) -> np.ndarray:
  """The template: float64 [68, 2] (x, y) in a size x size aligned frame."""
  _, landmarks = astronaut_face()
  shape = faces.transform_points(landmarks, faces.alignment_matrix(landmarks, size, box_scale))
  shape.flags.writeable = False
  return shape


@functools.lru_cache(maxsize=4)
def _border_anchors(size: int) -> np.ndarray:
  t = np.linspace(0.0, size - 1.0, _ANCHORS_PER_SIDE)
  first, last = np.zeros_like(t), np.full_like(t, size - 1.0)
  inner = t[1:-1]
  return np.concatenate([
      np.stack([t, first], -1), np.stack([t, last], -1),
      np.stack([first[1:-1], inner], -1), np.stack([last[1:-1], inner], -1)])


@functools.lru_cache(maxsize=4)
def _mesh(size: int, box_scale: float):
  """Triangulation of reference + anchors, and the mesh location of every pixel.

  Returns:
    (vertices [V, 2], triangles int [F, 3], triangle of each pixel [size * size],
    barycentric weights of each pixel [size * size, 3]).
  """
  from scipy import spatial  # pylint: disable=g-import-not-at-top
  vertices = np.concatenate([reference_shape(size, box_scale)[MESH_POINTS],
                             _border_anchors(size)])
  mesh = spatial.Delaunay(vertices)
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1)
  grid = grid.reshape(-1, 2).astype(np.float64)
  triangle = mesh.find_simplex(grid, tol=1e-9)
  if (triangle < 0).any():
    raise AssertionError('border anchors must enclose every pixel')
  weights = _barycentric(grid, vertices[mesh.simplices[triangle]])
  return vertices, mesh.simplices, triangle, weights


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
  """Weights of [N, 2] points in their [N, 3, 2] triangles: [N, 3]."""
  a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
  v0, v1, v2 = b - a, c - a, points - a
  det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
  w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
  w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
  return np.stack([1.0 - w1 - w2, w1, w2], -1)


def _signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  a, b, c = (vertices[triangles[:, i]] for i in range(3))
  return (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]


class Registration:
  """The warp of one clip: aligned-frame landmarks of its onset frame -> reference.

  Args:
    landmarks: [68, 2] (x, y) of the clip's first frame, in the aligned frame.
    size, box_scale: of the aligned frame (`clip_format.STORED_SIZE`, `faces.BOX_SCALE`).

  Raises:
    FoldedWarp: when these landmarks are so far from a face shape that the
      warp would fold (a triangle of the mesh flips).
  """

  def __init__(self, landmarks: np.ndarray, size: int = clip_format.STORED_SIZE,
               box_scale: float = faces.BOX_SCALE):
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (clip_format.NUM_LANDMARKS, 2):
      raise ValueError(f'landmarks must be [68, 2], got {landmarks.shape}.')
    reference, triangles, triangle, weights = _mesh(size, box_scale)
    source = np.concatenate([landmarks[MESH_POINTS], _border_anchors(size)])
    flipped = np.sign(_signed_areas(source, triangles)) != np.sign(
        _signed_areas(reference, triangles))
    if flipped.any():
      raise FoldedWarp(f'{int(flipped.sum())} of {len(triangles)} triangles of the '
                       'registration mesh flip: the landmarks are not a face shape.')
    self._reference, self._source, self._triangles = reference, source, triangles
    self._finder = None  # Built on first use of `points`.
    # Where each output pixel samples the aligned frame.
    corners = source[triangles[triangle]]
    self.sample_points = np.einsum('nk,nkd->nd', weights, corners).reshape(size, size, 2)

  def __getstate__(self):  # The point finder is rebuilt where it is used.
    return dict(self.__dict__, _finder=None)

  def points(self, points: np.ndarray) -> np.ndarray:
    """Maps [..., 2] aligned-frame points into the registered frame."""
    points = np.asarray(points, np.float64)
    flat = points.reshape(-1, 2)
    if self._finder is None:
      import matplotlib.tri  # pylint: disable=g-import-not-at-top
      self._finder = matplotlib.tri.Triangulation(
          self._source[:, 0], self._source[:, 1], self._triangles).get_trifinder()
    # The triangle that holds each point (a trapezoid map: a dense grid of
    # points costs milliseconds where testing every triangle cost seconds).
    found = np.asarray(self._finder(flat[:, 0], flat[:, 1]))
    mapped = np.empty_like(flat)
    inside = found >= 0
    if inside.any():
      tri = self._triangles[found[inside]]
      weights = _barycentric(flat[inside], self._source[tri])
      mapped[inside] = np.einsum('nk,nkd->nd', weights, self._reference[tri])
    if not inside.all():
      mapped[~inside] = self._nearest_triangle_points(flat[~inside])
    return mapped.reshape(points.shape)

  def _nearest_triangle_points(self, flat: np.ndarray) -> np.ndarray:
    """[N, 2] points outside the mesh, each mapped by the triangle whose
    least barycentric weight is the least negative (the anchors on the frame
    border make such points rare)."""
    corners = self._source[self._triangles]  # [F, 3, 2]
    weights = _barycentric(np.repeat(flat, len(corners), 0),
                           np.tile(corners, (len(flat), 1, 1))).reshape(len(flat), len(corners), 3)
    best = weights.min(-1).argmax(-1)
    chosen = weights[np.arange(len(flat)), best]
    targets = self._reference[self._triangles[best]]
    return np.einsum('nk,nkd->nd', chosen, targets)
