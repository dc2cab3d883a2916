"""Fine-tune a shipped model on a borrowed GPU machine whose Python lacks polars and PyAV.

The GPU image this project is lent (docs/benchmarks.md, "Fine-tuning 0.5.0 on a GPU") has torch, OpenCV,
typer and PyYAML but not Ultralytics, pydantic, polars or PyAV, and no network. Ultralytics and pydantic
travel as wheels; polars is too big to carry, so this wrapper reads Ultralytics' ``results.csv`` with the
csv module (checkpoints store it; the driver turns plots off, which need polars too), and it skips AMP's
self-test, which would download ``yolo26n.pt``. Two sub-commands:

- ``render OUT SEED IMAGES SOURCE``: one dataset (``training.synth.stills``; 5 % val), one OpenCV thread;
- ``fit JSON``: ``training.fit.fit`` with the ``FitOptions`` fields given as JSON.

``bench/gpu_finetune.sh`` drives both: datasets rendered on every core, then fine-tunes side by side.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def read_results_csv(trainer) -> dict[str, list]:
    """Ultralytics' ``BaseTrainer.read_results_csv`` without polars."""
    try:
        with open(trainer.csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    out: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            out.setdefault(key.strip(), []).append(_number(value))
    return out


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def render(out: str, seed: str, images: str, source: str) -> None:
    import cv2

    from training.synth.stills import write_dataset

    cv2.setNumThreads(1)  # one process per core
    write_dataset(Path(out), int(images), int(seed), 0.05, source=source, progress=False)
    print("rendered", out, flush=True)


def fit(options: str) -> None:
    from training import offline

    offline.prepare()
    from ultralytics.engine import trainer

    trainer.BaseTrainer.read_results_csv = read_results_csv
    trainer.check_amp = lambda model: True  # Hopper GPUs run AMP; the self-test needs a download

    from training.fit import FitOptions
    from training.fit import fit as run

    fields = json.loads(options)
    fields["data"] = [Path(p) for p in fields["data"]]
    fields["out"], fields["weights"] = Path(fields["out"]), Path(fields["weights"])
    run(FitOptions(**fields))


if __name__ == "__main__":
    {"render": render, "fit": fit}[sys.argv[1]](*sys.argv[2:])
