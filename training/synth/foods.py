"""Top-down food sprites: four categories, several looks each, drawn procedurally.

A sprite is (rgb float32 HxWx3 0..255, alpha float32 HxW 0..1) at ``ppc`` pixels per cm, centred, with its
long side along x; the camera warps it onto the board or counter plane.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from training.synth.textures import smooth_noise

Sprite = tuple[np.ndarray, np.ndarray]


class _Canvas:
    """A drawing surface of ``w_cm`` x ``h_cm`` with a helper for filled, textured shapes."""

    def __init__(self, rng: np.random.Generator, w_cm: float, h_cm: float, ppc: float) -> None:
        self.rng, self.ppc = rng, ppc
        self.w, self.h = int(w_cm * ppc) + 6, int(h_cm * ppc) + 6
        self.rgb = np.zeros((self.h, self.w, 3), np.float32)
        self.alpha = np.zeros((self.h, self.w), np.float32)

    def blob(
        self, cx: float, cy: float, rx: float, ry: float, rough: float = 0.12, angle: float = 0.0, n: int = 28
    ) -> np.ndarray:
        """Irregular ellipse polygon; centre and radii in cm from the canvas centre."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = 1 + rough * smooth_noise(self.rng, 1, n, 3)[0] * 0.6
        x, y = rx * r * np.cos(t), ry * r * np.sin(t)
        c, s = np.cos(angle), np.sin(angle)
        px = (x * c - y * s + cx) * self.ppc + self.w / 2
        py = (x * s + y * c + cy) * self.ppc + self.h / 2
        return np.stack([px, py], 1).astype(np.int32)

    def mask(self, polys: list[np.ndarray]) -> np.ndarray:
        m = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(m, polys, 255, cv2.LINE_AA)
        return m

    def paint(
        self,
        m: np.ndarray,
        rgb: tuple[float, ...],
        grain: float = 0.06,
        cell_cm: float = 0.8,
        dome: float = 0.35,
    ) -> None:
        """Fill mask ``m`` with a colour, smooth grain and a rounded (domed) shading."""
        a = m.astype(np.float32) / 255.0
        tex = 1 + grain * smooth_noise(self.rng, self.h, self.w, cell_cm * self.ppc)
        if dome > 0:
            d = cv2.distanceTransform((m > 127).astype(np.uint8), cv2.DIST_L2, 3)
            d = np.sqrt(np.clip(d / (d.max() + 1e-6), 0, 1))
            tex *= 1 - dome + dome * d
        col = np.asarray(rgb, np.float32) * tex[..., None]
        self.rgb = self.rgb * (1 - a[..., None]) + col * a[..., None]
        self.alpha = np.maximum(self.alpha, a)

    def lines(
        self, pts: list[tuple[float, float]], rgb: tuple[float, ...], width_cm: float, opacity: float = 1.0
    ) -> None:
        """A polyline in cm coordinates, blended over what is there (does not widen the alpha)."""
        m = np.zeros((self.h, self.w), np.uint8)
        p = np.array([[x * self.ppc + self.w / 2, y * self.ppc + self.h / 2] for x, y in pts], np.int32)
        cv2.polylines(m, [p], False, 255, max(1, int(width_cm * self.ppc)), cv2.LINE_AA)
        a = (m.astype(np.float32) / 255.0 * opacity * self.alpha)[..., None]
        self.rgb = self.rgb * (1 - a) + np.asarray(rgb, np.float32) * a

    def highlight(self, cx: float, cy: float, r: float, strength: float) -> None:
        m = np.zeros((self.h, self.w), np.float32)
        centre = (int(cx * self.ppc + self.w / 2), int(cy * self.ppc + self.h / 2))
        cv2.circle(m, centre, max(1, int(r * self.ppc)), 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), max(1.0, r * self.ppc / 2)) * self.alpha
        self.rgb += (255 - self.rgb) * (m * strength)[..., None]

    def sprite(self) -> Sprite:
        return np.clip(self.rgb, 0, 255), self.alpha


def _jit(rng: np.random.Generator, rgb: tuple[float, ...], s: float = 12) -> tuple[float, ...]:
    return tuple(float(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, s, 3), 0, 255))


# ---- raw meat -------------------------------------------------------------------------------------------
def steak(c: _Canvas, L: float) -> None:
    r = c.rng
    c.paint(c.mask([c.blob(0, 0, L / 2, L * 0.33, 0.25)]), _jit(r, (235, 225, 200)), dome=0.2)
    c.paint(c.mask([c.blob(-L * 0.06, 0.04 * L, L * 0.43, L * 0.27, 0.2)]), _jit(r, (160, 32, 38)), 0.1)
    for _ in range(r.integers(3, 8)):
        x0, y0 = r.uniform(-L * 0.35, L * 0.3), r.uniform(-L * 0.2, L * 0.2)
        pts = [(x0 + k * L * 0.05, y0 + r.normal(0, L * 0.02)) for k in range(r.integers(2, 6))]
        c.lines(pts, (235, 215, 205), 0.12, 0.7)


def chicken(c: _Canvas, L: float) -> None:
    r = c.rng
    skin = _jit(r, (238, 190, 170))
    if r.random() < 0.5:  # drumstick: bulb, shank and bone knob
        c.paint(c.mask([c.blob(-L * 0.15, 0, L * 0.33, L * 0.24, 0.1)]), skin, 0.08, dome=0.5)
        shaft = np.array([[0.1, -0.07], [0.45, -0.035], [0.45, 0.035], [0.1, 0.07]]) * L
        c.paint(c.mask([(shaft * c.ppc + [c.w / 2, c.h / 2]).astype(np.int32)]), skin, 0.06, dome=0.3)
        c.paint(c.mask([c.blob(L * 0.46, 0, L * 0.05, L * 0.06, 0.05)]), (240, 232, 215), 0.03, dome=0.2)
    else:  # thigh: lumpy pale slab
        c.paint(c.mask([c.blob(0, 0, L / 2, L * 0.36, 0.3)]), skin, 0.1, 0.5, dome=0.45)
    c.highlight(-L * 0.1, -L * 0.08, L * 0.1, 0.25)


def minced(c: _Canvas, L: float) -> None:
    r = c.rng
    m = c.mask([c.blob(0, 0, L / 2, L * 0.42, 0.18)])
    c.paint(m, _jit(r, (190, 70, 75)), 0.05, dome=0.5)
    speck = (r.random((c.h, c.w)) < 0.12).astype(np.float32)[..., None] * (m[..., None] / 255.0) * 0.6
    c.rgb = c.rgb * (1 - speck) + np.asarray((235, 190, 185), np.float32) * speck


def pork_belly(c: _Canvas, L: float) -> None:
    r = c.rng
    W = L * r.uniform(0.4, 0.6)
    c.paint(c.mask([c.blob(0, 0, L / 2, W / 2, 0.05, n=40)]), _jit(r, (240, 228, 215)), 0.05, dome=0.2)
    y = -W / 2
    while y < W / 2:
        t = W * r.uniform(0.1, 0.22)
        c.lines(
            [(-L / 2, y + t / 2), (L / 2, y + t / 2 + r.normal(0, 0.2))],
            _jit(r, (200, 95, 95)),
            t * 0.6,
            0.95,
        )
        y += t * 1.6
    c.lines([(-L / 2, -W / 2), (L / 2, -W / 2)], (215, 170, 120), W * 0.18, 1.0)


# ---- raw seafood ----------------------------------------------------------------------------------------
def fish(c: _Canvas, L: float) -> None:
    r = c.rng
    back = _jit(r, [(110, 120, 130), (150, 150, 140), (120, 95, 90)][r.integers(3)])
    tail = np.array([[0.3, 0], [0.5, -0.15], [0.47, 0], [0.5, 0.15]]) * L
    c.paint(c.mask([(tail * c.ppc + [c.w / 2, c.h / 2]).astype(np.int32)]), back, 0.1, dome=0)
    c.paint(c.mask([c.blob(-L * 0.18, -L * 0.1, L * 0.12, L * 0.05, 0.1)]), back, 0.1, dome=0)  # dorsal fin
    body = c.mask([c.blob(-L * 0.07, 0, L * 0.38, L * 0.16, 0.03, n=40)])
    c.paint(body, back, 0.05, dome=0.45)
    yy = (np.arange(c.h, dtype=np.float32)[:, None] - c.h / 2) / (L * 0.16 * c.ppc)
    belly = np.clip(yy, 0, 1) * (body / 255.0)
    c.rgb += (235 - c.rgb) * belly[..., None] * 0.7
    xx, yv = np.meshgrid(np.arange(c.w), np.arange(c.h))
    scales = (np.sin(xx * 2.2 / c.ppc * 3) * np.sin(yv * 2.2 / c.ppc * 3) > 0.6) * (body / 255.0)
    c.rgb -= (scales * 18)[..., None]
    c.lines([(-L * 0.3, -L * 0.09), (-L * 0.27, 0), (-L * 0.3, L * 0.09)], (80, 70, 70), 0.15, 0.8)  # gill
    ex = -L * 0.37
    cv2.circle(
        c.rgb,
        (int(ex * c.ppc + c.w / 2), int(c.h / 2 - L * 0.03 * c.ppc)),
        max(2, int(L * 0.03 * c.ppc)),
        (225, 225, 215),
        -1,
        cv2.LINE_AA,
    )
    cv2.circle(
        c.rgb,
        (int(ex * c.ppc + c.w / 2), int(c.h / 2 - L * 0.03 * c.ppc)),
        max(1, int(L * 0.016 * c.ppc)),
        (20, 20, 25),
        -1,
        cv2.LINE_AA,
    )
    c.highlight(-L * 0.1, -L * 0.05, L * 0.1, 0.3)


def shrimp(c: _Canvas, L: float) -> None:
    r = c.rng
    col = _jit(r, [(175, 180, 185), (215, 165, 150), (200, 190, 180)][r.integers(3)])
    n = int(r.integers(1, 4))
    for k in range(n):
        oy = (k - (n - 1) / 2) * L * 0.15
        t = np.linspace(-0.2, 1.0 * np.pi, 8)
        rad = L * 0.25
        for j, a in enumerate(t):
            x, y = rad * np.cos(a) * 1.3, rad * np.sin(a) + oy
            seg = L * 0.09 * (1 - j / 12)
            c.paint(c.mask([c.blob(x, y, seg, seg, 0.02, n=12)]), col, 0.05, dome=0.5)
        c.lines([(rad * 1.3, oy), (rad * 1.6, oy - L * 0.1)], (120, 110, 110), 0.05, 0.8)


def squid(c: _Canvas, L: float) -> None:
    r = c.rng
    col = _jit(r, (235, 220, 225))
    mantle = np.array([[-0.5, 0], [-0.35, -0.12], [0.1, -0.12], [0.1, 0.12], [-0.35, 0.12]]) * L
    c.paint(c.mask([(mantle * c.ppc + [c.w / 2, c.h / 2]).astype(np.int32)]), col, 0.04, dome=0.4)
    c.paint(c.mask([c.blob(-L * 0.42, 0, L * 0.08, L * 0.18, 0.05)]), col, 0.04, dome=0.2)  # fins
    c.paint(c.mask([c.blob(L * 0.16, 0, L * 0.07, L * 0.08, 0.05)]), _jit(r, (200, 170, 180)), 0.05)
    for k in range(6):
        y = (k - 2.5) * L * 0.03
        c.paint(
            c.mask(
                [
                    np.array(
                        [
                            [(L * 0.18) * c.ppc + c.w / 2, (y) * c.ppc + c.h / 2],
                            [(L * 0.5) * c.ppc + c.w / 2, (y * 2.2) * c.ppc + c.h / 2],
                            [(L * 0.5) * c.ppc + c.w / 2, (y * 2.2 + L * 0.02) * c.ppc + c.h / 2],
                        ],
                        np.int32,
                    )
                ]
            ),
            _jit(r, (215, 175, 190)),
            0.05,
            dome=0,
        )
    speck = (c.rng.random((c.h, c.w)) < 0.05).astype(np.float32) * c.alpha * 0.5
    c.rgb = c.rgb * (1 - speck[..., None]) + np.asarray((150, 70, 120), np.float32) * speck[..., None]


def shellfish(c: _Canvas, L: float) -> None:
    r = c.rng
    mussel = r.random() < 0.5
    for _ in range(r.integers(4, 8)):
        x, y, a = r.uniform(-L * 0.3, L * 0.3), r.uniform(-L * 0.22, L * 0.22), r.uniform(0, np.pi)
        if mussel:
            c.paint(
                c.mask([c.blob(x, y, L * 0.17, L * 0.08, 0.05, a)]), _jit(r, (40, 40, 55), 8), 0.1, dome=0.4
            )
            c.highlight(x, y, L * 0.04, 0.35)
        else:
            c.paint(
                c.mask([c.blob(x, y, L * 0.13, L * 0.11, 0.04, a)]), _jit(r, (205, 190, 160)), 0.1, dome=0.5
            )


# ---- vegetables -----------------------------------------------------------------------------------------
def leafy(c: _Canvas, L: float) -> None:
    r = c.rng
    for k in range(r.integers(3, 6)):
        a = r.normal(0, 0.25)
        c.paint(
            c.mask([c.blob(L * 0.05, (k - 2) * L * 0.05, L * 0.42, L * 0.16, 0.2, a)]),
            _jit(r, (60, 140, 50), 15),
            0.12,
            dome=0.3,
        )
        c.lines([(-L * 0.45, (k - 2) * L * 0.04), (L * 0.3, (k - 2) * L * 0.06)], (215, 235, 190), 0.5, 0.9)


def tomatoes(c: _Canvas, L: float) -> None:
    r = c.rng
    n = int(r.integers(1, 4))
    rad = L / (2 * n) * 1.05 if n > 1 else L / 2
    for k in range(n):
        x = (k - (n - 1) / 2) * rad * 1.9
        c.paint(
            c.mask([c.blob(x, r.normal(0, rad * 0.15), rad, rad * 0.95, 0.05)]),
            _jit(r, (215, 45, 35)),
            0.03,
            dome=0.45,
        )
        c.highlight(x - rad * 0.3, -rad * 0.3, rad * 0.2, 0.55)
        for a in np.linspace(0, 2 * np.pi, 5, endpoint=False):
            c.lines([(x, 0), (x + rad * 0.3 * np.cos(a), rad * 0.3 * np.sin(a))], (60, 120, 40), 0.2)


def carrots(c: _Canvas, L: float) -> None:
    r = c.rng
    n = int(r.integers(2, 5))
    for k in range(n):
        y = (k - (n - 1) / 2) * L * 0.15
        poly = np.array([[-0.5, -0.07], [0.3, -0.025], [0.38, 0], [0.3, 0.025], [-0.5, 0.07]]) * L + [0, y]
        c.paint(
            c.mask([(poly * c.ppc + [c.w / 2, c.h / 2]).astype(np.int32)]),
            _jit(r, (235, 120, 30)),
            0.05,
            dome=0.4,
        )
        for x in np.linspace(-0.4, 0.2, 6):
            c.lines([(x * L, y - 0.04 * L), (x * L + 0.3, y + 0.04 * L)], (190, 90, 20), 0.08, 0.6)
        c.paint(c.mask([c.blob(-0.5 * L, y, L * 0.06, L * 0.05, 0.3)]), (70, 140, 50), 0.1, dome=0)


def pepper(c: _Canvas, L: float) -> None:
    r = c.rng
    col = _jit(r, [(40, 140, 40), (210, 30, 30), (245, 200, 30), (240, 130, 20)][r.integers(4)])
    polys = [
        c.blob(dx * L * 0.18, dy * L * 0.18, L * 0.3, L * 0.3, 0.08)
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1))
    ]
    c.paint(c.mask(polys), col, 0.03, dome=0.5)
    c.highlight(-L * 0.15, -L * 0.2, L * 0.08, 0.6)
    c.paint(c.mask([c.blob(0, 0, L * 0.07, L * 0.07, 0.1)]), (70, 110, 40), 0.05, dome=0)


def cucumber(c: _Canvas, L: float) -> None:
    r = c.rng
    n = int(r.integers(2, 4))
    for k in range(n):
        y = (k - (n - 1) / 2) * L * 0.18
        c.paint(
            c.mask([c.blob(0, y, L / 2, L * 0.08, 0.02, r.normal(0, 0.05), n=40)]),
            _jit(r, (45, 95, 40), 8),
            0.08,
            dome=0.5,
        )
        for _ in range(14):
            x = r.uniform(-0.45, 0.45) * L
            c.lines([(x, y + r.normal(0, L * 0.03)), (x + 0.1, y)], (160, 190, 120), 0.12, 0.7)


def sliced_veg(c: _Canvas, L: float) -> None:
    r = c.rng
    rim, flesh = [
        ((50, 100, 40), (200, 225, 160)),
        ((225, 110, 25), (245, 150, 50)),
        ((180, 40, 40), (225, 90, 80)),
    ][r.integers(3)]
    rad = L * 0.14
    for k in range(int(r.integers(4, 8))):
        x, y = -L / 2 + rad + k * rad * 1.25, r.normal(0, rad * 0.4)
        if x + rad > L / 2:
            x, y = x - L * 0.6, y + rad * 1.6
        c.paint(c.mask([c.blob(x, y, rad, rad, 0.03)]), rim, 0.03, dome=0)
        c.paint(c.mask([c.blob(x, y, rad * 0.85, rad * 0.85, 0.03)]), flesh, 0.05, dome=0.2)


# ---- cooked food ----------------------------------------------------------------------------------------
def braised(c: _Canvas, L: float) -> None:
    r = c.rng
    c.paint(c.mask([c.blob(0, 0, L / 2, L * 0.38, 0.15)]), _jit(r, (95, 45, 20), 8), 0.05, dome=0.1)  # sauce
    for _ in range(r.integers(4, 8)):
        x, y = r.uniform(-L * 0.3, L * 0.3), r.uniform(-L * 0.2, L * 0.2)
        c.paint(
            c.mask([c.blob(x, y, L * 0.11, L * 0.09, 0.2, r.uniform(0, 3))]),
            _jit(r, (110, 55, 25), 10),
            0.1,
            dome=0.6,
        )
        c.highlight(x - L * 0.03, y - L * 0.03, L * 0.025, 0.5)


def fried(c: _Canvas, L: float) -> None:
    r = c.rng
    rolls = r.random() < 0.4
    for _ in range(r.integers(3, 7)):
        x, y, a = r.uniform(-L * 0.22, L * 0.22), r.uniform(-L * 0.15, L * 0.15), r.uniform(0, 3)
        rx, ry = (L * 0.24, L * 0.09) if rolls else (L * 0.16, L * 0.13)
        c.paint(
            c.mask([c.blob(x, y, rx, ry, 0.25 if not rolls else 0.03, a)]),
            _jit(r, (215, 150, 60)),
            0.15,
            0.3,
            dome=0.5,
        )
    speck = (r.random((c.h, c.w)) < 0.2).astype(np.float32) * c.alpha * 0.35
    c.rgb = c.rgb * (1 - speck[..., None]) + np.asarray((150, 85, 30), np.float32) * speck[..., None]


def rice(c: _Canvas, L: float) -> None:
    r = c.rng
    m = c.mask([c.blob(0, 0, L / 2, L * 0.42, 0.12)])
    c.paint(m, _jit(r, (240, 238, 228), 5), 0.02, dome=0.35)
    grains = (r.random((c.h, c.w)) < 0.3).astype(np.float32)
    grains = cv2.GaussianBlur(grains, (3, 3), 0) * (m / 255.0)
    c.rgb -= (grains * 28)[..., None]


def noodles(c: _Canvas, L: float) -> None:
    r = c.rng
    col = _jit(r, [(235, 210, 140), (240, 235, 215), (200, 160, 90)][r.integers(3)])
    c.paint(c.mask([c.blob(0, 0, L / 2, L * 0.4, 0.15)]), col, 0.05, dome=0.4)
    for _ in range(25):
        x0, y0 = r.uniform(-L * 0.4, L * 0.3), r.uniform(-L * 0.3, L * 0.3)
        a = r.uniform(0, np.pi)
        pts = [
            (x0 + k * L * 0.05 * np.cos(a + 0.5 * np.sin(k)), y0 + k * L * 0.05 * np.sin(a + 0.5 * np.sin(k)))
            for k in range(5)
        ]
        c.lines(pts, tuple(v * 0.8 for v in col), 0.08, 0.7)


def duck_slices(c: _Canvas, L: float) -> None:
    """Roast duck / char siu slices: glazed mahogany skin over browned meat (raw pork belly is pale)."""
    r = c.rng
    n = int(r.integers(4, 8))
    w = L / n
    meat = _jit(r, (175, 105, 70), 10)
    for k in range(n):
        x = -L / 2 + (k + 0.5) * w
        poly = np.array(
            [[x - w * 0.6, -L * 0.2], [x + w * 0.6, -L * 0.2], [x + w * 0.6, L * 0.2], [x - w * 0.6, L * 0.2]]
        )
        c.paint(c.mask([(poly * c.ppc + [c.w / 2, c.h / 2]).astype(np.int32)]), meat, 0.08, dome=0.2)
        skin = _jit(r, (105, 35, 15), 8)
        c.lines([(x - w * 0.6, -L * 0.17), (x + w * 0.6, -L * 0.17)], skin, L * 0.14, 1.0)
        c.lines([(x - w * 0.6, -L * 0.2), (x - w * 0.6, L * 0.2)], (90, 45, 25), 0.1, 0.7)
    c.highlight(0, -L * 0.17, L * 0.1, 0.35)  # glaze


# category -> [(look name, drawer, typical length range cm)]
LOOKS: dict[str, list[tuple[str, Callable[[_Canvas, float], None], tuple[float, float]]]] = {
    "raw_meat": [
        ("steak", steak, (10, 17)),
        ("chicken", chicken, (9, 14)),
        ("minced", minced, (8, 13)),
        ("pork_belly", pork_belly, (11, 17)),
    ],
    "raw_seafood": [
        ("fish", fish, (16, 26)),
        ("shrimp", shrimp, (8, 12)),
        ("squid", squid, (13, 20)),
        ("shellfish", shellfish, (9, 13)),
    ],
    "vegetable": [
        ("leafy", leafy, (12, 18)),
        ("tomatoes", tomatoes, (7, 14)),
        ("carrots", carrots, (12, 18)),
        ("pepper", pepper, (7, 10)),
        ("cucumber", cucumber, (14, 20)),
        ("sliced_veg", sliced_veg, (9, 13)),
    ],
    "cooked_food": [
        ("braised", braised, (9, 14)),
        ("fried", fried, (9, 14)),
        ("rice", rice, (8, 12)),
        ("noodles", noodles, (9, 14)),
        ("duck_slices", duck_slices, (10, 15)),
    ],
}


def food_sprite(rng: np.random.Generator, category: str, look: int, length_cm: float, ppc: float) -> Sprite:
    """Draw one food item of ``category`` with look index ``look``; long side ``length_cm``."""
    _, draw, _ = LOOKS[category][look]
    c = _Canvas(rng, length_cm * 1.05, length_cm * 0.9, ppc)
    draw(c, length_cm)
    return c.sprite()
