"""Fixtures shared by every test package: small but real ONNX model folders (no training needed).

Imports stay inside the functions: a venv with one extra only must still collect every test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from brightkitchen.model_card import ModelCard, file_sha256


def write_model_folder(
    folder: Path, name: str = "tiny", version: str = "0.0.1", broken: bool = False
) -> Path:
    """A model folder whose ONNX graph loads in ONNX Runtime and always finds one red board.

    ``broken``: the graph still loads, but every inference fails (a Gather index out of range), which is
    what an automatic rollback must catch.
    """
    np = pytest.importorskip("numpy")
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from training.classes import label_map

    labels = label_map()
    width, height, anchors = 64, 32, 2
    channels = 4 + len(labels)
    out = np.zeros((1, channels, anchors), np.float32)
    out[0, :5, 0] = [32, 16, 20, 10, 0.9]  # cx, cy, w, h in input pixels, score of class 0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "boxes"], ["all"]),
        helper.make_node("Gather", ["all", "index"], ["output0"], axis=2),
    ]
    index = [0, anchors + 5] if broken else list(range(anchors))
    graph = helper.make_graph(
        nodes,
        "tiny-detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, anchors])],
        initializer=[
            numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
            numpy_helper.from_array(out, "boxes"),
            numpy_helper.from_array(np.array(index, np.int64), "index"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    (folder / "labels.json").write_text(json.dumps(labels))
    card = ModelCard(
        name=name,
        version=version,
        sha256=file_sha256(folder / "model.onnx"),
        input_width=width,
        input_height=height,
        opset=18,
        classes=[x["name"] for x in labels],
        created_at="2026-11-29T09:00:00Z",
        metrics={
            "images": 4,
            "per_class": [
                {
                    "name": n,
                    "instances": 2 * (i < 2),
                    "precision": 0.5,
                    "recall": 0.5,
                    "map50": 0.4 + i / 10,
                    "map50_95": 0.2,
                }
                for i, n in enumerate(x["name"] for x in labels)
            ],
        },
    )
    (folder / "card.json").write_text(card.model_dump_json(indent=2))
    (folder / "README.md").write_text(f"# {name} {version}\n\nsha256 {card.sha256}\n")
    return folder


@pytest.fixture
def make_model_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make_model_folder(name=..., version=..., broken=False)`` → a fresh model folder in tmp_path."""

    def make(name: str = "tiny", version: str = "0.0.1", broken: bool = False) -> Path:
        return write_model_folder(tmp_path / "models" / f"{name}-{version}", name, version, broken)

    return make
