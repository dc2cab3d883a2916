"""Board colours as painted, and the default colour code that decides which food is "wrong" on a board.

The colour code is configuration in deployments (it differs between regions); this default is the one the
synthetic ground truth uses, and the only place in the generator that states it.
"""

from __future__ import annotations

import numpy as np

from training.classes import BOARD_COLOURS, FOOD_CATEGORIES

#: Board colour -> the food category it is reserved for (None: none of the four, e.g. bakery/dairy).
DEFAULT_BOARD_FOOD: dict[str, str | None] = {
    "red": "raw_meat",
    "blue": "raw_seafood",
    "green": "vegetable",
    "yellow": "cooked_food",
    "white": None,
}
assert set(DEFAULT_BOARD_FOOD) == set(BOARD_COLOURS)
assert {v for v in DEFAULT_BOARD_FOOD.values() if v} <= set(FOOD_CATEGORIES)

# Typical plastic colours (RGB); each board jitters around its colour's base.
_BOARD_RGB: dict[str, tuple[float, float, float]] = {
    "red": (196, 40, 42),
    "blue": (38, 92, 178),
    "green": (46, 150, 72),
    "yellow": (236, 196, 40),
    "white": (232, 232, 226),
}


def is_violation(
    board_colour: str, food_category: str, board_food: dict[str, str | None] = DEFAULT_BOARD_FOOD
) -> bool:
    """True when ``food_category`` is not the category reserved for ``board_colour``."""
    return board_food[board_colour] != food_category


def correct_food(board_colour: str, board_food: dict[str, str | None] = DEFAULT_BOARD_FOOD) -> str | None:
    """The category allowed on a board colour, or None when no food category is."""
    return board_food[board_colour]


def board_rgb(rng: np.random.Generator, colour: str) -> tuple[float, float, float]:
    """A painted board colour with realistic batch/fade variation."""
    base = np.asarray(_BOARD_RGB[colour], np.float32)
    jitter = base * rng.uniform(0.85, 1.08) + rng.normal(0, 8, 3)
    return tuple(float(v) for v in np.clip(jitter, 0, 255))
