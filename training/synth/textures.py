"""Procedural surface textures: counters, wall tiles and cutting-board faces with wear.

All textures are float32 RGB arrays in 0..255, drawn at a known pixel density (px per cm) in the
surface's own flat coordinates, and warped into the image by the camera later.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell_px: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with features about ``cell_px`` pixels wide."""
    gh, gw = max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _tint(gray: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    return gray[..., None] * (np.asarray(rgb, np.float32) / 255.0)


def brushed_steel(rng: np.random.Generator, h: int, w: int, ppc: float) -> np.ndarray:
    """Stainless steel brushed along X, with broad reflections and a few smudges."""
    base = rng.uniform(135, 200)
    streak = cv2.resize(rng.standard_normal((h, max(2, w // 40))).astype(np.float32), (w, h))
    fine = rng.standard_normal((h, w)).astype(np.float32)
    broad = smooth_noise(rng, h, w, 40 * ppc)
    gray = base + 7 * streak + 3 * fine + 22 * broad
    smudge = np.clip(smooth_noise(rng, h, w, 8 * ppc), 0, None)
    gray -= 10 * smudge
    tint = (rng.uniform(235, 250), rng.uniform(240, 252), 255.0)
    return np.clip(_tint(gray, tint), 0, 255)


def tiles(
    rng: np.random.Generator, h: int, w: int, ppc: float, rgb: tuple[float, ...] | None = None
) -> np.ndarray:
    """Glazed square tiles with grout lines and per-tile shade."""
    if rgb is None:
        palette = [
            (235, 232, 225),
            (214, 210, 200),
            (190, 195, 198),
            (170, 185, 175),
            (225, 215, 190),
            (120, 125, 130),
            (200, 90, 70),
        ]
        rgb = palette[rng.integers(len(palette))]
    tile = rng.uniform(10, 25) * ppc
    ny, nx = int(h / tile) + 2, int(w / tile) + 2
    shade = cv2.resize(
        rng.normal(1.0, 0.04, (ny, nx)).astype(np.float32),
        (int(nx * tile), int(ny * tile)),
        interpolation=cv2.INTER_NEAREST,
    )[:h, :w]
    img = _tint(shade * 255.0, rgb) + 4 * smooth_noise(rng, h, w, 3 * ppc)[..., None]
    grout_rgb = np.asarray(rgb, np.float32) * rng.uniform(0.45, 0.8)
    gw = max(1, round(0.35 * ppc))
    mask = np.zeros((h, w), np.uint8)
    for k in range(nx + 1):
        x = int(k * tile)
        cv2.line(mask, (x, 0), (x, h), 255, gw)
    for k in range(ny + 1):
        y = int(k * tile)
        cv2.line(mask, (0, y), (w, y), 255, gw)
    img[mask > 0] = grout_rgb
    return np.clip(img, 0, 255)


def speckled_stone(rng: np.random.Generator, h: int, w: int, ppc: float) -> np.ndarray:
    """Grey/beige composite or granite worktop."""
    rgb = [(180, 178, 172), (120, 118, 115), (205, 195, 175), (70, 70, 72)][rng.integers(4)]
    gray = 255 + 10 * smooth_noise(rng, h, w, 6 * ppc) + 14 * rng.standard_normal((h, w)).astype(np.float32)
    return np.clip(_tint(gray, rgb), 0, 255)


def counter_texture(rng: np.random.Generator, h: int, w: int, ppc: float) -> np.ndarray:
    """A counter top: mostly stainless steel, else tiles or stone."""
    kind = rng.choice(3, p=[0.55, 0.3, 0.15])
    if kind == 0:
        return brushed_steel(rng, h, w, ppc)
    if kind == 1:
        return tiles(rng, h, w, ppc)
    return speckled_stone(rng, h, w, ppc)


def wood_grain(rng: np.random.Generator, h: int, w: int, ppc: float) -> np.ndarray:
    """Gray-level wood grain along the long (x) axis, 0..1."""
    yy = np.arange(h, dtype=np.float32)[:, None] / ppc
    warp = 1.5 * smooth_noise(rng, h, w, 12 * ppc) + 0.3 * smooth_noise(rng, h, w, 3 * ppc)
    freq = rng.uniform(0.6, 1.4)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (yy + warp))
    fibre = cv2.resize(rng.standard_normal((h, max(2, w // 25))).astype(np.float32), (w, h))
    return np.clip(0.8 + 0.14 * rings**3 + 0.05 * fibre, 0, 1)


def add_wear(rng: np.random.Generator, img: np.ndarray, ppc: float, amount: float) -> np.ndarray:
    """Knife scratches, cut-mark patches, stains and fading on a board face, in place; ``amount`` 0..1."""
    h, w = img.shape[:2]
    scratches = np.zeros((h, w), np.float32)
    for _ in range(int(amount * 60)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.normal(0, 0.5) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
        ln = rng.uniform(1, 8) * ppc
        p1 = (int(x), int(y))
        p2 = (int(x + ln * np.cos(ang)), int(y + ln * np.sin(ang)))
        cv2.line(scratches, p1, p2, float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
    img -= (scratches * rng.uniform(25, 60))[..., None]
    stains = np.clip(smooth_noise(rng, h, w, 5 * ppc) - rng.uniform(0.8, 1.6), 0, None)
    stain_rgb = np.asarray(
        [(120, 80, 40), (140, 40, 40), (90, 100, 40), (60, 50, 45)][rng.integers(4)], np.float32
    )
    a = np.clip(stains * amount * 0.9, 0, 0.6)[..., None]
    img[:] = img * (1 - a) + stain_rgb * a
    fade = np.clip(smooth_noise(rng, h, w, 15 * ppc), 0, None)[..., None] * amount * 0.12
    img[:] = img * (1 - fade) + 235 * fade
    return img


def board_face(
    rng: np.random.Generator, h: int, w: int, ppc: float, rgb: tuple[float, float, float], wood: bool
) -> np.ndarray:
    """Top face of a cutting board: coloured plastic or colour-stained wood, then wear."""
    if wood:
        grain = wood_grain(rng, h, w, ppc)
        natural = np.asarray((200, 160, 115), np.float32)
        colour = np.asarray(rgb, np.float32) * 0.85 + natural * 0.15
        img = grain[..., None] * colour
    else:
        gray = (
            1.0
            + 0.025 * smooth_noise(rng, h, w, 4 * ppc)
            + 0.02 * rng.standard_normal((h, w)).astype(np.float32)
        )
        img = gray[..., None] * np.asarray(rgb, np.float32)
    return np.clip(add_wear(rng, img, ppc, float(rng.uniform(0.1, 1.0))), 0, 255)
