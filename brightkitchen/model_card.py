"""A model folder in ``models/``: what it must contain and the card that describes it.

Layout of ``models/<name>-<version>/`` (shared by training, which writes it, the edge, which loads it,
and the dashboard's registry, which lists and serves it)::

    model.onnx     the detector, static input size
    food_classifier.onnx   optional: re-reads each food box's category from a crop (card.food_classifier)
    labels.json    [{"id": 0, "name": "board_red", "kind": "board", "attribute": "red"}, ...]
    card.json      ModelCard below (machine-readable)
    README.md      the same card for people, with metrics tables and training curves
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # the models this checkout ships
MODEL_FILE = "model.onnx"
LABELS_FILE = "labels.json"
CARD_FILE = "card.json"
FOOD_CLASSIFIER_FILE = "food_classifier.onnx"
EMPTY = "empty"  # the attribute of a container class that holds no food


Kind = Literal["board", "food", "container", "other"]


class LabelInfo(BaseModel):
    """One class of the detector and what it means to the rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0)
    name: str
    kind: Kind
    attribute: str | None = None  # board colour, food category, or EMPTY for a container without food


class FoodClassifierCard(BaseModel):
    """The optional second stage: a crop classifier that re-reads the category of each food box.

    Its input is the box grown by ``context`` around its centre (clipped to the frame), cut from the
    camera frame at full resolution and resized to ``input_size`` square, RGB in 0..1; its output, one
    probability per name in ``classes`` (food classes of the detector). The detector sees food at a
    fraction of the frame's pixels and judges its category with the scene around it; the crop is the food
    alone, at the camera's resolution."""

    model_config = ConfigDict(extra="allow")

    file: str = FOOD_CLASSIFIER_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the classifier's ONNX file")
    input_size: int = Field(gt=0, description="square input, pixels")
    context: float = Field(1.2, ge=1.0, description="the crop is the box grown by this around its centre")
    classes: list[str] = Field(min_length=2, description="output order; each a food class of the detector")
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)


class ModelCard(BaseModel):
    """Everything a reviewer needs to judge a model, and what the edge checks before loading it."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of model.onnx")
    input_width: int = Field(gt=0)
    input_height: int = Field(gt=0)
    opset: int | None = None
    size_bytes: int | None = None
    classes: list[str]
    created_at: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    latency_ms: dict[str, float] = Field(default_factory=dict)
    food_classifier: FoodClassifierCard | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}-{self.version}"

    @classmethod
    def read(cls, model_dir: Path) -> ModelCard:
        return cls.model_validate_json((Path(model_dir) / CARD_FILE).read_text())


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def newest_model(folder: Path = MODELS_DIR) -> Path:
    """The model folder in ``folder`` whose card was created last (the shipped one, in ``models/``)."""
    cards = [(ModelCard.read(p.parent).created_at, p.parent) for p in Path(folder).glob(f"*/{CARD_FILE}")]
    if not cards:
        raise FileNotFoundError(f"no model folder with {CARD_FILE} under {folder}")
    return max(cards)[1]
