"""Dating when the food behind a new episode arrived, from the last frames of its place."""

from __future__ import annotations

import numpy as np

from edge_agent.arrival import ArrivalClock

from .helpers import frame

FPS = 5
FOOD = np.array([300.0, 150.0, 380.0, 210.0])  # where the detector first sees the food


def _scene(t: float, glove_from: float, food_from: float, noise: np.random.Generator) -> np.ndarray:
    """A blue board; a glove carrying food covers FOOD from ``glove_from``; the food alone shows from
    ``food_from``; sensor noise throughout."""
    img = np.full((360, 640, 3), (180, 120, 40), np.uint8)  # BGR: the board
    if t >= glove_from:
        img[140:230, 290:400] = (60, 200, 60) if t < food_from else (60, 60, 200)
    return np.clip(img + noise.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def _clock(glove_from: float, food_from: float, until: float, lookback_s: float = 2.5) -> ArrivalClock:
    clock, noise = ArrivalClock(lookback_s), np.random.default_rng(0)
    for n in range(round(until * FPS)):
        t = n / FPS
        clock.push(frame(t, image=_scene(t, glove_from, food_from, noise)))
    return clock


def test_the_food_arrived_when_its_place_began_to_differ() -> None:
    clock = _clock(glove_from=3.0, food_from=4.0, until=4.0)
    when = clock.arrival(FOOD, seen_t=4.0, frame_wh=(640, 360), lookback_s=2.5)
    assert when is not None and when.t == 3.0


def test_no_arrival_when_the_place_changed_before_the_kept_frames() -> None:
    # the glove was over the place all along: where the run began is not in view
    clock = _clock(glove_from=0.0, food_from=4.0, until=4.0)
    assert clock.arrival(FOOD, seen_t=4.0, frame_wh=(640, 360), lookback_s=2.5) is None


def test_no_arrival_when_the_place_looked_the_same_up_to_the_sighting() -> None:
    clock = _clock(glove_from=9.0, food_from=9.0, until=4.0)
    assert clock.arrival(FOOD, seen_t=4.0, frame_wh=(640, 360), lookback_s=2.5) is None


def test_frames_older_than_the_lookback_are_forgotten() -> None:
    clock = _clock(glove_from=3.0, food_from=4.0, until=4.0, lookback_s=0.5)
    assert clock.arrival(FOOD, seen_t=4.0, frame_wh=(640, 360), lookback_s=2.5) is None  # begun > 0.5 s ago


def test_the_place_still_differs_while_the_food_is_there_and_not_once_it_has_gone() -> None:
    """Tuning clip 7100-001: a food read wrongly for 2.5 s was taken away as its alarm fell due; the bare
    board says it has gone, where a hand over it would not."""
    clock = _clock(glove_from=3.0, food_from=4.0, until=4.0)
    arrival = clock.arrival(FOOD, seen_t=4.0, frame_wh=(640, 360), lookback_s=2.5)
    assert arrival is not None
    noise = np.random.default_rng(1)
    clock.push(frame(6.0, image=_scene(6.0, glove_from=3.0, food_from=4.0, noise=noise)))
    assert clock.still_there(arrival)
    clock.push(frame(6.2, image=_scene(6.2, glove_from=9.0, food_from=9.0, noise=noise)))  # taken away
    assert not clock.still_there(arrival)
