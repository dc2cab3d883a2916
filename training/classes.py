"""The detector's class set, and what each class means to the rules.

Boards are one class per colour: the colour code is the whole point of the rule, and a board's colour
is seen best with its context (lighting, white balance) by the detector itself rather than by a hue
threshold afterwards (see README, "Class set", for the measurement).
Food on boards is one class per category that the colour codes separate. Food inside containers is part of
the container's look and is not labelled: the board rule concerns loose food only.

The label map written beside every model (``labels.json``) carries this meaning, so the edge reads
board colours and food categories from the model folder, not from this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BOARD_COLOURS = ("red", "blue", "green", "yellow", "white")
FOOD_CATEGORIES = ("raw_meat", "raw_seafood", "vegetable", "cooked_food")


@dataclass(frozen=True)
class ClassInfo:
    """One detector class: its name, what kind of thing it is, and its attribute (colour or category)."""

    id: int
    name: str
    kind: str  # "board" | "food" | "container"
    attribute: str | None = None  # board colour or food category


def _build() -> tuple[ClassInfo, ...]:
    infos: list[ClassInfo] = []
    for colour in BOARD_COLOURS:
        infos.append(ClassInfo(len(infos), f"board_{colour}", "board", colour))
    for category in FOOD_CATEGORIES:
        infos.append(ClassInfo(len(infos), category, "food", category))
    infos.append(ClassInfo(len(infos), "container", "container", None))
    return tuple(infos)


CLASSES: tuple[ClassInfo, ...] = _build()
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_ID: dict[str, int] = {c.name: c.id for c in CLASSES}


def label_map() -> list[dict]:
    """The JSON-ready label map stored as ``labels.json`` beside each model."""
    return [asdict(c) for c in CLASSES]
