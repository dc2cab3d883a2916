"""Keep Ultralytics fully offline and fast on a small CPU box. Call ``prepare()`` before importing it.

Each switch, and why (also in the README, "Training your own model"):
- ``YOLO_OFFLINE=1``: no DNS probe, no pip auto-update, no version check, no hub, no telemetry.
- ``YOLO_AUTOINSTALL=0``: never pip-install a missing requirement at run time.
- ``YOLO_CONFIG_DIR``: settings and fonts live in a project folder, not in ``~/.config``.
- settings ``sync=False`` and every logger integration off (ClearML, Comet, DVC, MLflow, Ray Tune, TB, W&B).
- ``Arial.ttf`` in the config dir: dataset checks and plots call ``check_font``, which would download it;
  matplotlib's own DejaVuSans is copied there instead.
- ``NUM_THREADS``: Ultralytics uses ``cpus - 1`` torch threads (1 on 2 cores); all cores train 1.6x faster.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_CONFIG_DIR = Path(
    os.environ.get("BRIGHTKITCHEN_YOLO_DIR", Path.home() / ".cache" / "brightkitchen-yolo")
)
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def prepare(config_dir: Path = DEFAULT_CONFIG_DIR, threads: int | None = None) -> None:
    """Set the environment and settings so that importing and running Ultralytics touches no network."""
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("YOLO_VERBOSE", "True")
    font = config_dir / "Arial.ttf"
    if not font.exists():
        import matplotlib

        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)

    from ultralytics import settings
    from ultralytics.utils import torch_utils

    settings.update({"sync": False, **dict.fromkeys(_INTEGRATIONS, False)})
    torch_utils.NUM_THREADS = threads or os.cpu_count() or 1
