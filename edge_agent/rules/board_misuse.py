"""``board_misuse``: food of a category that the board's colour does not allow, lying on that board.

Board colour and food category come from the label map (``kind`` board/food, ``attribute`` colour/category),
the allowed categories per colour from the config's palette. A food lies on a board when its anchor point
(box centre, or the middle of its bottom edge) is inside the board's box; with several boards the smallest
one containing it wins. One episode per board and food category, so two steaks on a blue board are one
alert and a knife hiding the food for a moment does not start a new one (see events.py for the gaps); the
hit's ``subject`` is its food, so the same food read as another wrong category stays one episode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from brightkitchen.contract import DetailValue
from edge_agent.rules.base import Hit, Rule, is_active
from edge_agent.tracking import iou_matrix

log = logging.getLogger(__name__)
SAME_BOARD_IOU = 0.5  # boards lie still: the episode's board is the one at (about) its last box


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["centre", "bottom"] = Field(
        "centre", description="the food's point that must lie on the board: box centre or bottom middle"
    )


class BoardMisuse(Rule):
    type = "board_misuse"
    Params = Params

    def find(self, dets: sv.Detections, candidates: np.ndarray, frame_wh: tuple[int, int]) -> list[Hit]:
        hits: dict[tuple[int | str, ...], Hit] = {}
        for b, f, colour, food in self._placed(dets, candidates):
            if food in self.palette[colour]:
                continue
            key = (self.track_id(dets, b), food)
            score = float(min(dets.confidence[b], dets.confidence[f])) if dets.confidence is not None else 1.0
            old = hits.get(key)
            indices = (int(b), int(f)) if old is None else (*old.indices, int(f))
            hits[key] = Hit(
                self.type,
                self.name,
                key,
                max(score, old.score if old else 0.0),
                dets.xyxy[b].copy(),
                indices,
                {"board_colour": colour, "food": food},
                dets.xyxy[f].copy() if old is None else old.subject,
            )
        return list(hits.values())

    def still_hidden(
        self,
        dets: sv.Detections,
        anchor: np.ndarray,
        details: Mapping[str, DetailValue],
        frame_wh: tuple[int, int],
        at: datetime,
    ) -> bool:
        """The episode's board (at ``anchor``) is in view and holds no food of another category read with the
        confidence a hidden alarm needs (``hidden_alarm_min_score``): that says the earlier reads may have
        been a misread, or the food was swapped. A hand over the food is often read as some food at 0.4-0.7
        (held-out 7001-004: cooked food under a knife as raw seafood, 0.59-0.68), which says nothing."""
        if not is_active(self._spans, at):
            return False
        candidates = self.in_roi(dets, frame_wh)
        kinds = self.labels.kinds(dets)
        boards = [i for i in candidates if kinds[i] == "board"]
        if not boards:
            return False
        overlap = iou_matrix(anchor[None], dets.xyxy[boards])[0]
        if overlap.max() < SAME_BOARD_IOU:
            return False
        board = boards[int(overlap.argmax())]
        floor = self.cfg.hidden_alarm_min_score or 0.0
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        return all(
            food == details["food"] or conf[f] < floor
            for b, f, _, food in self._placed(dets, candidates)
            if b == board
        )

    def _placed(self, dets: sv.Detections, candidates: np.ndarray) -> list[tuple[int, int, str, str]]:
        """(board row, food row, board colour, food category) for each food lying on a board of a colour
        in the palette."""
        kinds, attrs = self.labels.kinds(dets), self.labels.attributes(dets)
        boards = [i for i in candidates if kinds[i] == "board"]
        foods = [i for i in candidates if kinds[i] == "food"]
        xyxy = dets.xyxy
        areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        placed = []
        for f in foods if boards else []:
            x = (xyxy[f, 0] + xyxy[f, 2]) / 2
            y = xyxy[f, 3] if self.params.anchor == "bottom" else (xyxy[f, 1] + xyxy[f, 3]) / 2
            under = [b for b in boards if xyxy[b, 0] <= x <= xyxy[b, 2] and xyxy[b, 1] <= y <= xyxy[b, 3]]
            if not under:
                continue
            b = min(under, key=lambda i: areas[i])
            if attrs[b] not in self.palette:
                log.debug("board colour %r is not in the palette; rule %s ignores it", attrs[b], self.name)
                continue
            placed.append((int(b), int(f), str(attrs[b]), str(attrs[f])))
        return placed


RULE = BoardMisuse
