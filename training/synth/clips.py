"""Scripted clips with a ground-truth event timeline, encoded as H.264 MP4 with PyAV.

A clip is a static counter scene plus ``Action``s: a hand enters from the near edge, reaches a spot, places or
takes something (or works there with a knife) and leaves. ``ClipScript.state_at(t)`` gives the exact scene of
any instant; the events (board misuse, stacked containers) are read off the per-frame states, so "start" is
the first frame showing the violating configuration and "end" the first frame without it. A hand often hides
the food it has just put down: ``visible_start`` is the first frame in which a labeller would mark every
object of the violation (each shown at least as much as a labelled still needs, ``render.min_visible``) and
``visible_s`` how long the episode is so shown, which separates a detector's delay from the scene's.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.classes import BOARD_COLOURS, FOOD_CATEGORIES
from training.synth.palette import DEFAULT_BOARD_FOOD, correct_food, is_violation
from training.synth.photometric import Look, apply_look, sample_look
from training.synth.render import Renderer, min_visible
from training.synth.scene import Placer, sample_camera
from training.synth.state import SceneObject, SceneState
from training.synth.things import (
    container_radius,
    make_arm,
    make_board,
    make_container,
    make_distractor,
    make_food,
)

GENERATOR_VERSION = "synth-clips/2"  # 2: events carry visible_start and visible_s
MIN_EPISODE_S = 6.0  # violations last at least this long (a rule with T = 3 s must fire)


@dataclass
class Action:
    """A hand reaching (x, y, z) from ``t0``: ``place`` brings ``obj`` in and leaves it at its pose, ``take``
    lifts ``obj`` from its pose and carries it out, ``work`` moves over the spot holding ``obj`` (a knife)."""

    kind: str  # place | take | work
    t0: float
    arm: SceneObject
    obj: SceneObject | None
    x: float
    y: float
    z: float
    reach_s: float = 1.1
    hold_s: float = 0.5
    leave_s: float = 1.0

    @property
    def t_arrive(self) -> float:
        return self.t0 + self.reach_s

    @property
    def t_end(self) -> float:
        return self.t_arrive + self.hold_s + self.leave_s


def _ease(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


@dataclass
class ClipScript:
    """A static scene and the actions played over it; ``state_at`` is the ground truth of every frame."""

    static: SceneState
    actions: list[Action]
    duration_s: float
    clean: bool

    def hand_at(self, a: Action, t: float) -> tuple[float, float, float]:
        """Hand position: from off-screen near the entry point to the target, a little motion, and back."""
        cam = self.static.camera
        start = cam.unproject(np.array([[a.arm.style["entry_u"], cam.height * 1.45]]), a.z + 10)[0]
        target = np.array([a.x, a.y])
        if t < a.t_arrive:
            k, z = _ease((t - a.t0) / a.reach_s), a.z + 10 * (1 - _ease((t - a.t0) / a.reach_s))
        elif t < a.t_arrive + a.hold_s:
            k = 1.0
            wobble = 3.0 * abs(np.sin(2 * np.pi * 2.5 * (t - a.t_arrive))) if a.kind == "work" else 0.0
            z = a.z + wobble
        else:
            k = 1 - _ease((t - a.t_arrive - a.hold_s) / a.leave_s)
            z = a.z + 10 * (1 - k)
        p = start + (target - start) * k
        return float(p[0]), float(p[1]), float(z)

    def state_at(self, t: float) -> SceneState:
        """The scene at time ``t`` s."""
        state = self.static.copy()
        resting: dict[int, SceneObject] = {}
        for a in sorted(self.actions, key=lambda a: a.t_arrive):
            if a.obj is not None and a.kind != "work" and a.t_arrive <= t:
                if a.kind == "place":
                    resting[a.obj.id] = a.obj
                else:
                    resting.pop(a.obj.id, None)
        state.objects += [replace(o) for o in resting.values()]
        for a in self.actions:
            if not a.t0 <= t < a.t_end:
                continue
            hx, hy, hz = self.hand_at(a, t)
            state.objects.append(replace(a.arm, x=hx, y=hy, z=hz))
            holding = (a.kind == "place" and t < a.t_arrive) or (a.kind == "take" and t >= a.t_arrive)
            if a.kind == "work":  # the knife in the working hand
                state.objects.append(replace(a.obj, x=hx, y=hy + 2.0, z=max(0.0, hz - 1.5), parent=a.arm.id))
            elif holding:  # carried rigidly: exactly at its resting pose when the hand is at the target
                o = a.obj
                state.objects.append(
                    replace(
                        o, x=hx + o.x - a.x, y=hy + o.y - a.y, z=max(0.0, hz + o.z - a.z), parent=a.arm.id
                    )
                )
        return state


def violations(
    state: SceneState, board_food: dict[str, str | None] = DEFAULT_BOARD_FOOD
) -> dict[tuple, dict]:
    """Violating configurations in one frame, keyed by (rule, ids), with the fields their events carry."""
    found: dict[tuple, dict] = {}
    objs = {o.id: o for o in state.objects}
    for o in state.objects:
        parent = objs.get(o.parent) if o.parent is not None else None
        if parent is None:
            continue
        if o.kind == "food" and parent.kind == "board":
            colour = parent.style["colour"]
            if is_violation(colour, o.class_name, board_food):
                found[("board_misuse", parent.id, o.id)] = {"board_colour": colour, "food": o.class_name}
        elif o.kind == "container" and parent.kind == "container":
            on_top = o.z >= parent.z + 0.5 * parent.height
            if on_top and parent.style["contents"] is not None:
                found[("stacked_containers", parent.id, o.id)] = {}
    return found


def events_from_states(
    states: list[SceneState], fps: float, visible: list[dict[int, float]] | None = None
) -> list[dict]:
    """Maximal runs of each violating configuration over the frames, as ground-truth events (seconds).

    ``visible``: each frame's visible share per object id (``Rendered.visible``); with it, every event also
    carries ``visible_start`` (null when never shown enough) and ``visible_s``.
    """
    open_runs: dict[tuple, _Run] = {}
    events = []
    for k, st in enumerate([*states, None]):
        now = violations(st) if st is not None else {}
        for key in [k0 for k0 in open_runs if k0 not in now]:
            run = open_runs.pop(key)
            event = {"rule": key[0], "start": round(run.first / fps, 3), "end": round(k / fps, 3)}
            event |= run.extra
            if visible is not None:
                seen = run.first_seen
                event["visible_start"] = None if seen is None else round(seen / fps, 3)
                event["visible_s"] = round(run.frames_seen / fps, 3)
            events.append(event)
        for key, extra in now.items():
            run = open_runs.setdefault(key, _Run(k, extra))
            if st is not None and visible is not None and _labelable(st, key[1:], visible[k]):
                run.frames_seen += 1
                run.first_seen = k if run.first_seen is None else run.first_seen
    return sorted(events, key=lambda e: (e["start"], e["rule"]))


@dataclass
class _Run:
    first: int
    extra: dict
    first_seen: int | None = None
    frames_seen: int = 0


def _labelable(state: SceneState, ids: tuple[int, ...], visible: dict[int, float]) -> bool:
    """Whether every object ``ids`` shows enough of itself in this frame to be labelled."""
    return all(visible.get(i, 0.0) >= min_visible(state.by_id(i)) for i in ids)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of clip ``index`` (independent of the number of clips and of stills)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 7_777_777, index]))


def make_script(rng: np.random.Generator, clean: bool, width: int = 640, height: int = 360) -> ClipScript:
    """A counter with boards and containers; a board track (correct use, then wrong food for a while unless
    ``clean``) and a container track (side by side, then stacked and unstacked, or nested if ``clean``)
    played by hands at the same time."""
    cam = sample_camera(rng, width, height)
    wall_y = float(cam.unproject(np.array([[width / 2, rng.uniform(-0.3, 0.2) * height]]))[0, 1])
    objs: list[SceneObject] = []
    place = Placer(rng, cam, wall_y)
    ids = itertools.count()

    def nid() -> int:
        return next(ids)

    actions: list[Action] = []
    colours = list(rng.choice([c for c in BOARD_COLOURS if c != "white"], size=2, replace=False))
    if rng.random() < 0.3:
        colours[1] = "white"
    boards = []
    for colour in colours[: int(rng.integers(1, 3))]:
        b = make_board(rng, nid(), str(colour), 0, 0)
        if (p := place.place(b.size[0] * 0.5, (0.45, 0.85), tries=60)) is not None:
            b.x, b.y = p
            objs.append(b)
            boards.append(b)
    lower = side = None
    for _ in range(3):  # a container on the counter, and a free spot beside it for a second one
        cand = make_container(rng, nid(), 0, 0, filled=not clean)
        if (p := place.place(container_radius(cand) + 1, (0.25, 0.9), tries=60)) is not None:
            cand.x, cand.y = p
            lower = cand
            break
    if lower is not None:
        objs.append(lower)
        upper = make_container(
            rng,
            nid(),
            0,
            0,
            kind=lower.style["kind"] if clean else None,
            filled=not clean,
            max_half_cm=container_radius(lower) * (0.85 if clean else float(rng.uniform(0.65, 0.85))),
        )
        if (p := place.place(container_radius(upper) + 1, (0.25, 0.9), tries=100)) is not None:
            side = replace(upper, x=p[0], y=p[1])
    for kind, p_kind in (("bottle", 0.5), ("jar", 0.4), ("cloth", 0.4), ("sponge", 0.3)):
        if rng.random() < p_kind and (p := place.place(6, (0.2, 0.9))) is not None:
            objs.append(make_distractor(rng, nid(), kind, *p))
    static = SceneState(cam, int(rng.integers(2**31)), wall_y, objs)

    def act(
        kind: str, t0: float, obj: SceneObject | None, x: float, y: float, z: float, hold: float
    ) -> Action:
        arm = make_arm(rng, cam, 10_000 + len(actions), x, y, z)
        a = Action(
            kind, t0, arm, obj, x, y, z, float(rng.uniform(0.8, 1.4)), hold, float(rng.uniform(0.8, 1.2))
        )
        actions.append(a)
        return a

    def knife(x: float, y: float) -> SceneObject:
        return make_distractor(rng, nid(), "knife", x, y)

    t = float(rng.uniform(0.3, 1.5))
    misused = boards[rng.integers(len(boards))] if boards and not clean else None
    for b in boards:  # board track
        right = correct_food(b.style["colour"])
        foods = [right] if right else []
        if b is misused:
            foods.append(str(rng.choice([c for c in FOOD_CATEGORIES if c != right])))
        for cat in foods:
            ang = b.angle
            lx, ly = rng.uniform(-0.2, 0.2) * b.size[0], rng.uniform(-0.15, 0.15) * b.size[1]
            fx, fy = b.x + lx * np.cos(ang) - ly * np.sin(ang), b.y + lx * np.sin(ang) + ly * np.cos(ang)
            food = make_food(rng, cam, nid(), cat, float(fx), float(fy), b.height, b.id)
            a = act("place", t, food, food.x, food.y, b.height + 3, float(rng.uniform(0.3, 0.7)))
            stay = float(rng.uniform(MIN_EPISODE_S, 10.0)) if cat != right else float(rng.uniform(3.0, 6.0))
            # chopping beside the food: the hand and knife occlude it partly and briefly
            wx = food.x + float(rng.choice([-1, 1]) * rng.uniform(7, 10))
            wy = food.y - float(rng.uniform(1, 4))
            w = act(
                "work",
                a.t_end + float(rng.uniform(0.2, 1.0)),
                knife(wx, wy),
                wx,
                wy,
                b.height + 4,
                float(rng.uniform(1.0, 2.5)),
            )
            take = act("take", 0.0, food, food.x, food.y, b.height + 3, 0.4)
            take.t0 = max(a.t_arrive + stay - take.reach_s, w.t_end + 0.2)
            t = take.t_end + float(rng.uniform(0.3, 1.5))
    t_board_end = t
    if lower is not None and side is not None:  # container track, in parallel
        t = float(rng.uniform(0.5, 3.0))
        if clean:  # nested, both empty
            on = replace(
                side,
                x=lower.x,
                y=lower.y,
                z=lower.z + 0.8,
                angle=lower.angle,
                parent=lower.id,
                height=min(side.height, lower.height + 0.5),
            )
        else:  # stacked: the upper base sits in the lower's top opening, on its food
            on = replace(
                side,
                x=lower.x + rng.normal(0, 1),
                y=lower.y + rng.normal(0, 1),
                z=lower.z + lower.height * float(rng.uniform(0.8, 0.95)),
                parent=lower.id,
            )
        a = act("place", t, side, side.x, side.y, side.height + 2, 0.4)
        b = act("take", a.t_end + 1.0, side, side.x, side.y, side.height + 2, 0.3)
        c = act("place", b.t_end + 0.2, on, on.x, on.y, on.z + on.height + 2, 0.4)
        stay = float(rng.uniform(MIN_EPISODE_S, 10.0))
        d = act("take", 0.0, on, on.x, on.y, on.z + on.height + 2, 0.3)
        d.t0 = c.t_arrive + stay - d.reach_s
        t = act("place", d.t_end + 0.2, side, side.x, side.y, side.height + 2, 0.4).t_end
    duration = float(np.clip(max(t, t_board_end) + rng.uniform(0.5, 2.0), 10.0, 40.0))
    return ClipScript(static, actions, duration, clean)


def clip_states(script: ClipScript, fps: float) -> list[SceneState]:
    """The scene state of every frame (frame k shows time k / fps)."""
    return [script.state_at(k / fps) for k in range(round(script.duration_s * fps))]


@dataclass
class ClipInfo:
    """What was written for one clip."""

    name: str
    frames: int
    duration_s: float
    events: list[dict] = field(default_factory=list)
    clean: bool = False


def clip_look(rng: np.random.Generator, width: int, height: int) -> Look:
    """A fixed camera's look: no motion blur (hands move, the camera does not), and 0.6 of the still grain
    (camera encoders denoise before H.264; full-strength grain would bloat the files)."""
    look = sample_look(rng, width, height)
    look.motion_px = 0
    look.noise_sigma *= 0.6
    return look


def write_clip(
    path: Path, script: ClipScript, fps: float, rng: np.random.Generator, camera: str, seed: int
) -> ClipInfo:
    """Render and encode one clip (H.264, yuv420p) and its ground-truth JSON beside it."""
    import av  # only encoding needs PyAV: stills rendered from clip scripts do not

    states = clip_states(script, fps)
    cam = script.static.camera
    look = clip_look(rng, cam.width, cam.height)
    flicker_hz, flicker_amp = rng.uniform(0.3, 2.0), rng.uniform(0.005, 0.03)
    renderer = Renderer()
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = cam.width, cam.height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "26"}
        stream.codec_context.time_base = Fraction(1, round(fps))
        visible = []
        for k, st in enumerate(states):
            flicker = 1 + flicker_amp * np.sin(2 * np.pi * flicker_hz * k / fps) + rng.normal(0, 0.004)
            rendered = renderer.render(st, drop_occluded=False)
            visible.append(rendered.visible)
            rgb = apply_look(rendered.image, look, rng, flicker=flicker)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, round(fps))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    events = events_from_states(states, fps, visible)
    gt = {
        "camera": camera,
        "fps": fps,
        "width": cam.width,
        "height": cam.height,
        "seed": seed,
        "frames": len(states),
        "duration_s": round(len(states) / fps, 3),
        "clean": script.clean,
        "board_food": DEFAULT_BOARD_FOOD,
        "generator_version": GENERATOR_VERSION,
        "events": events,
    }
    path.with_suffix(".json").write_text(json.dumps(gt, indent=2) + "\n")
    return ClipInfo(path.name, len(states), gt["duration_s"], events, script.clean)


def write_clips(
    out: Path, count: int, seed: int, fps: float = 12.0, clean_fraction: float = 0.25, progress: bool = True
) -> list[ClipInfo]:
    """Write ``count`` clips (about ``clean_fraction`` without violations) and DIR/index.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    infos = []
    for i in tqdm(range(count), desc="synth clips", unit="clip", disable=not progress):
        rng = clip_rng(seed, i)
        clean = bool(rng.random() < clean_fraction)
        script = make_script(rng, clean)
        infos.append(write_clip(out / f"clip_{seed}_{i:03d}.mp4", script, fps, rng, f"cam{i + 1}", seed))
    index = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "fps": fps,
        "clips": [
            {
                "video": c.name,
                "truth": Path(c.name).with_suffix(".json").name,
                "frames": c.frames,
                "duration_s": c.duration_s,
                "clean": c.clean,
                "events": len(c.events),
            }
            for c in infos
        ],
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return infos
