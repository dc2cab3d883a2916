"""Sampling random still scenes on a prep counter: camera, boards with correct and wrong food, loose food,
container groups, distractors and arms."""

from __future__ import annotations

import numpy as np

from training.classes import BOARD_COLOURS, FOOD_CATEGORIES
from training.synth.camera import Camera, look_at_camera
from training.synth.palette import correct_food
from training.synth.state import SceneObject, SceneState
from training.synth.things import (
    container_radius,
    footprint_px,
    make_arm,
    make_board,
    make_container,
    make_distractor,
    make_food,
)


def sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    """A ceiling or wall camera over a counter: 35-62 deg tilt, about 4.5-6.5 px/cm at the centre."""
    scale = width / 640
    return look_at_camera(
        tilt_deg=rng.uniform(35, 62),
        distance_cm=rng.uniform(110, 170),
        px_per_cm=rng.uniform(4.6, 6.4) * scale,
        roll_deg=rng.normal(0, 1.5),
        pan_cm=rng.uniform(-20, 20),
        width=width,
        height=height,
    )


class Placer:
    """Rejection sampling of non-overlapping footprints (discs in cm) inside the visible counter."""

    def __init__(self, rng: np.random.Generator, cam: Camera, wall_y: float) -> None:
        self.rng, self.cam, self.wall_y = rng, cam, wall_y
        self.discs: list[tuple[float, float, float]] = []

    def place(
        self, radius: float, v_range: tuple[float, float] = (0.3, 0.92), tries: int = 25
    ) -> tuple[float, float] | None:
        W, H = self.cam.width, self.cam.height
        for _ in range(tries):
            uv = np.array([[self.rng.uniform(0.1, 0.9) * W, self.rng.uniform(*v_range) * H]])
            x, y = self.cam.unproject(uv)[0]
            if y + radius > self.wall_y:
                continue
            if all(np.hypot(x - a, y - b) > radius + r for a, b, r in self.discs):
                self.discs.append((x, y, radius))
                return float(x), float(y)
        return None


def sample_scene(rng: np.random.Generator, width: int = 640, height: int = 360) -> SceneState:
    """A random still: boards with correct and wrong food, loose food, containers (single, side by side,
    stacked, nested), distractors and arms."""
    cam = sample_camera(rng, width, height)
    wall_v = rng.uniform(-0.3, 0.28) * height
    wall_y = float(cam.unproject(np.array([[width / 2, wall_v]]))[0, 1])
    objs: list[SceneObject] = []
    place = Placer(rng, cam, wall_y)

    def nid() -> int:
        return len(objs)

    if rng.random() < 0.45 and (p := place.place(14)) is not None:
        objs.append(make_distractor(rng, nid(), "cloth", *p))
    for colour in rng.choice(
        BOARD_COLOURS, size=int(rng.choice([1, 2, 3, 4], p=[0.1, 0.35, 0.4, 0.15])), replace=False
    ):
        b = make_board(rng, nid(), str(colour), 0, 0)
        if (p := place.place(b.size[0] * 0.5, tries=40)) is None:
            continue
        b.x, b.y = p
        if footprint_px(cam, b.x, b.y, b.angle, 0, *b.size)[2] < 0.7:
            place.discs.pop()
            continue
        objs.append(b)
        spots: list[tuple[float, float, float]] = []
        for _ in range(int(rng.choice(4, p=[0.12, 0.4, 0.33, 0.15]))):
            right = correct_food(str(colour))
            others = [c for c in FOOD_CATEGORIES if c != right]
            cat = right if right and rng.random() < 0.45 else str(rng.choice(others))
            c, s = np.cos(b.angle), np.sin(b.angle)
            for _try in range(10):
                lx, ly = rng.uniform(-0.3, 0.3) * b.size[0], rng.uniform(-0.25, 0.25) * b.size[1]
                fx, fy = b.x + lx * c - ly * s, b.y + lx * s + ly * c
                if all(np.hypot(fx - a, fy - q) > 7 + r for a, q, r in spots):
                    f = make_food(rng, cam, nid(), cat, fx, fy, b.height, b.id)
                    objs.append(f)
                    spots.append((fx, fy, f.size[0] * 0.3))
                    break
        if rng.random() < 0.35:
            objs.append(
                make_distractor(
                    rng, nid(), "knife", b.x + rng.normal(0, 5), b.y + rng.normal(0, 4), b.height + 0.4, b.id
                )
            )
    for _ in range(int(rng.choice(3, p=[0.4, 0.35, 0.25]))):
        if (p := place.place(8)) is not None:
            objs.append(make_food(rng, cam, nid(), str(rng.choice(FOOD_CATEGORIES)), *p, 0.0, None))
    for _ in range(int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15]))):
        _sample_container_group(rng, place, objs)
    for kind, p_kind in (("knife", 0.3), ("sponge", 0.3), ("bottle", 0.45), ("bottle", 0.2), ("jar", 0.35)):
        if rng.random() < p_kind and (p := place.place(6, (0.15, 0.9))) is not None:
            objs.append(make_distractor(rng, nid(), kind, *p))
    for _ in range(int(rng.choice(3, p=[0.45, 0.35, 0.2]))):
        target = objs[rng.integers(len(objs))] if objs and rng.random() < 0.7 else None
        if target is not None:
            x, y = target.x + rng.normal(0, 6), target.y + rng.normal(0, 6)
        else:
            x, y = cam.unproject(np.array([[rng.uniform(0.1, 0.9) * width, rng.uniform(0.4, 0.9) * height]]))[
                0
            ]
        objs.append(make_arm(rng, cam, nid(), float(x), float(y), float(rng.uniform(4, 14))))
    return SceneState(cam, int(rng.integers(2**31)), wall_y, objs)


def _sample_container_group(rng: np.random.Generator, place: Placer, objs: list[SceneObject]) -> None:
    """One container, a side-by-side pair, a stacked pair (upper base inside the lower's top) or a nested
    pair."""
    mode = rng.choice(["single", "side", "stacked", "nested"], p=[0.35, 0.2, 0.3, 0.15])
    lower = make_container(rng, len(objs), 0, 0, filled=True if mode == "stacked" else None)
    if mode == "nested":
        lower.style["contents"] = None
    r = container_radius(lower)
    if (p := place.place(r + 1, (0.3, 0.9))) is None:
        return
    lower.x, lower.y = p
    objs.append(lower)
    if mode == "side":
        if (q := place.place(r + 1, (0.3, 0.9))) is not None:
            objs.append(make_container(rng, len(objs), *q))
    elif mode == "stacked":
        top_z = lower.z + lower.height * float(rng.uniform(0.8, 0.95))
        jitter = rng.normal(0, 0.12 * r, 2)
        objs.append(
            make_container(
                rng,
                len(objs),
                lower.x + jitter[0],
                lower.y + jitter[1],
                top_z,
                parent=lower.id,
                max_half_cm=r * float(rng.uniform(0.65, 0.85)),
            )
        )
    elif mode == "nested":
        inner = make_container(
            rng,
            len(objs),
            lower.x,
            lower.y,
            lower.z + 0.8,
            kind=lower.style["kind"],
            filled=False,
            parent=lower.id,
            max_half_cm=r * 0.85,
        )
        inner.angle, inner.height = lower.angle, min(inner.height, lower.height + 0.5)
        objs.append(inner)
