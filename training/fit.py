"""Train the detector with Ultralytics, offline, from scratch or from given weights, resumable.

Writes into ``out``: Ultralytics' run (``weights/best.pt``, ``last.pt``, ``results.csv``, ``results.png`` —
the training curves), ``train.log`` (everything Ultralytics printed) and ``fit.json`` (what was trained on,
how long it took, on which machine).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training import offline
from training.mix import build_mix

log = logging.getLogger(__name__)
# A narrow from-scratch architecture: Ultralytics' YOLO11n layout scaled for 10 simple classes.
DEFAULT_ARCH = "yolo11n.yaml"


@dataclass
class FitOptions:
    data: Path | list[Path]  # one dataset folder (or data.yaml), or several synthetic folders to merge
    out: Path
    epochs: int = 30
    hours: float | None = None  # a time budget: Ultralytics re-plans epochs and LR schedule to fit it
    imgsz: int = 320
    batch: int = 16
    weights: Path | None = None  # start from these .pt weights instead of from scratch
    arch: str = DEFAULT_ARCH
    workers: int = 2
    threads: int | None = None
    patience: int = 50
    seed: int = 0
    cache: bool = True
    resume: bool = False
    device: str = "cpu"
    extra: dict = field(default_factory=dict)  # any other Ultralytics train argument
    real: list[Path] = field(default_factory=list)  # real dataset folders (dashboard export, import-labels)
    real_ratio: float | None = None  # share of real training images; None: every image once

    @property
    def folders(self) -> list[Path]:
        return list(self.data) if isinstance(self.data, list) else [Path(self.data)]

    @property
    def mixed(self) -> bool:
        return len(self.folders) > 1 or bool(self.real)


def machine_description(device: str = "cpu") -> str:
    """Where a model was trained, for its card."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{os.cpu_count()} cores, {cpu}"
    if device != "cpu":
        import torch

        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def epoch_line(trainer) -> str:
    """One line per epoch for train.log: train losses, then validation metrics when this epoch validated.

    After the last epoch Ultralytics validates ``best.pt`` once more and reports it as epoch N+1.
    """
    if trainer.epoch + 1 > trainer.epochs:
        shown = {
            k.split("/")[-1].replace("(B)", ""): v
            for k, v in trainer.metrics.items()
            if k.startswith("metrics/")
        }
        return "best.pt: " + ", ".join(f"{k} {float(v):.4f}" for k, v in shown.items())
    losses = trainer.label_loss_items(trainer.tloss, prefix="train")
    shown = {k.replace("/", "_"): v for k, v in losses.items()}
    if trainer.args.val or trainer.epoch + 1 >= trainer.epochs or trainer.stop:  # Ultralytics validated
        metrics = trainer.metrics.items()
        shown |= {k.split("/")[-1].replace("(B)", ""): v for k, v in metrics if k.startswith("metrics/")}
    return f"epoch {trainer.epoch + 1}/{trainer.epochs}: " + ", ".join(
        f"{k} {float(v):.4f}" for k, v in shown.items()
    )


def _log_epoch(trainer) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.info(epoch_line(trainer))


def _jsonable(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def fit(opts: FitOptions) -> Path:
    """Run training; returns the path of ``best.pt``."""
    offline.prepare(threads=opts.threads)
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    opts.out = opts.out.resolve()
    opts.out.mkdir(parents=True, exist_ok=True)
    mix = None
    if opts.mixed:
        mix = build_mix(opts.folders, opts.real, opts.real_ratio, opts.out / "mix", opts.seed)
        data_yaml = str(opts.out / "mix" / "data.yaml")
        log.info("training mix: %s", {k: mix[k] for k in ("count", "synthetic", "real")})
    else:
        folder = opts.folders[0]
        data_yaml = str(folder.resolve() / "data.yaml") if folder.is_dir() else str(folder)
    handler = logging.FileHandler(opts.out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOGGER.addHandler(handler)
    last = opts.out / "weights" / "last.pt"
    started = time.time()
    try:
        if opts.resume:
            if not last.exists():
                raise FileNotFoundError(f"nothing to resume: {last} does not exist")
            log.info("resuming %s", last)
            YOLO(str(last)).train(resume=True)
        else:
            model = YOLO(str(opts.weights) if opts.weights else opts.arch)
            model.add_callback("on_fit_epoch_end", _log_epoch)
            arguments = dict(
                data=data_yaml,
                epochs=opts.epochs,
                time=opts.hours,
                imgsz=opts.imgsz,
                batch=opts.batch,
                workers=opts.workers,
                device=opts.device,
                project=str(opts.out.parent),
                name=opts.out.name,
                exist_ok=True,
                pretrained=bool(opts.weights),
                patience=opts.patience,
                seed=opts.seed,
                deterministic=False,
                cache="ram" if opts.cache else False,
                plots=True,
                amp=opts.device != "cpu",
                verbose=True,
            )
            arguments.update(opts.extra)  # --set KEY=VALUE overrides any of the above
            model.train(**arguments)
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
    seconds = time.time() - started
    summary = {
        "options": {k: _jsonable(v) for k, v in asdict(opts).items()},
        "train_seconds": round(seconds, 1),
        "machine": machine_description(opts.device),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest = opts.folders[0] / "manifest.json"
    if mix is not None:
        summary["dataset"] = mix
    elif manifest.exists():
        summary["dataset"] = json.loads(manifest.read_text())
    (opts.out / "fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    best = opts.out / "weights" / "best.pt"
    log.info(
        "training finished in %.0f s; best weights %s; curves %s", seconds, best, opts.out / "results.png"
    )
    return best
