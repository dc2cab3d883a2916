"""The detector's class set, and what each class means to the rules.

Boards are one class per colour: the colour code is the whole point of the rule, and a board's colour
is seen best with its context (lighting, white balance) by the detector itself rather than by a hue
threshold afterwards (see README, "Class set", for the measurement).
Food on boards is one class per category that the colour codes separate. Food inside containers is part of
the container's look and is not labelled: the board rule concerns loose food only. Containers are two
classes, ``container`` (holding food) and ``container_empty``: in a tilted camera's boxes a nested pair of
empty bowls is a tight stack (docs/benchmarks.md, session 12), and only what the opening shows tells them
apart, so the stacked rule needs the detector to say it. Class ids only ever grow, so that datasets
exported under an older class set keep their meaning.

The label map written beside every model (``labels.json``) carries this meaning, so the edge reads
board colours and food categories from the model folder, not from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from brightkitchen.model_card import EMPTY, LabelInfo

BOARD_COLOURS = ("red", "blue", "green", "yellow", "white")
FOOD_CATEGORIES = ("raw_meat", "raw_seafood", "vegetable", "cooked_food")


@dataclass(frozen=True)
class ClassInfo:
    """One detector class: its name, what kind of thing it is, and its attribute (colour or category)."""

    id: int
    name: str
    kind: str  # "board" | "food" | "container"
    attribute: str | None = None  # board colour, food category, or "empty" for a container without food


def _build() -> tuple[ClassInfo, ...]:
    infos: list[ClassInfo] = []
    for colour in BOARD_COLOURS:
        infos.append(ClassInfo(len(infos), f"board_{colour}", "board", colour))
    for category in FOOD_CATEGORIES:
        infos.append(ClassInfo(len(infos), category, "food", category))
    infos.append(ClassInfo(len(infos), "container", "container", None))
    infos.append(ClassInfo(len(infos), "container_empty", "container", EMPTY))
    return tuple(infos)


CLASSES: tuple[ClassInfo, ...] = _build()
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_ID: dict[str, int] = {c.name: c.id for c in CLASSES}


def counterparts(
    ours: Sequence[ClassInfo | LabelInfo], theirs: Sequence[ClassInfo | LabelInfo]
) -> list[int | None]:
    """For each class of ``ours``, the index of the class of ``theirs`` (another model's label map) that
    stands for it: the class of that name, else the first of its kind, else None. A model with one
    container class thus reads ``container_empty`` as ``container``."""
    by_name = {c.name: i for i, c in enumerate(theirs)}
    by_kind: dict[str, int] = {}
    for i, c in enumerate(theirs):
        by_kind.setdefault(c.kind, i)
    return [by_name.get(c.name, by_kind.get(c.kind)) for c in ours]


def named(names: Sequence[str]) -> list[ClassInfo]:
    """The classes of these names (a dataset's ``data.yaml``), of kind "other" where unknown here."""
    return [CLASSES[CLASS_ID[n]] if n in CLASS_ID else ClassInfo(i, n, "other") for i, n in enumerate(names)]


def label_map() -> list[dict]:
    """The JSON-ready label map stored as ``labels.json`` beside each model."""
    return [asdict(c) for c in CLASSES]
