"""Write a YOLO-layout dataset of synthetic stills, with a preview mosaic and a fingerprinted manifest.

Three sources of stills: random counter scenes (``scene``), frames of scripted clips (``clip``: a hand
placing, working or taking away, a stack being made, as the edge agent sees them), and only the clip
frames where a hand covers food on a board (``hands``: the glove that has just put it down, a hand chopping
beside it), which delay most board alarms. Image ``i`` of a dataset
with seed ``s`` is drawn from ``SeedSequence([s, i])`` alone, so it does not depend on the dataset size and
images could be rendered in parallel; the same seed and source give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from training.classes import CLASS_NAMES
from training.synth.clips import Action, clip_look, make_script
from training.synth.photometric import apply_look, sample_look
from training.synth.render import Label, Rendered, Renderer
from training.synth.scene import sample_scene
from training.synth.state import SceneState

GENERATOR_VERSION = "synth-stills/5"  # 5: a container without food is labelled container_empty
SOURCES = ("scene", "clip", "hands")


@dataclass
class Still:
    """One finished still: camera-like RGB image, its labels, and the clean render behind them."""

    image: np.ndarray
    labels: list[Label]
    rendered: Rendered
    jpeg_quality: int


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of a dataset with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def make_still(seed: int, index: int, width: int = 640, height: int = 360, source: str = "scene") -> Still:
    """Render still ``index`` of dataset ``seed`` from ``source`` (one of SOURCES)."""
    if source not in SOURCES:
        raise ValueError(f"unknown still source {source!r}; expected one of {', '.join(SOURCES)}")
    rng = image_rng(seed, index)
    clip = source != "scene"
    rendered = Renderer().render(
        _clip_state(rng, width, height, hands=source == "hands") if clip else sample_scene(rng, width, height)
    )
    look = (clip_look if clip else sample_look)(rng, width, height)  # a clip frame is filmed as its clip is
    angle = 0.0 if clip else float(rng.uniform(0, np.pi))
    image = apply_look(rendered.image, look, rng, motion_angle=angle)
    return Still(image, rendered.labels, rendered, look.jpeg_quality)


def _clip_state(rng: np.random.Generator, width: int, height: int, hands: bool = False) -> SceneState:
    """One instant of a random clip script: in two of three draws, just after a hand reached its spot (food
    put down under the glove, a container set on another), else any time of the clip. ``hands``: always
    while a hand is over food on a board: from the touch of the food it put down until it has mostly left,
    or chopping beside it."""
    script = make_script(rng, clean=bool(rng.random() < 0.25), width=width, height=height)
    if hands and (over_food := [a for a in script.actions if _over_food(a)]):
        a = over_food[rng.integers(len(over_food))]
        t = a.t_arrive + float(rng.uniform(0.0, a.hold_s + 0.6 * a.leave_s))
        return script.state_at(min(t, script.duration_s))
    if script.actions and rng.random() < 2 / 3:
        a = script.actions[rng.integers(len(script.actions))]
        t = a.t_arrive + float(rng.uniform(-0.3, a.hold_s + a.leave_s + 0.5))
    else:
        t = float(rng.uniform(0, script.duration_s))
    return script.state_at(min(max(t, 0.0), script.duration_s))


def _over_food(a: Action) -> bool:
    """A hand chopping, or putting food down (on a board: clips place food only on boards)."""
    return a.kind == "work" or (a.kind == "place" and a.obj is not None and a.obj.kind == "food")


def draw_boxes(image_rgb: np.ndarray, labels: list[Label]) -> np.ndarray:
    """A copy of the image with boxes and class names, for eyeballing labels."""
    out = image_rgb.copy()
    for lb in labels:
        hue = int(180 * lb.class_id / len(CLASS_NAMES))
        col = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
        cv2.rectangle(out, (lb.x0, lb.y0), (lb.x1 - 1, lb.y1 - 1), col, 1)
        name = CLASS_NAMES[lb.class_id]
        (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
        cv2.rectangle(out, (lb.x0, max(0, lb.y0 - th - 3)), (lb.x0 + tw + 2, lb.y0), col, -1)
        cv2.putText(
            out,
            name,
            (lb.x0 + 1, max(th, lb.y0 - 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return out


def write_dataset(
    out: Path,
    images: int,
    seed: int,
    val_fraction: float = 0.1,
    width: int = 640,
    height: int = 360,
    progress: bool = True,
    source: str = "scene",
) -> dict:
    """Write ``images`` stills from ``source`` as DIR/images/{train,val}, DIR/labels/{train,val}, data.yaml,
    preview.png and manifest.json; returns the manifest. The last ``val_fraction`` of the indices form the
    val split; the fingerprint is the sha256 of every file name, JPEG and label file in index order."""
    out = Path(out)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    n_val = round(images * val_fraction)
    counts = dict.fromkeys(CLASS_NAMES, 0)
    digest = hashlib.sha256()
    previews: list[np.ndarray] = []
    for i in tqdm(range(images), desc="synth stills", unit="img", disable=not progress):
        still = make_still(seed, i, width, height, source)
        split = "val" if i >= images - n_val else "train"
        name = f"synth_{seed}_{i:06d}"
        ok, jpg = cv2.imencode(
            ".jpg",
            cv2.cvtColor(still.image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, still.jpeg_quality],
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for image {i} (seed {seed})")
        txt = "".join(lb.yolo(width, height) + "\n" for lb in still.labels)
        (out / "images" / split / f"{name}.jpg").write_bytes(jpg.tobytes())
        (out / "labels" / split / f"{name}.txt").write_text(txt)
        digest.update(name.encode())
        digest.update(jpg.tobytes())
        digest.update(txt.encode())
        for lb in still.labels:
            counts[CLASS_NAMES[lb.class_id]] += 1
        if len(previews) < 16:
            previews.append(draw_boxes(cv2.imdecode(jpg, cv2.IMREAD_COLOR_RGB), still.labels))
    data = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    cv2.imwrite(str(out / "preview.png"), cv2.cvtColor(mosaic(previews), cv2.COLOR_RGB2BGR))
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "source": source,
        "seed": seed,
        "count": images,
        "train": images - n_val,
        "val": n_val,
        "width": width,
        "height": height,
        "instances": counts,
        "fingerprint": digest.hexdigest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def mosaic(images: list[np.ndarray], cols: int = 4) -> np.ndarray:
    """Tile images (same size) into a grid, padding the last row."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, im in enumerate(images):
        grid[(k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w] = im
    return grid
