"""``brightkitchen train``: synthetic data, training, evaluation and ONNX export."""

from __future__ import annotations

import typer

app = typer.Typer(help="Synthetic data, training, evaluation and ONNX export.", no_args_is_help=True)
