"""Camera and lighting effects: exposure, white balance, uneven light, cast shadows, glare, blur, noise.

A ``Look`` is sampled once per still (or once per clip, plus per-frame flicker) and applied to the clean
render; JPEG artefacts come from saving stills at the look's quality (clips get H.264's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from training.synth.textures import smooth_noise

NOISE_MARGIN_PX = 16


@dataclass
class Look:
    """Photometric parameters; ``light`` and ``glare`` are per-pixel fields computed at sampling."""

    gain: float
    white_balance: tuple[float, float, float]
    gamma: float
    light: np.ndarray  # (h, w, 1) multiplicative illumination: vignette, gradient, cast shadows
    glare: np.ndarray  # (h, w, 1) additive specular glare
    blur_sigma: float
    motion_px: int
    noise_sigma: float
    jpeg_quality: int
    cache: dict = field(default_factory=dict, repr=False)  # derived per-pixel maps, filled on first use


def sample_look(rng: np.random.Generator, width: int, height: int) -> Look:
    """Domain randomisation of a kitchen camera's picture (fields drawn at 1/4 resolution, then resized)."""
    w, h = width // 4, height // 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    light = 1 - rng.uniform(0.1, 0.5) * r2
    ang = rng.uniform(0, 2 * np.pi)
    light *= 1 + rng.uniform(0, 0.35) * ((xx / w - 0.5) * np.cos(ang) + (yy / h - 0.5) * np.sin(ang))
    light *= 1 + 0.06 * smooth_noise(rng, h, w, w / 3)
    for _ in range(int(rng.choice(3, p=[0.45, 0.4, 0.15]))):  # soft cast shadows (people, shelves, hoods)
        m = np.zeros((h, w), np.float32)
        pts = np.column_stack([rng.uniform(-0.2, 1.2, 5) * w, rng.uniform(-0.2, 1.2, 5) * h])
        cv2.fillPoly(m, [cv2.convexHull(pts.astype(np.int32))], 1.0)
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(2, 8))
        light *= 1 - rng.uniform(0.15, 0.45) * m
    glare = np.zeros((h, w), np.float32)
    for _ in range(int(rng.choice(3, p=[0.5, 0.35, 0.15]))):
        cv2.ellipse(
            glare,
            (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
            (int(rng.uniform(3, 15)), int(rng.uniform(1, 6))),
            rng.uniform(0, 180),
            0,
            360,
            float(rng.uniform(40, 140)),
            -1,
        )
    glare = cv2.GaussianBlur(glare, (0, 0), rng.uniform(1, 3))
    temp = rng.normal(0, 0.08)  # warm (+) / cool (-) light
    wb = (1 + temp + rng.normal(0, 0.03), 1 + rng.normal(0, 0.03), 1 - temp + rng.normal(0, 0.03))
    size = (width, height)
    return Look(
        gain=float(rng.uniform(0.6, 1.3)),
        white_balance=tuple(float(v) for v in wb),
        gamma=float(rng.uniform(0.8, 1.25)),
        light=cv2.resize(light, size)[..., None],
        glare=cv2.resize(glare, size)[..., None],
        blur_sigma=float(rng.choice([0.0, rng.uniform(0.4, 1.3)], p=[0.5, 0.5])),
        motion_px=int(rng.choice([0, 0, 0, 3, 5])),
        noise_sigma=float(rng.uniform(1.5, 9.0)),
        jpeg_quality=int(rng.integers(35, 92)),
    )


def _gain_map(look: Look) -> np.ndarray:
    """Illumination x white balance x exposure, (h, w, 3) float32, computed once per look."""
    if look.cache.get("gain") is None:
        wb = np.asarray(look.white_balance, np.float32) * np.float32(look.gain)
        look.cache["gain"] = np.ascontiguousarray(look.light * wb, np.float32)
        look.cache["glare"] = np.ascontiguousarray(np.repeat(look.glare, 3, axis=2), np.float32)
        lut = 255.0 * (np.arange(256) / 255.0) ** look.gamma
        look.cache["gamma_lut"] = np.clip(np.round(lut), 0, 255).astype(np.uint8)
    return look.cache["gain"]


def _noise_window(look: Look, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sensor noise (luma + blotchy chroma) for one frame: a random window of a field drawn once per look,
    so that clips pay for the noise once (the window moves every frame, so the grain does not stand still)."""
    m = NOISE_MARGIN_PX
    if look.cache.get("noise") is None:
        H, W = h + 2 * m, w + 2 * m
        luma = rng.standard_normal((H, W, 1), dtype=np.float32)
        chroma = cv2.resize(rng.standard_normal((H // 2, W // 2, 3), dtype=np.float32), (W, H)) * 0.5
        look.cache["noise"] = (luma + chroma) * np.float32(look.noise_sigma)
    dy, dx = rng.integers(0, 2 * m + 1, 2)
    return look.cache["noise"][dy : dy + h, dx : dx + w]


def apply_look(
    img: np.ndarray, look: Look, rng: np.random.Generator, flicker: float = 1.0, motion_angle: float = 0.0
) -> np.ndarray:
    """Clean float32 RGB render -> camera-like uint8 RGB."""
    out = cv2.multiply(img, _gain_map(look), scale=flicker)
    out = cv2.convertScaleAbs(cv2.add(out, look.cache["glare"]))
    out = cv2.LUT(out, look.cache["gamma_lut"])
    if look.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), look.blur_sigma)
    if look.motion_px:
        k = np.zeros((look.motion_px, look.motion_px), np.float32)
        c = look.motion_px // 2
        dx, dy = np.cos(motion_angle) * c, np.sin(motion_angle) * c
        cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
        out = cv2.filter2D(out, -1, k / k.sum())
    h, w = out.shape[:2]
    return cv2.add(out, _noise_window(look, rng, h, w), dtype=cv2.CV_8U)
