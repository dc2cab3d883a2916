"""Drawing scene things through the camera: boards, food, containers and distractors.

Each function returns the layers an object contributes (see ``layers.Layer``); the layers' masks are the
pixels the object covers, which the renderer turns into labels. Sizes are in cm, poses on the counter plane.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from training.synth.camera import Camera, pose_matrix
from training.synth.layers import Layer, PatchPainter, warp_layer
from training.synth.textures import board_face, smooth_noise

SPRITE_PPC = 6.0  # sprite resolution, px per cm (the image is ~4-8 px per cm)


def _sprite_to_image(
    cam: Camera, x: float, y: float, angle: float, z: float, sprite_hw: tuple[int, int]
) -> np.ndarray:
    """Homography from a centred sprite (SPRITE_PPC px/cm) lying at pose (x, y, angle) on plane z."""
    h, w = sprite_hw
    to_cm = np.array(
        [[1 / SPRITE_PPC, 0, -w / (2 * SPRITE_PPC)], [0, 1 / SPRITE_PPC, -h / (2 * SPRITE_PPC)], [0, 0, 1]]
    )
    return cam.plane_homography(z) @ pose_matrix(x, y, angle) @ to_cm


def flat_sprite(
    cam: Camera, rgb: np.ndarray, alpha: np.ndarray, x: float, y: float, angle: float, z: float, owner: int
) -> list[Layer]:
    """A flat sprite (food, knife, cloth) lying on the plane at height z, with a faint contact shadow."""
    H = _sprite_to_image(cam, x, y, angle, z, alpha.shape)
    layers = []
    shadow_a = cv2.GaussianBlur(alpha, (0, 0), 2.0) * 0.35
    Hs = _sprite_to_image(cam, x + 0.4, y - 0.6, angle, max(0.0, z - 1.0), alpha.shape)
    shadow = warp_layer(np.zeros_like(rgb), shadow_a, Hs, owner, cam.width, cam.height)
    if shadow is not None:
        shadow.rgb = None
        layers.append(shadow)
    top = warp_layer(rgb, alpha, H, owner, cam.width, cam.height)
    if top is not None:
        layers.append(top)
    return layers


def _rounded_rect_alpha(h: int, w: int, r: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 255, -1, cv2.LINE_AA)
    return m.astype(np.float32) / 255.0


def board(
    cam: Camera,
    rng: np.random.Generator,
    x: float,
    y: float,
    angle: float,
    length: float,
    width: float,
    thick: float,
    rgb: tuple[float, float, float],
    wood: bool,
    owner: int,
) -> list[Layer]:
    """A cutting board: visible side edge, textured top face (optional handle slot), soft shadow."""
    w, h = int(length * SPRITE_PPC), int(width * SPRITE_PPC)
    face = board_face(rng, h, w, SPRITE_PPC, rgb, wood)
    alpha = _rounded_rect_alpha(h, w, int(rng.uniform(0.5, 2.5) * SPRITE_PPC))
    if rng.random() < 0.4:  # handle slot near one end
        cx = int(w * 0.08)
        cv2.ellipse(
            alpha, (cx, h // 2), (int(SPRITE_PPC * 1.2), int(h * 0.18)), 0, 0, 360, 0.0, -1, cv2.LINE_AA
        )
    corners = np.array(
        [
            [-length / 2, -width / 2],
            [length / 2, -width / 2],
            [length / 2, width / 2],
            [-length / 2, width / 2],
        ]
    )
    c, s = np.cos(angle), np.sin(angle)
    world = corners @ np.array([[c, s], [-s, c]]) + [x, y]
    bot = cam.project(np.column_stack([world, np.zeros(4)]))
    top = cam.project(np.column_stack([world, np.full(4, thick)]))
    hull = cv2.convexHull(np.concatenate([bot, top]).astype(np.float32))
    shadow = PatchPainter([hull + np.float32((6, 4))], owner, cam.width, cam.height)
    shadow.fill(shadow.soft_region([hull + np.float32((3, 3))], 3) * 0.3, (0, 0, 0))
    side = PatchPainter([hull], owner, cam.width, cam.height)
    side.fill(side.region([hull]), np.asarray(rgb, np.float32) * (0.55 if not wood else 0.5))
    layers = []
    if (sh := shadow.layer()) is not None:
        sh.rgb = None
        layers.append(sh)
    if (sl := side.layer()) is not None:
        layers.append(sl)
    H = _sprite_to_image(cam, x, y, angle, thick, (h, w))
    if (tl := warp_layer(face, alpha, H, owner, cam.width, cam.height)) is not None:
        layers.append(tl)
    return layers


# ---- containers -----------------------------------------------------------------------------------------
CONTAINER_KINDS = ("basin", "bowl", "box", "gn_pan")


def _outline(kind: str, size: tuple[float, float], n: int = 36) -> np.ndarray:
    """Footprint outline (n, 2) of a container at scale 1: circle radius size[0] or rectangle L x W."""
    if kind in ("basin", "bowl"):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([size[0] * np.cos(t), size[0] * np.sin(t)], 1)
    L, W = size
    return np.array([[-L / 2, -W / 2], [L / 2, -W / 2], [L / 2, W / 2], [-L / 2, W / 2]])


def _at(
    cam: Camera, outline: np.ndarray, scale: float, x: float, y: float, angle: float, z: float
) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    p = (outline * scale) @ np.array([[c, s], [-s, c]]) + [x, y]
    return cam.project(np.column_stack([p, np.full(len(p), z)])).astype(np.float32)


def _shade_columns(p: PatchPainter, base: np.ndarray, metal: bool, rng: np.random.Generator) -> np.ndarray:
    """Per-column shading of a vertical wall (cylinder-like highlight, metallic banding)."""
    xs = np.linspace(0, 1, p.w, dtype=np.float32)
    prof = 0.72 + 0.35 * np.sin(np.pi * xs) ** 2
    if metal:
        prof += 0.18 * np.sin(xs * rng.uniform(6, 14) + rng.uniform(0, 6))
    return np.clip(base[None, None, :] * prof[None, :, None] * np.ones((p.h, 1, 1), np.float32), 0, 255)


CONTENTS = {
    "soup": (150, 90, 40),
    "rice": (235, 232, 220),
    "greens": (70, 130, 50),
    "chili_sauce": (170, 40, 25),
    "meat_stew": (110, 60, 35),
    "tofu": (235, 225, 190),
    "batter": (225, 200, 140),
    "diced_veg": (200, 140, 60),
}


def container(
    cam: Camera,
    rng: np.random.Generator,
    kind: str,
    x: float,
    y: float,
    angle: float,
    z: float,
    size: tuple[float, float],
    height: float,
    colour: tuple[float, float, float],
    contents: str | None,
    fill_level: float,
    owner: int,
) -> tuple[list[Layer], Layer | None]:
    """A container with visible walls and opening. Returns (layers, front-wall layer).

    The front-wall layer repeats the outer wall alone: drawn again after something nested or stacked inside,
    it hides that thing's part below the rim.
    """
    outline = _outline(kind, size)
    taper = {"basin": 0.7, "bowl": 0.55, "box": 0.9, "gn_pan": 0.92}[kind]
    metal = kind in ("basin", "gn_pan")
    bot = _at(cam, outline, taper, x, y, angle, z)
    top = _at(cam, outline, 1.0, x, y, angle, z + height)
    hull = cv2.convexHull(np.concatenate([bot, top]))
    p = PatchPainter([hull], owner, cam.width, cam.height)
    if p.empty:
        return [], None
    base = np.asarray(colour, np.float32)
    sh = PatchPainter([hull + np.float32((8, 6))], owner, cam.width, cam.height)
    sh.fill(sh.soft_region([bot + np.float32((3, 2))], 4) * 0.45, (0, 0, 0))
    wall_img = _shade_columns(p, base * (0.8 if metal else 0.9), metal, rng)
    wall = p.region([hull])
    p.fill(wall, wall_img)
    opening = p.region([top])
    p.fill(opening, base * 0.62)  # inner far wall, in shade
    inner_bot = _at(cam, outline, taper * 0.95, x, y, angle, z + 0.6)
    p.fill(p.region([inner_bot], opening), base * 0.8)
    if contents is not None:
        level = z + height * fill_level
        surf = _at(cam, outline, taper + (1 - taper) * fill_level - 0.04, x, y, angle, level)
        tex = (
            1
            + 0.12 * smooth_noise(rng, p.h, p.w, 4)
            + 0.08 * rng.standard_normal((p.h, p.w)).astype(np.float32)
        )
        col = np.asarray(CONTENTS[contents], np.float32)
        p.fill(p.region([surf], opening), np.clip(col * tex[..., None], 0, 255))
    rim = np.zeros((p.h, p.w), np.uint8)
    scale = cam.px_per_cm(x, y, z + height)
    rim_px = max(1, int(scale * (0.5 if kind != "gn_pan" else 1.0)))
    cv2.polylines(rim, [p.local(top)], True, 255, rim_px, cv2.LINE_AA, shift=2)
    p.fill(rim.astype(np.float32) / 255.0, np.clip(base * 1.15 + 20, 0, 255))
    front_alpha = np.clip(wall - opening, 0, 1) * p.alpha
    layers = []
    if (sl := sh.layer()) is not None:
        sl.rgb = None
        layers.append(sl)
    body = p.layer()
    if body is not None:
        layers.append(body)
    front = Layer(p.x0, p.y0, p.rgb.copy(), front_alpha, owner) if front_alpha.any() else None
    return layers, front


# ---- distractors ----------------------------------------------------------------------------------------
def knife_sprite(
    rng: np.random.Generator, blade_cm: float, handle_rgb: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Chef's or cleaver knife seen from above: steel blade with bright edge, coloured handle."""
    ppc = SPRITE_PPC
    handle_cm = blade_cm * 0.55
    cleaver = rng.random() < 0.35
    bw = blade_cm * (0.45 if cleaver else 0.22)
    w, h = int((blade_cm + handle_cm) * ppc) + 4, int(bw * ppc) + 4
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.uint8)
    hx = int(handle_cm * ppc)
    hw = max(3, int(2.2 * ppc))
    if cleaver:
        blade = np.array([[hx, 2], [w - 2, 2], [w - 2, h - 2], [hx, h - 2]], np.int32)
    else:
        blade = np.array(
            [
                [hx, h // 2 - hw // 2],
                [w - 2, h // 2 - hw // 2],
                [hx + int(bw * ppc * 0.5), h - 2],
                [hx, h - 2],
            ],
            np.int32,
        )
    cv2.fillPoly(alpha, [blade], 255, cv2.LINE_AA)
    grad = np.linspace(150, 215, h, dtype=np.float32)[:, None, None] + rng.normal(0, 3, (h, w, 1)).astype(
        np.float32
    )
    rgb[:] = grad
    cv2.rectangle(alpha, (2, h // 2 - hw // 2), (hx, h // 2 + hw // 2), 255, -1)
    cv2.rectangle(rgb, (2, h // 2 - hw // 2), (hx, h // 2 + hw // 2), tuple(float(v) for v in handle_rgb), -1)
    for k in (0.3, 0.7):
        cv2.circle(rgb, (int(hx * k), h // 2), max(1, hw // 5), (200, 200, 200), -1)
    return rgb, alpha.astype(np.float32) / 255.0


def cloth_sprite(
    rng: np.random.Generator, length: float, width: float, rgb: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A kitchen towel: soft irregular outline, folds, optional stripes or checks."""
    ppc = SPRITE_PPC
    w, h = int(length * ppc), int(width * ppc)
    alpha = _rounded_rect_alpha(h, w, int(2 * ppc))
    edge = cv2.GaussianBlur((rng.random((h, w)) > 0.5).astype(np.float32), (0, 0), 6)
    alpha *= np.clip(
        cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3) / 6 + edge - 0.3, 0, 1
    )
    alpha = (alpha > 0.5).astype(np.float32)
    folds = 1 + 0.18 * np.sin(
        np.linspace(0, rng.uniform(3, 9), w, dtype=np.float32)[None, :] * np.pi
        + smooth_noise(rng, h, w, 8 * ppc) * 1.5
    )
    col = np.ones((h, w, 3), np.float32) * np.asarray(rgb, np.float32)
    pattern = rng.integers(3)
    if pattern:
        period = int(rng.uniform(2, 5) * ppc)
        stripes = (np.arange(w) // period) % 2 == 0
        if pattern == 2:
            stripes = stripes[None, :] ^ ((np.arange(h) // period) % 2 == 0)[:, None]
        col[np.broadcast_to(stripes, (h, w))] = 240
    col *= folds[..., None] * (1 + 0.06 * rng.standard_normal((h, w, 1)).astype(np.float32))
    return np.clip(col, 0, 255), alpha


def cylinder(
    cam: Camera,
    rng: np.random.Generator,
    x: float,
    y: float,
    z: float,
    radius: float,
    height: float,
    body_rgb: tuple[float, float, float],
    cap_rgb: tuple[float, float, float],
    bottle: bool,
    owner: int,
) -> list[Layer]:
    """A bottle (body, shoulder, neck, cap) or a jar (body, lid), with a label band and glossy highlight."""
    circle = _outline("basin", (radius, 0), 24)
    rings = [(0.0, 1.0), (0.62, 1.0), (0.8, 0.35), (0.95, 0.35)] if bottle else [(0.0, 1.0), (0.85, 1.0)]
    polys = [_at(cam, circle, r, x, y, 0, z + f * height) for f, r in rings]
    hull = cv2.convexHull(np.concatenate(polys))
    p = PatchPainter([hull], owner, cam.width, cam.height)
    if p.empty:
        return []
    body = _shade_columns(p, np.asarray(body_rgb, np.float32), True, rng)
    segments = [p.region([cv2.convexHull(np.concatenate([a, b]))]) for a, b in itertools.pairwise(polys)]
    p.fill(segments[0], body)
    lo, hi = (0.2, 0.5) if bottle else (0.25, 0.65)
    band = [_at(cam, circle, 1.01, x, y, 0, z + f * height) for f in (lo, hi)]
    label_rgb = [(235, 230, 210), (200, 40, 40), (240, 200, 60), (40, 60, 150)][rng.integers(4)]
    p.fill(
        p.region([cv2.convexHull(np.concatenate(band))], segments[0]),
        _shade_columns(p, np.asarray(label_rgb, np.float32), False, rng),
    )
    for seg in segments[1:]:  # shoulder and neck, seen above the label from a high camera
        p.fill(seg, body)
    cap_top = _at(cam, circle, rings[-1][1], x, y, 0, z + height)
    cap = np.asarray(cap_rgb, np.float32)
    cap_side = p.region([cv2.convexHull(np.concatenate([polys[-1], cap_top]))])
    p.fill(cap_side, _shade_columns(p, cap, False, rng))
    p.fill(p.region([cap_top]), np.clip(cap * 1.15 + 15, 0, 255))
    return [layer] if (layer := p.layer()) is not None else []


def _capsule(a: np.ndarray, b: np.ndarray, r: float, n: int = 8) -> np.ndarray:
    """Polygon of a capsule (rounded segment) from a to b with radius r."""
    d = (b - a) / (np.linalg.norm(b - a) + 1e-6)
    base = np.arctan2(d[1], d[0])
    t1 = base + np.linspace(-np.pi / 2, np.pi / 2, n)
    t0 = base + np.linspace(np.pi / 2, 3 * np.pi / 2, n)
    return np.concatenate(
        [b + r * np.stack([np.cos(t1), np.sin(t1)], 1), a + r * np.stack([np.cos(t0), np.sin(t0)], 1)]
    ).astype(np.float32)


def arm(
    cam: Camera,
    rng: np.random.Generator,
    hand_xyz: tuple[float, float, float],
    entry_u: float,
    sleeve_rgb: tuple[float, float, float],
    glove_rgb: tuple[float, float, float],
    owner: int,
) -> list[Layer]:
    """A forearm reaching in from the bottom edge to a hand at ``hand_xyz``: sleeve, gloved hand, shadow."""
    hand = cam.project(np.array([hand_xyz]))[0]
    s = cam.px_per_cm(*hand_xyz)
    start = np.array([entry_u, cam.height + 40.0])
    d = hand - start
    d /= np.linalg.norm(d) + 1e-6
    n = np.array([-d[1], d[0]])
    side = 1.0 if rng.random() < 0.5 else -1.0  # left or right hand: which side the thumb is on
    w_wrist = 3.0 * s
    w_entry = max(w_wrist * 1.8, 5.5 * s * 1.6)
    wrist = hand - d * 3 * s
    forearm = np.array(
        [start + n * w_entry, wrist + n * w_wrist, wrist - n * w_wrist, start - n * w_entry], np.float32
    )
    cuff = start + (wrist - start) * rng.uniform(0.3, 0.75)
    w_cuff = w_entry + (w_wrist - w_entry) * np.linalg.norm(cuff - start) / (
        np.linalg.norm(wrist - start) + 1e-6
    )
    sleeve = np.array(
        [
            start + n * w_entry * 1.25,
            cuff + n * w_cuff * 1.2,
            cuff - n * w_cuff * 1.2,
            start - n * w_entry * 1.25,
        ],
        np.float32,
    )
    palm_c = wrist + d * 3.5 * s
    palm = cv2.ellipse2Poly(
        tuple(int(v) for v in palm_c),
        (int(4.5 * s), int(4.0 * s)),
        int(np.degrees(np.arctan2(d[1], d[0]))),
        0,
        360,
        20,
    ).astype(np.float32)
    reach = rng.uniform(3.0, 6.5)  # curled (fist, grip) .. stretched fingers
    fingers = [
        _capsule(
            wrist + d * 6 * s + n * off * s,
            wrist + d * (6 + reach - abs(off) * 0.4) * s + n * off * 1.1 * s,
            1.05 * s,
        )
        for off in (-2.7, -0.9, 0.9, 2.7)
    ]
    thumb = _capsule(
        wrist + d * 2 * s + n * side * 3.5 * s, wrist + d * 5.5 * s + n * side * 5.8 * s, 1.2 * s
    )
    skin_polys = [forearm, palm, thumb, *fingers]
    p = PatchPainter([*skin_polys, sleeve], owner, cam.width, cam.height)
    if p.empty:
        return []
    across = np.abs(
        (np.arange(p.w)[None, :] + p.x0 - hand[0]) * n[0] + (np.arange(p.h)[:, None] + p.y0 - hand[1]) * n[1]
    )
    along = (np.arange(p.w)[None, :] + p.x0 - hand[0]) * d[0] + (
        np.arange(p.h)[:, None] + p.y0 - hand[1]
    ) * d[1]
    width_here = np.clip(
        w_wrist + (w_entry - w_wrist) * (-along) / (np.linalg.norm(hand - start) + 1e-6),
        w_wrist,
        w_entry * 1.3,
    )
    shade = (1.08 - 0.35 * np.clip(across / width_here, 0, 1) ** 2)[..., None].astype(np.float32)
    p.fill(p.region(skin_polys), np.asarray(glove_rgb, np.float32) * shade)
    sl = np.asarray(sleeve_rgb, np.float32) * shade * (1 + 0.06 * smooth_noise(rng, p.h, p.w, 8))[..., None]
    p.fill(p.region([sleeve]), np.clip(sl, 0, 255))
    layers = []
    off = np.array([14.0, 10.0], np.float32)
    shadow = PatchPainter([forearm + off, palm + off], owner, cam.width, cam.height)
    if not shadow.empty:
        shadow.fill(shadow.soft_region([forearm + off, palm + off], 7) * 0.3, (0, 0, 0))
        if (sh := shadow.layer()) is not None:
            sh.rgb = None
            layers.append(sh)
    if (layer := p.layer()) is not None:
        layers.append(layer)
    return layers
