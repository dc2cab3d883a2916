"""Render a ``SceneState``: counter and wall, objects in painter's order, exact labels from pixel ownership.

Labels are the tight boxes of each labelled object's *visible* pixels; an object less visible than
``min_visible`` allows is removed from the scene (not drawn at all), so that nothing of a labelled class is
ever seen without a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.classes import CLASS_ID
from training.synth import objects as draw
from training.synth.camera import Camera
from training.synth.layers import Layer, composite, composite_onto
from training.synth.state import SceneObject, SceneState
from training.synth.textures import counter_texture, tiles
from training.synth.things import cached_food_sprite

# Half, by default: an object mostly hidden by a hand or knife is ambiguous even to a human labeller
# (COCO/KITTI-style practice).
MIN_VISIBLE_FRACTION = 0.5
# Kinds a labeller still names from a part. A container's rim under the one stacked on it: at 0.5 most lower
# containers of stacked pairs were dropped (a quarter to half of one shows in the clips), so the model never
# saw a stack whose lower part is a rim. Food under the glove that has just put it down: 6-46 % of it shows
# for the first ~0.7 s on the board, which delayed board alarms past T + 1 s.
MIN_VISIBLE_BY_KIND = {"container": 0.15, "food": 0.25}


def min_visible(o: SceneObject) -> float:
    """The visible share under which ``o`` is dropped from a labelled render."""
    return MIN_VISIBLE_BY_KIND.get(o.kind, MIN_VISIBLE_FRACTION)


_FLAT_KINDS = ("food", "knife", "sponge")
_STANDING_KINDS = ("container", "bottle", "jar")


@dataclass(frozen=True)
class Label:
    """A labelled object's tight visible box in pixels: x0, y0 inclusive; x1, y1 exclusive."""

    object_id: int
    class_id: int
    x0: int
    y0: int
    x1: int
    y1: int

    def yolo(self, width: int, height: int) -> str:
        cx, cy = (self.x0 + self.x1) / 2 / width, (self.y0 + self.y1) / 2 / height
        w, h = (self.x1 - self.x0) / width, (self.y1 - self.y0) / height
        return f"{self.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


@dataclass
class Rendered:
    """A clean (pre-photometric) float32 RGB image, who owns each pixel, labels, and per-object visibility."""

    image: np.ndarray
    owner: np.ndarray
    labels: list[Label]
    visible: dict[int, float]
    state: SceneState


def background(cam: Camera, counter_seed: int, wall_y_cm: float) -> np.ndarray:
    """Counter top seen through the camera, with a tiled wall behind its back edge."""
    rng = np.random.default_rng(counter_seed)
    W, H = cam.width, cam.height
    xy = cam.unproject(np.array([[0, H], [W, H], [0, 0], [W, 0]], np.float64))
    x0, x1 = xy[:, 0].min() - 5, xy[:, 0].max() + 5
    y0, y1 = xy[:, 1].min() - 5, min(xy[:, 1].max(), wall_y_cm) + 5
    ppc = min(3.5, 1200 / (x1 - x0), 900 / max(10.0, y1 - y0))
    tex = counter_texture(rng, int((y1 - y0) * ppc), int((x1 - x0) * ppc), ppc)
    to_plane = np.array([[1 / ppc, 0, x0], [0, 1 / ppc, y0], [0, 0, 1]])
    img = cv2.warpPerspective(
        tex, cam.plane_homography(0) @ to_plane, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    edge = cam.project(np.array([[x0, wall_y_cm, 0], [x1, wall_y_cm, 0]]))
    if edge[:, 1].max() <= 0:
        return img
    counter = np.array([[x0, y0, 0], [x1, y0, 0], [x1, wall_y_cm, 0], [x0, wall_y_cm, 0]])
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [cam.project(counter).astype(np.int32)], 255)
    hw = np.linalg.inv(cam.wall_homography(wall_y_cm))
    top = np.array([[0, 0, 1], [W, 0, 1]], np.float64) @ hw.T
    z_top = float(np.clip((top[:, 1] / top[:, 2]).max(), 10, 300)) + 5
    wppc = min(3.0, 900 / z_top)
    wall = tiles(rng, int(z_top * wppc), int((x1 - x0) * wppc), wppc) * rng.uniform(0.7, 0.95)
    to_wall = np.array([[1 / wppc, 0, x0], [0, -1 / wppc, z_top], [0, 0, 1]])  # row 0 is the top
    wall_img = cv2.warpPerspective(
        wall, cam.wall_homography(wall_y_cm) @ to_wall, (W, H), borderMode=cv2.BORDER_REFLECT
    )
    img = np.where(mask[..., None] > 0, img, wall_img)
    cv2.line(
        img,
        tuple(int(v) for v in edge[0]),
        tuple(int(v) for v in edge[1]),
        (60.0, 60.0, 60.0),
        2,
        cv2.LINE_AA,
    )
    return img


class Renderer:
    """Draws scene states; caches each object's layers by pose so that clip frames redraw only what moved."""

    def __init__(self) -> None:
        self._bg: tuple[tuple, np.ndarray] | None = None
        self._layers: dict[tuple, _Drawn] = {}
        self._prefix: tuple[list[Layer], np.ndarray, np.ndarray] | None = None

    def background(self, state: SceneState) -> np.ndarray:
        key = (state.counter_seed, state.wall_y_cm, state.camera.K.tobytes(), state.camera.R.tobytes())
        if self._bg is None or self._bg[0] != key:
            self._bg = (key, background(state.camera, state.counter_seed, state.wall_y_cm))
        return self._bg[1]

    def object_layers(self, cam: Camera, o: SceneObject) -> _Drawn:
        """An object's drawn layers, cached by everything that shapes its pixels."""
        key = (
            o.id,
            o.kind,
            round(o.x, 2),
            round(o.y, 2),
            round(o.angle, 3),
            round(o.z, 2),
            o.size,
            o.height,
            o.seed,
            o.class_name,
            repr(sorted(o.style.items())),
        )
        if key not in self._layers:
            self._layers[key] = _Drawn.of(*_draw(cam, o))
        return self._layers[key]

    def forget_unused(self, keep_ids: set[int]) -> None:
        """Drop cached layers of objects no longer present (bounded memory over long clips)."""
        if len(self._layers) > 400:
            self._layers = {k: v for k, v in self._layers.items() if k[0] in keep_ids}

    def render(self, state: SceneState, drop_occluded: bool = True) -> Rendered:
        """Draw ``state``; with ``drop_occluded``, drop objects less visible than ``min_visible``, redraw."""
        state = state.copy()
        base = self.background(state)
        while True:
            layers, n_static, drawn = self._ordered_layers(state)
            img, owner = self._composite(base, layers, n_static)
            counts = np.bincount(owner.ravel() + 1)
            visible = {
                oid: float(counts[oid + 1] if oid + 1 < len(counts) else 0) / d.area
                for oid, d in drawn.items()
                if d.area > 0
            }
            hidden = {o.id for o in state.objects if o.id in visible and visible[o.id] < min_visible(o)}
            if not drop_occluded or not hidden:
                break
            state.objects = [o for o in state.objects if o.id not in hidden]
        labels = []
        for o in state.objects:
            if o.class_name is None or visible.get(o.id, 0.0) <= 0:
                continue
            x0, y0, x1, y1 = drawn[o.id].box
            ys, xs = np.nonzero(owner[y0:y1, x0:x1] == o.id)
            labels.append(
                Label(
                    o.id,
                    CLASS_ID[o.label],
                    x0 + int(xs.min()),
                    y0 + int(ys.min()),
                    x0 + int(xs.max()) + 1,
                    y0 + int(ys.max()) + 1,
                )
            )
        return Rendered(img, owner, labels, visible, state)

    def _composite(
        self, base: np.ndarray, layers: list[Layer], n_static: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Composite, reusing the previous frame's result for an unchanged prefix of still layers (clips)."""
        prefix = layers[:n_static]
        cached = self._prefix
        if (
            cached is None
            or len(cached[0]) != len(prefix)
            or any(a is not b for a, b in zip(cached[0], prefix, strict=False))
        ):
            cached = self._prefix = (prefix, *composite(base, prefix))
        img, owner = cached[1].copy(), cached[2].copy()
        composite_onto(img, owner, layers[n_static:])
        return img, owner

    def _ordered_layers(self, state: SceneState) -> tuple[list[Layer], int, dict[int, _Drawn]]:
        """All layers in painter's order, how many come before the arms and what they hold, and the
        drawings of the labelled objects."""
        cam, objs = state.camera, state.objects
        arms = {o.id for o in objs if o.kind == "arm"}
        held = [o for o in objs if o.parent in arms]
        rest = [o for o in objs if o.parent not in arms and o.kind != "arm"]
        ids = {o.id for o in rest}
        children = {o.id: [c for c in rest if c.parent == o.id and c.kind == "container"] for o in rest}
        order: list[Layer] = []
        drawn: dict[int, _Drawn] = {}

        def add(o: SceneObject) -> _Drawn:
            d = self.object_layers(cam, o)
            order.extend(d.layers)
            if o.class_name is not None:
                drawn[o.id] = d
            return d

        def standing(o: SceneObject) -> None:
            d = add(o)
            kids = children.get(o.id, [])
            for c in sorted(kids, key=lambda c: -c.y):
                standing(c)
            if kids and d.front is not None:
                order.append(d.front)

        for o in rest:
            if o.kind in ("cloth", "board"):
                add(o)
        for o in sorted((o for o in rest if o.kind in _FLAT_KINDS), key=lambda o: (o.z, -o.y)):
            add(o)
        roots = [
            o for o in rest if o.kind in _STANDING_KINDS and not (o.kind == "container" and o.parent in ids)
        ]
        for o in sorted(roots, key=lambda o: -o.y):
            standing(o)
        n_static = len(order)
        for a in (o for o in objs if o.kind == "arm"):
            for h in held:
                if h.parent == a.id:
                    add(h)
            add(a)
        self.forget_unused({o.id for o in objs})
        return order, n_static, drawn


@dataclass
class _Drawn:
    """One object's layers, its front-wall layer (containers), and its drawn area and box in pixels."""

    layers: list[Layer]
    front: Layer | None
    area: float
    box: tuple[int, int, int, int]

    @classmethod
    def of(cls, layers: list[Layer], front: Layer | None) -> _Drawn:
        own = [L for L in layers if L.rgb is not None]
        if not own:
            return cls(layers, front, 0.0, (0, 0, 0, 0))
        x0, y0 = min(L.x0 for L in own), min(L.y0 for L in own)
        x1, y1 = max(L.x0 + L.alpha.shape[1] for L in own), max(L.y0 + L.alpha.shape[0] for L in own)
        m = np.zeros((y1 - y0, x1 - x0), bool)
        for L in own:
            m[L.y0 - y0 : L.y0 - y0 + L.alpha.shape[0], L.x0 - x0 : L.x0 - x0 + L.alpha.shape[1]] |= L.mask
        return cls(layers, front, float(np.count_nonzero(m)), (x0, y0, x1, y1))


def _draw(cam: Camera, o: SceneObject) -> tuple[list[Layer], Layer | None]:
    rng = np.random.default_rng(o.seed)
    st = o.style
    if o.kind == "board":
        return draw.board(
            cam, rng, o.x, o.y, o.angle, o.size[0], o.size[1], o.height, st["rgb"], st["wood"], o.id
        ), None
    if o.kind == "food":
        rgb, alpha = cached_food_sprite(o.class_name, st["look"], o.seed, o.size[0])
        return draw.flat_sprite(cam, rgb, alpha, o.x, o.y, o.angle, o.z, o.id), None
    if o.kind == "container":
        return draw.container(
            cam,
            rng,
            st["kind"],
            o.x,
            o.y,
            o.angle,
            o.z,
            o.size,
            o.height,
            st["rgb"],
            st["contents"],
            st["fill"],
            o.id,
        )
    if o.kind == "knife":
        rgb, alpha = draw.knife_sprite(rng, o.size[0], st["rgb"])
        return draw.flat_sprite(cam, rgb, alpha, o.x, o.y, o.angle, o.z, o.id), None
    if o.kind in ("cloth", "sponge"):
        rgb, alpha = draw.cloth_sprite(rng, o.size[0], o.size[1], st["rgb"])
        return draw.flat_sprite(
            cam, rgb, alpha, o.x, o.y, o.angle, o.z + (1.5 if o.kind == "sponge" else 0), o.id
        ), None
    if o.kind in ("bottle", "jar"):
        return draw.cylinder(
            cam, rng, o.x, o.y, o.z, o.size[0], o.height, st["rgb"], st["cap"], o.kind == "bottle", o.id
        ), None
    if o.kind == "arm":
        return draw.arm(cam, rng, (o.x, o.y, o.z), st["entry_u"], st["sleeve"], st["glove"], o.id), None
    raise ValueError(f"unknown scene object kind {o.kind!r} (object {o.id})")
