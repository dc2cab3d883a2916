"""Boards as one class per colour, or one "board" class plus a colour estimator? Measured here.

For every ground-truth board in a held-out synthetic set, take the model's best-overlapping board box
(IoU >= 0.5, any board class, so localisation is identical for both strategies) and compare its colour
as (a) the detector's own class, (b) a hue/saturation estimator on the box's pixels (the "board +
colour estimator" design). Reports colour accuracy and the confusion of each, and how many boards no
board box found (the same for both). Run:

    python bench/board_colour_strategy.py --model models/bk-detector-0.6.0 --data data/heldout
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edge_agent.detector import Detector
from edge_agent.tracking import iou_matrix
from training.classes import BOARD_COLOURS
from training.evaluate import dataset_images, label_path, read_labels

# OpenCV hue (0..179) centres of the colour codes
HUE_CENTRES = {"red": 0, "yellow": 28, "green": 60, "blue": 110}


def estimate_colour(frame: np.ndarray, box: np.ndarray) -> str:
    """Colour code of a board from its pixels: white if unsaturated and bright, else the nearest hue."""
    x1, y1, x2, y2 = box.astype(int)
    w, h = x2 - x1, y2 - y1
    crop = frame[y1 + h // 6 : y2 - h // 6, x1 + w // 6 : x2 - w // 6]  # the inner part, less counter
    if crop.size == 0:
        crop = frame[y1:y2, x1:x2]
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(float)
    sat, val = np.median(hsv[:, 1]), np.median(hsv[:, 2])
    if sat < 60 and val > 110:
        return "white"
    coloured = hsv[hsv[:, 1] >= 60]
    hues = coloured[:, 0] if len(coloured) else hsv[:, 0]
    votes = Counter(
        min(HUE_CENTRES, key=lambda c: min(abs(h - HUE_CENTRES[c]), 180 - abs(h - HUE_CENTRES[c])))
        for h in hues[:: max(1, len(hues) // 2000)]
    )
    return votes.most_common(1)[0][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    det = Detector.load(args.model)
    board_ids = {i for i, n in enumerate(det.class_names) if str(n).startswith("board_")}
    tally = {"detector": Counter(), "estimator": Counter()}
    confusion = {"detector": Counter(), "estimator": Counter()}
    missed = total = 0
    for image in dataset_images(args.data, "all"):
        frame = cv2.imread(str(image))
        cls, boxes = read_labels(label_path(image), frame.shape[1], frame.shape[0])
        dets = det.detect(frame, confidence=0.25)
        keep = np.isin(dets.class_id, list(board_ids)) if len(dets) else np.zeros(0, bool)
        pred_boxes, pred_cls = (dets.xyxy[keep], dets.class_id[keep]) if len(dets) else (np.zeros((0, 4)), [])
        for c, box in zip(cls, boxes, strict=True):
            if c not in board_ids:
                continue
            total += 1
            truth = BOARD_COLOURS[c]
            iou = iou_matrix(box[None], pred_boxes)[0] if len(pred_boxes) else np.zeros(0)
            if not len(iou) or iou.max() < 0.5:
                missed += 1
                continue
            j = int(iou.argmax())
            answers = {
                "detector": BOARD_COLOURS[pred_cls[j]],
                "estimator": estimate_colour(frame, pred_boxes[j]),
            }
            for way, said in answers.items():
                tally[way][said == truth] += 1
                confusion[way][f"{truth}->{said}"] += 1
    found = total - missed
    result = {
        "boards": total,
        "localised": found,
        "accuracy": {way: t[True] / found if found else 0.0 for way, t in tally.items()},
        "errors": {
            way: {k: v for k, v in c.items() if k.split("->")[0] != k.split("->")[1]}
            for way, c in confusion.items()
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
