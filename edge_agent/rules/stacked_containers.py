"""``stacked_containers``: a food container set directly on top of another one.

Seen by a fixed, tilted camera, the upper container's box overlaps the lower one's horizontally, rises
above the lower one's top, and its bottom edge lies inside the lower box near its top, or deeper when the
upper box lies within the lower's width (it sits in the lower's opening, whose rim is all that shows).
Containers side by side (little horizontal overlap) and one nested inside another (its top not above the
other's top) are not violations. One episode per (upper, lower) pair of tracks, and each container is in
at most one pair as the upper and one as the lower, the most confident pairs first: when the detector
splits a container into several boxes (a tray around the bowl set in it, the rim of the lower one), the
fragments pair with each other and with the real boxes, and would each raise an alert of their own.

Boxes alone cannot tell a nested pair of empty bowls from a tight stack (their geometry is the same to
within box jitter). A model with a class for empty containers (label attribute ``empty``) can: with
``food_below``, a pair alerts only when the lower container is not read as empty, as the violation is a
base touching the food below, and then nesting is no excuse (a bowl set down in a basin of food touches
its food), so ``min_rise`` is not checked unless set. With a model that has one container class, every
container counts as holding food, and a container whose top is below the other's is taken as nested.

A stack that runs off the bottom of the picture shows neither bottom edge: both boxes end at the border.
Then the upper one's bottom cannot be placed in the lower's top band, and a pair whose upper box lies
within the lower's width and rises above its top counts as stacked.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from brightkitchen.model_card import EMPTY
from edge_agent.rules.base import Hit, Rule

BORDER_PX = 2  # a box edge this close to the picture's border is the border, not the object's edge


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_overlap_x: float = Field(
        0.5, gt=0, le=1, description="horizontal overlap as a share of the narrower container's width"
    )
    top_band: float = Field(
        0.85,
        gt=0,
        le=1,
        description="the upper one's bottom edge lies within this share of the lower's height",
    )
    inside_band: float = Field(
        0.95,
        gt=0,
        le=1,
        description="how deep the upper one's bottom edge may lie when its box is within the lower's width "
        "(it sits in the other's opening; a container behind that shows this low juts out at the sides)",
    )
    inside_margin: float = Field(
        0.03, ge=0, le=0.5, description="box jitter allowed for 'within the width', a share of its width"
    )
    min_rise: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="the upper one's top is above the lower's top by at least this share of its height "
        "(0: not below it; a nested container's top is below). Unset: 0, but not checked with food_below "
        "and a model that reads empty containers",
    )
    food_below: bool = Field(
        True,
        description="alert only when the lower container is not read as empty (models with a "
        "container_empty class)",
    )


def stacked_pairs(xyxy: np.ndarray, params: Params, frame_h: float | None = None) -> list[tuple[int, int]]:
    """(upper, lower) row pairs of container boxes that sit one on the other. Pure geometry; ``frame_h``
    (the picture's height) tells boxes cut off by its bottom border; ``min_rise`` None is not checked."""
    cut = xyxy[:, 3] >= frame_h - BORDER_PX if frame_h is not None else np.zeros(len(xyxy), dtype=bool)
    pairs = []
    for u in range(len(xyxy)):
        ux1, uy1, ux2, uy2 = xyxy[u]
        for lo in range(len(xyxy)):
            if lo == u:
                continue
            lx1, ly1, lx2, ly2 = xyxy[lo]
            overlap_x = min(ux2, lx2) - max(ux1, lx1)
            narrower = min(ux2 - ux1, lx2 - lx1)
            if narrower <= 0 or overlap_x / narrower < params.min_overlap_x:
                continue
            lower_h, upper_h = ly2 - ly1, uy2 - uy1
            margin = params.inside_margin * (lx2 - lx1)
            within = lx1 - margin <= ux1 and ux2 <= lx2 + margin
            band = params.inside_band if within else params.top_band
            unseen = within and cut[u] and cut[lo]  # both bottoms below the picture
            if not ly1 < uy2 <= ly1 + band * lower_h and not unseen:
                continue
            if params.min_rise is not None and ly1 - uy1 < params.min_rise * upper_h:
                continue
            pairs.append((u, lo))
    return pairs


class StackedContainers(Rule):
    type = "stacked_containers"
    Params = Params

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labels = self.labels.by_name.values()
        reads_empty = any(x.kind == "container" and x.attribute == EMPTY for x in labels)
        self.food_below = self.params.food_below and reads_empty  # else every container holds food
        if self.params.min_rise is None and not self.food_below:  # nesting tells empty pairs apart
            self.params = self.params.model_copy(update={"min_rise": 0.0})

    def find(self, dets: sv.Detections, candidates: np.ndarray, frame_wh: tuple[int, int]) -> list[Hit]:
        kinds, attrs = self.labels.kinds(dets), self.labels.attributes(dets)
        rows = np.array([i for i in candidates if kinds[i] == "container"], dtype=int)
        if len(rows) < 2:
            return []
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        pairs = [
            (int(rows[u]), int(rows[lo]))
            for u, lo in stacked_pairs(dets.xyxy[rows], self.params, frame_wh[1])
            if not (self.food_below and attrs[rows[lo]] == EMPTY)
        ]
        uppers: set[int] = set()
        lowers: set[int] = set()
        hits = []
        for upper, lower in sorted(pairs, key=lambda p: -min(conf[p[0]], conf[p[1]])):
            if upper in uppers or lower in lowers:
                continue
            uppers.add(upper)
            lowers.add(lower)
            box = dets.xyxy[[upper, lower]]
            anchor = np.array([box[:, 0].min(), box[:, 1].min(), box[:, 2].max(), box[:, 3].max()])
            score = float(min(conf[upper], conf[lower]))
            key = (self.track_id(dets, upper), self.track_id(dets, lower))
            hits.append(Hit(self.type, self.name, key, score, anchor, (upper, lower), {"containers": 2}))
        return hits


RULE = StackedContainers
