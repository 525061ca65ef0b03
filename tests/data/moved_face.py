"""A face image moved by a known shift and rotation (the face tests' motion)."""

import cv2


def shift(image, dx, dy=0.0, angle=0.0):
  h, w = image.shape[:2]
  m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
  m[:, 2] += (dx, dy)
  return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
