"""Image layers: what each drawn object contributes, and compositing them with an ownership map.

Every object is drawn as one or more layers (a patch of colour with an alpha at a position); compositing
them in order gives the image and, per pixel, which object is seen there (``owner``), from which exact
labels and visibility fractions follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Layer:
    """A patch at (x0, y0): colour ``rgb`` (h, w, 3) float32 0..255 and coverage ``alpha`` (h, w) 0..1.

    ``owner`` is the scene object's id; a shade layer (``rgb`` None) only darkens by ``alpha`` and owns
    nothing (shadows).
    """

    x0: int
    y0: int
    rgb: np.ndarray | None
    alpha: np.ndarray
    owner: int

    @property
    def mask(self) -> np.ndarray:
        return self.alpha > 0.5


def warp_layer(
    rgb: np.ndarray, alpha: np.ndarray, H: np.ndarray, owner: int, width: int, height: int
) -> Layer | None:
    """Warp a flat sprite through homography ``H`` (sprite px -> image) into a layer clipped to the frame."""
    h, w = alpha.shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ H.T
    if np.any(corners[:, 2] <= 0):
        return None
    uv = corners[:, :2] / corners[:, 2:3]
    x0, y0 = max(0, int(np.floor(uv[:, 0].min()))), max(0, int(np.floor(uv[:, 1].min())))
    x1, y1 = min(width, int(np.ceil(uv[:, 0].max())) + 1), min(height, int(np.ceil(uv[:, 1].max())) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    Hl = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ H
    rgba = np.dstack([rgb, alpha * 255.0]).astype(np.float32)
    out = cv2.warpPerspective(
        rgba,
        Hl,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    return Layer(x0, y0, out[..., :3], out[..., 3] / 255.0, owner)


def poly_bounds(polys: list[np.ndarray], width: int, height: int, pad: int = 2) -> tuple[int, int, int, int]:
    """Clipped integer bounding box (x0, y0, x1, y1) of image polygons."""
    pts = np.concatenate([p.reshape(-1, 2) for p in polys])
    x0, y0 = max(0, int(np.floor(pts[:, 0].min())) - pad), max(0, int(np.floor(pts[:, 1].min())) - pad)
    x1 = min(width, int(np.ceil(pts[:, 0].max())) + pad)
    y1 = min(height, int(np.ceil(pts[:, 1].max())) + pad)
    return x0, y0, max(x0, x1), max(y0, y1)


class PatchPainter:
    """Paints filled image-space polygons into one layer (used for 3-D things: containers, bottles, arms)."""

    def __init__(self, polys: list[np.ndarray], owner: int, width: int, height: int) -> None:
        self.x0, self.y0, x1, y1 = poly_bounds(polys, width, height)
        self.w, self.h = x1 - self.x0, y1 - self.y0
        self.owner = owner
        self.rgb = np.zeros((self.h, self.w, 3), np.float32)
        self.alpha = np.zeros((self.h, self.w), np.float32)

    @property
    def empty(self) -> bool:
        return self.w < 2 or self.h < 2

    def local(self, poly: np.ndarray) -> np.ndarray:
        return np.round((poly.reshape(-1, 2) - [self.x0, self.y0]) * 4).astype(np.int32)

    def region(self, polys: list[np.ndarray], within: np.ndarray | None = None) -> np.ndarray:
        """Float coverage (anti-aliased) of image polygons in patch coordinates, optionally intersected."""
        m = np.zeros((self.h, self.w), np.uint8)
        if not self.empty:
            cv2.fillPoly(m, [self.local(p) for p in polys], 255, cv2.LINE_AA, shift=2)
        a = m.astype(np.float32) / 255.0
        return a if within is None else a * within

    def soft_region(self, polys: list[np.ndarray], sigma_px: float) -> np.ndarray:
        """Blurred coverage of polygons (soft shadows)."""
        a = self.region(polys)
        return a if self.empty else cv2.GaussianBlur(a, (0, 0), sigma_px)

    def fill(self, a: np.ndarray, colour: np.ndarray | tuple[float, ...]) -> None:
        """Blend ``colour`` (an RGB triple or an (h, w, 3) image) over coverage ``a``."""
        col = np.asarray(colour, np.float32)
        self.rgb = self.rgb * (1 - a[..., None]) + col * a[..., None]
        self.alpha = np.maximum(self.alpha, a)

    def layer(self) -> Layer | None:
        if self.empty or not self.alpha.any():
            return None
        return Layer(self.x0, self.y0, self.rgb, self.alpha, self.owner)


def composite(base: np.ndarray, layers: list[Layer]) -> tuple[np.ndarray, np.ndarray]:
    """Blend layers in order over ``base`` (float32 RGB); returns (image, owner map, -1 = background)."""
    img = base.copy()
    owner = np.full(base.shape[:2], -1, np.int32)
    composite_onto(img, owner, layers)
    return img, owner


def composite_onto(img: np.ndarray, owner: np.ndarray, layers: list[Layer]) -> None:
    """Blend layers in order into ``img`` and ``owner``, in place."""
    for L in layers:
        h, w = L.alpha.shape
        sl = (slice(L.y0, L.y0 + h), slice(L.x0, L.x0 + w))
        a = L.alpha[..., None]
        if L.rgb is None:
            img[sl] *= 1 - a
            continue
        img[sl] = img[sl] * (1 - a) + L.rgb * a
        owner[sl][L.mask] = L.owner
