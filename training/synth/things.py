"""The things on a counter and their random looks: boards, food, containers, distractors, arms.

Each ``make_*`` returns a ``SceneObject`` at a pose; food is sized so that its visible short side reaches
``MIN_SHORT_SIDE_PX`` in the frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from training.synth.camera import Camera
from training.synth.foods import LOOKS, food_sprite
from training.synth.objects import CONTAINER_KINDS, CONTENTS, SPRITE_PPC
from training.synth.palette import board_rgb
from training.synth.state import SceneObject

MIN_SHORT_SIDE_PX = 30.0  # smallest labelled object's short side in a 640x360 frame

HARD_NEGATIVE_RGB = [
    (200, 40, 40),
    (40, 90, 180),
    (50, 140, 70),
    (235, 195, 45),
    (235, 235, 230),
    (120, 120, 125),
    (240, 130, 150),
]


@lru_cache(maxsize=512)
def cached_food_sprite(
    category: str, look: int, seed: int, length_cm: float
) -> tuple[np.ndarray, np.ndarray]:
    """A food sprite, cached: the sampler measures it and the renderer draws the same pixels."""
    return food_sprite(np.random.default_rng(seed), category, look, length_cm, SPRITE_PPC)


def footprint_px(
    cam: Camera, x: float, y: float, angle: float, z: float, w_cm: float, h_cm: float
) -> tuple[float, float, float]:
    """Projected bbox (width, height) and in-frame fraction of a w x h rectangle at a pose."""
    c, s = np.cos(angle), np.sin(angle)
    pts = (
        np.array([[-w_cm, -h_cm], [w_cm, -h_cm], [w_cm, h_cm], [-w_cm, h_cm]])
        / 2
        @ np.array([[c, s], [-s, c]])
    )
    uv = cam.project(np.column_stack([pts + np.array((x, y)), np.full(4, z)]))
    x0, y0 = uv.min(0)
    x1, y1 = uv.max(0)
    inside = max(0.0, min(x1, cam.width) - max(x0, 0)) * max(0.0, min(y1, cam.height) - max(y0, 0))
    return x1 - x0, y1 - y0, inside / max(1e-6, (x1 - x0) * (y1 - y0))


def make_food(
    rng: np.random.Generator,
    cam: Camera,
    oid: int,
    category: str,
    x: float,
    y: float,
    z: float,
    parent: int | None,
    look: int | None = None,
) -> SceneObject:
    """A food item at (x, y) sized so its visible short side is at least MIN_SHORT_SIDE_PX."""
    look = int(rng.integers(len(LOOKS[category]))) if look is None else look
    lo, hi = LOOKS[category][look][2]
    length = float(rng.uniform(lo, hi))
    angle = float(rng.uniform(0, np.pi))
    seed = int(rng.integers(2**31))
    for _ in range(4):
        _, alpha = cached_food_sprite(category, look, seed, round(length, 1))
        ys, xs = np.nonzero(alpha > 0.5)
        w_cm = (xs.max() - xs.min() + 1) / SPRITE_PPC if len(xs) else length
        h_cm = (ys.max() - ys.min() + 1) / SPRITE_PPC if len(ys) else length
        pw, ph, _ = footprint_px(cam, x, y, angle, z, w_cm, h_cm)
        short = min(pw, ph)
        if short >= MIN_SHORT_SIDE_PX * cam.width / 640:
            break
        length = min(length * 1.6, length * MIN_SHORT_SIDE_PX * cam.width / 640 / max(short, 1) * 1.08)
    return SceneObject(
        oid, "food", category, x, y, angle, z, (round(length, 1),), 0.0, {"look": look}, seed, parent
    )


def make_board(rng: np.random.Generator, oid: int, colour: str, x: float, y: float) -> SceneObject:
    length = float(rng.uniform(32, 50))
    angle = float(rng.normal(0, 0.18) + (np.pi / 2 if rng.random() < 0.12 else 0.0))
    return SceneObject(
        oid,
        "board",
        f"board_{colour}",
        x,
        y,
        angle,
        0.0,
        (length, length * float(rng.uniform(0.6, 0.78))),
        float(rng.uniform(1.0, 2.6)),
        {"colour": colour, "rgb": board_rgb(rng, colour), "wood": bool(rng.random() < 0.3)},
        int(rng.integers(2**31)),
    )


def make_container(
    rng: np.random.Generator,
    oid: int,
    x: float,
    y: float,
    z: float = 0.0,
    kind: str | None = None,
    filled: bool | None = None,
    parent: int | None = None,
    max_half_cm: float | None = None,
) -> SceneObject:
    """A basin, bowl, plastic box or gastronorm pan; ``max_half_cm`` caps its footprint radius (to fit in)."""
    kind = kind or str(rng.choice(CONTAINER_KINDS, p=[0.3, 0.2, 0.25, 0.25]))
    if kind == "basin":
        size, height, rgb = (rng.uniform(10, 15),), rng.uniform(7, 12), (190, 192, 195)
    elif kind == "bowl":
        size, height = (rng.uniform(7.5, 11),), rng.uniform(5, 8)
        rgb = [(238, 238, 232), (225, 230, 240), (200, 60, 50), (60, 90, 160), (240, 230, 200)][
            rng.integers(5)
        ]
    elif kind == "box":
        L = rng.uniform(16, 26)
        size, height = (L, L * rng.uniform(0.65, 0.85)), rng.uniform(7, 12)
        rgb = [(235, 238, 240), (215, 225, 230), (90, 140, 200), (220, 80, 70), (230, 215, 120)][
            rng.integers(5)
        ]
    else:
        L = rng.uniform(22, 33)
        size, height, rgb = (L, L * rng.uniform(0.6, 0.8)), rng.uniform(6.5, 14), (185, 188, 192)
    if max_half_cm is not None:
        k = min(1.0, max_half_cm / _footprint_radius(size))
        size = tuple(s * k for s in size)
    filled = bool(rng.random() < 0.6) if filled is None else filled
    style = {
        "kind": kind,
        "rgb": tuple(float(v) * rng.uniform(0.9, 1.05) for v in rgb),
        "contents": str(rng.choice(list(CONTENTS))) if filled else None,
        "fill": float(rng.uniform(0.45, 0.85)),
    }
    return SceneObject(
        oid,
        "container",
        "container",
        x,
        y,
        float(rng.uniform(-0.3, 0.3)),
        z,
        tuple(float(s) for s in size),
        float(height),
        style,
        int(rng.integers(2**31)),
        parent,
    )


def container_radius(o: SceneObject) -> float:
    """Radius of a container's footprint disc (its radius, or half the rectangle's diagonal)."""
    return _footprint_radius(o.size)


def _footprint_radius(size: tuple[float, ...]) -> float:
    return size[0] if len(size) == 1 else float(np.hypot(*size)) / 2


def make_distractor(
    rng: np.random.Generator,
    oid: int,
    kind: str,
    x: float,
    y: float,
    z: float = 0.0,
    parent: int | None = None,
) -> SceneObject:
    """Never-labelled things: knife, cloth, sponge, bottle, jar."""
    rgb = HARD_NEGATIVE_RGB[rng.integers(len(HARD_NEGATIVE_RGB))]
    seed = int(rng.integers(2**31))
    angle = float(rng.uniform(0, np.pi))
    if kind == "knife":
        handle = [
            (25, 25, 28),
            (200, 40, 40),
            (40, 90, 180),
            (50, 140, 70),
            (235, 195, 45),
            (120, 80, 50),
            (235, 235, 230),
        ][rng.integers(7)]
        return SceneObject(
            oid, kind, None, x, y, angle, z, (float(rng.uniform(15, 23)),), 0.0, {"rgb": handle}, seed, parent
        )
    if kind == "cloth":
        L = float(rng.uniform(22, 38))
        return SceneObject(
            oid,
            kind,
            None,
            x,
            y,
            angle,
            z,
            (L, L * float(rng.uniform(0.5, 0.8))),
            0.0,
            {"rgb": rgb},
            seed,
            parent,
        )
    if kind == "sponge":
        rgb = [(240, 210, 60), (90, 170, 70), (235, 120, 60)][rng.integers(3)]
        return SceneObject(
            oid, kind, None, x, y, angle, z, (float(rng.uniform(9, 13)), 6.5), 0.0, {"rgb": rgb}, seed, parent
        )
    bottle = kind == "bottle"
    body = [(40, 110, 50), (70, 45, 30), (210, 215, 215), (170, 40, 30), (230, 225, 200)][rng.integers(5)]
    cap = HARD_NEGATIVE_RGB[rng.integers(len(HARD_NEGATIVE_RGB))]
    return SceneObject(
        oid,
        kind,
        None,
        x,
        y,
        0.0,
        z,
        (float(rng.uniform(3, 4.2)) if bottle else float(rng.uniform(3.5, 5.5)),),
        float(rng.uniform(18, 28)) if bottle else float(rng.uniform(7, 12)),
        {"rgb": body, "cap": cap},
        seed,
        parent,
    )


def make_arm(rng: np.random.Generator, cam: Camera, oid: int, x: float, y: float, z: float) -> SceneObject:
    """A worker's forearm reaching in from the near (bottom) edge to a hand at (x, y, z)."""
    u = float(cam.project(np.array([[x, y, z]]))[0, 0])
    sleeves = [(245, 245, 245), (30, 30, 35), (60, 70, 90), (200, 200, 205), (150, 40, 40)]
    gloves = [(70, 120, 210), (30, 30, 35), (225, 190, 160), (200, 160, 130), (240, 240, 240), (150, 110, 85)]
    return SceneObject(
        oid,
        "arm",
        None,
        x,
        y,
        0.0,
        z,
        (),
        0.0,
        {
            "entry_u": u + float(rng.normal(0, 0.15 * cam.width)),
            "sleeve": sleeves[rng.integers(len(sleeves))],
            "glove": gloves[rng.integers(len(gloves))],
        },
        int(rng.integers(2**31)),
    )
