"""Synthetic and real data together, in a chosen ratio: image lists and a ``data.yaml`` for Ultralytics.

``real_ratio`` is the share of real images among the training images. Every image is used at least once;
the scarcer side (usually the real one) is repeated: each image as often as it fits whole, the remainder
drawn with the seed. Validation uses every val image of every folder, once. Example::

    build_mix([Path("data/synth")], [Path("data/real-2026-11")], real_ratio=0.3, out=run / "mix", seed=0)
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import yaml

from brightkitchen.datasets import IMAGE_SUFFIXES, yaml_names
from training.classes import CLASS_NAMES


def split_images(folder: Path, split: str) -> list[Path]:
    """The images of ``folder/images/<split>``, absolute and sorted."""
    root = folder.resolve() / "images" / split
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []


def check_classes(folder: Path) -> None:
    """A dataset folder's ``data.yaml`` must name our classes in our order."""
    path = folder / "data.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: not a dataset folder")
    names = yaml_names(path)
    if names != list(CLASS_NAMES):
        raise ValueError(f"{path}: names are {names}, expected {list(CLASS_NAMES)} (training/classes.py)")


def mix_counts(n_synth: int, n_real: int, real_ratio: float) -> tuple[int, int]:
    """How many synthetic and real training images make ``real_ratio`` real: every image at least once, the
    scarcer side repeated."""
    if real_ratio <= 0 or n_real == 0:
        return n_synth, 0
    if real_ratio >= 1 or n_synth == 0:
        return 0, n_real
    real_needed = real_ratio / (1 - real_ratio) * n_synth
    if real_needed >= n_real:
        return n_synth, round(real_needed)
    return round((1 - real_ratio) / real_ratio * n_real), n_real


def draw(images: list[Path], count: int, rng: random.Random) -> list[Path]:
    """``count`` images: a sample without repeats when there are enough, else whole repeats plus a sample."""
    if not images:
        return []
    whole, rest = divmod(count, len(images))
    return images * whole + rng.sample(images, rest)


def _fingerprint(synthetic: list[Path], real: list[Path]) -> str:
    digest = hashlib.sha256()
    for folder in synthetic:
        manifest = folder / "manifest.json"
        digest.update(manifest.read_bytes() if manifest.exists() else str(folder.resolve()).encode())
    for folder in real:
        for split in ("train", "val"):
            for image in split_images(folder, split):
                label = folder / "labels" / split / f"{image.stem}.txt"
                digest.update(image.name.encode() + image.read_bytes())
                digest.update(label.read_bytes() if label.exists() else b"")
    return digest.hexdigest()


def build_mix(
    synthetic: list[Path], real: list[Path], real_ratio: float | None, out: Path, seed: int = 0
) -> dict[str, Any]:
    """Write ``out/train.txt``, ``out/val.txt``, ``out/data.yaml`` and ``out/mix.json``; returns the latter.

    ``real_ratio`` None: every image once, whatever ratio that makes.
    """
    for folder in [*synthetic, *real]:
        check_classes(folder)
    synth_train = [p for f in synthetic for p in split_images(f, "train")]
    real_train = [p for f in real for p in split_images(f, "train")]
    if real and not real_train:
        raise ValueError(f"no training images in {', '.join(map(str, real))} (images/train)")
    rng = random.Random(seed)
    if real_ratio is None:
        train = synth_train + real_train
        n_synth, n_real = len(synth_train), len(real_train)
    else:
        n_synth, n_real = mix_counts(len(synth_train), len(real_train), real_ratio)
        train = draw(synth_train, n_synth, rng) + draw(real_train, n_real, rng)
    val = [p for f in [*synthetic, *real] for p in split_images(f, "val")]
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("".join(f"{p}\n" for p in train))
    (out / "val.txt").write_text("".join(f"{p}\n" for p in val))
    data = {
        "train": str((out / "train.txt").resolve()),
        "val": str((out / "val.txt").resolve()),
        "names": dict(enumerate(CLASS_NAMES)),
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    manifests = [
        json.loads((f / "manifest.json").read_text()) for f in synthetic if (f / "manifest.json").exists()
    ]
    mix = {
        "count": len(train),
        "seed": manifests[0]["seed"] if manifests else None,
        "seeds": [m["seed"] for m in manifests],
        "generator_version": manifests[0].get("generator_version") if manifests else None,
        "fingerprint": _fingerprint(synthetic, real),
        "real_ratio": real_ratio,
        "synthetic": {"folders": [str(f) for f in synthetic], "available": len(synth_train), "used": n_synth},
        "real": {"folders": [str(f) for f in real], "available": len(real_train), "used": n_real},
        "val_images": len(val),
        "draw_seed": seed,
    }
    (out / "mix.json").write_text(json.dumps(mix, indent=2) + "\n")
    return mix
