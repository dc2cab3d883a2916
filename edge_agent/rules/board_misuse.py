"""``board_misuse``: food of a category that the board's colour does not allow, lying on that board.

Board colour and food category come from the label map (``kind`` board/food, ``attribute`` colour/category),
the allowed categories per colour from the config's palette. A food lies on a board when its anchor point
(box centre, or the middle of its bottom edge) is inside the board's box; with several boards the smallest
one containing it wins. One episode per board and food category, so two steaks on a blue board are one
alert and a knife hiding the food for a moment does not start a new one (see events.py for the gaps).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.rules.base import Hit, Rule

log = logging.getLogger(__name__)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["centre", "bottom"] = Field(
        "centre", description="the food's point that must lie on the board: box centre or bottom middle"
    )


class BoardMisuse(Rule):
    type = "board_misuse"
    Params = Params

    def find(self, dets: sv.Detections, candidates: np.ndarray, frame_wh: tuple[int, int]) -> list[Hit]:
        kinds, attrs = self.labels.kinds(dets), self.labels.attributes(dets)
        boards = [i for i in candidates if kinds[i] == "board"]
        foods = [i for i in candidates if kinds[i] == "food"]
        if not boards or not foods:
            return []
        xyxy = dets.xyxy
        areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        hits: dict[tuple[int | str, ...], Hit] = {}
        for f in foods:
            x = (xyxy[f, 0] + xyxy[f, 2]) / 2
            y = xyxy[f, 3] if self.params.anchor == "bottom" else (xyxy[f, 1] + xyxy[f, 3]) / 2
            under = [b for b in boards if xyxy[b, 0] <= x <= xyxy[b, 2] and xyxy[b, 1] <= y <= xyxy[b, 3]]
            if not under:
                continue
            b = min(under, key=lambda i: areas[i])
            colour, food = attrs[b], attrs[f]
            if colour not in self.palette:
                log.debug("board colour %r is not in the palette; rule %s ignores it", colour, self.name)
                continue
            if food in self.palette[colour]:
                continue
            key = (self.track_id(dets, b), str(food))
            score = float(min(dets.confidence[b], dets.confidence[f])) if dets.confidence is not None else 1.0
            old = hits.get(key)
            indices = (int(b), int(f)) if old is None else (*old.indices, int(f))
            hits[key] = Hit(
                self.type,
                self.name,
                key,
                max(score, old.score if old else 0.0),
                xyxy[b].copy(),
                indices,
                {"board_colour": str(colour), "food": str(food)},
                xyxy[f].copy() if old is None else old.arrived,
            )
        return list(hits.values())


RULE = BoardMisuse
