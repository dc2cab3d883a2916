"""Trainable Ultralytics weights rebuilt from a model folder, to fine-tune a model whose ``.pt`` is gone.

``train export`` folds every BatchNorm into its convolution, and a model folder keeps only that ONNX file.
This loads its initialisers into the folded network of the same architecture, then unfolds each layer:
the BatchNorm gets the per-channel mean and variance of its convolution's output over calibration images
as running statistics, and the scale and shift that make the pair compute what the folded convolution
did. In eval mode the result equals the ONNX model (checked on the calibration images before writing);
in training mode the batch statistics start close to the calibration ones.

The weights are for the current class set (``training.classes``): a class the model folder lacks starts
as the folder's class of the same kind (``container_empty`` as ``container``), so that fine-tuning only
has to learn what tells them apart; a class of no known kind starts untrained.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training import offline
from training.classes import CLASS_NAMES, CLASSES, counterparts

log = logging.getLogger(__name__)

# Rebuilt network (fp32) against ONNX Runtime; Ultralytics then saves it in fp16, as every checkpoint of its
# own, which moves class scores by ~0.005 and boxes by ~0.5 px (measured on 0.5.0 at 512x288).
MAX_PROBABILITY_ERROR = 1e-3
MAX_BOX_ERROR_PX = 0.05  # in network input pixels


@dataclass(frozen=True)
class Reproduction:
    """How closely the rebuilt network (fp32, eval mode) reproduces the ONNX model."""

    images: int
    max_probability_error: float  # class scores
    max_box_error_px: float  # box coordinates, network input pixels

    @property
    def ok(self) -> bool:
        return (
            self.max_probability_error <= MAX_PROBABILITY_ERROR and self.max_box_error_px <= MAX_BOX_ERROR_PX
        )


def weights_from_onnx(
    model_dir: Path, calibration: Path, out: Path, arch: str, images: int = 48
) -> Reproduction:
    """Write ``out`` (an Ultralytics checkpoint) from ``model_dir``; returns how closely it reproduces it.

    ``calibration``: a dataset folder or any folder of training images (``*.jpg``/``*.png``, searched
    recursively); ``images`` of them, in name order, give the BatchNorm statistics."""
    offline.prepare()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from edge_agent.detector import Detector

    detector = Detector.load(model_dir)  # checks the card, the labels and model.onnx's sha256
    classes = [str(c) for c in detector.class_names]
    model = DetectionModel(arch, nc=len(classes), verbose=False)
    model.names = dict(enumerate(classes))
    folded = _folded_from_onnx(model, model_dir, f"{arch} network with {len(classes)} classes")

    paths = sorted(p for p in calibration.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise FileNotFoundError(f"no calibration images (*.jpg, *.png) under {calibration}")
    batch = np.concatenate([detector.preprocess(cv2.imread(str(p)))[0] for p in paths[:images]])
    _unfold(folded, model, _conv_output_moments(folded, batch))

    check = _compare(model.eval(), detector, batch[:4])
    log.info("rebuilt %s: %s", model_dir.name, check)
    if not check.ok:
        raise ValueError(f"the rebuilt {arch} network does not reproduce {model_dir / 'model.onnx'}: {check}")
    if classes != list(CLASS_NAMES):
        model = _with_classes(model, arch, counterparts(CLASSES, detector.labels))
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = YOLO(arch)
    wrapper.model = model
    wrapper.save(str(out))
    return check


def _with_classes(model, arch: str, sources: list[int | None]):
    """A copy of ``model`` for the current class set: every weight as is, but the rows of the class
    outputs taken from ``sources`` (a class without one keeps Ultralytics' initialisation)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    new = DetectionModel(arch, nc=len(CLASS_NAMES), verbose=False)
    new.names = dict(enumerate(CLASS_NAMES))
    target = new.state_dict()
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.shape == target[key].shape:
                target[key].copy_(value)
                continue
            if value.shape[1:] != target[key].shape[1:] or value.shape[0] != len(model.names):
                shape = tuple(value.shape)
                raise ValueError(f"cannot carry {key} of shape {shape} to {len(CLASS_NAMES)} classes")
            for row, src in enumerate(sources):
                if src is not None:
                    target[key][row] = value[src]
    for row, src in enumerate(sources):
        origin = "untrained" if src is None else f"as {model.names[src]}"
        if src is None or model.names[src] != CLASS_NAMES[row]:
            log.info("class %s starts %s", CLASS_NAMES[row], origin)
    return new


def _folded_from_onnx(model, model_dir: Path, what: str):
    """A folded (BatchNorm-free) copy of ``model`` holding the ONNX file's weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    weights = _conv_weights(onnx.load(str(model_dir / "model.onnx")).graph, numpy_helper.to_array)
    folded = copy.deepcopy(model).fuse(verbose=False).eval()
    state = folded.state_dict()
    for key, tensor in state.items():
        have = weights.get(key)
        if have is None or tuple(have.shape) != tuple(tensor.shape):
            found = "absent" if have is None else f"of shape {tuple(have.shape)}"
            raise ValueError(
                f"{model_dir / 'model.onnx'} is not a {what}: "
                f"its weight {key} is {found}, expected shape {tuple(tensor.shape)}"
            )
    folded.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})
    return folded


def _conv_output_moments(folded, batch: np.ndarray) -> dict[str, tuple]:
    """Per-channel mean and variance of each folded Conv block's convolution (without bias) on ``batch``."""
    import torch
    from ultralytics.nn.modules import Conv

    sums: dict[str, list] = {}

    def record(name: str):
        def hook(conv, inputs, _output) -> None:
            z = torch.nn.functional.conv2d(
                inputs[0], conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups
            ).double()
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += z.numel() // z.shape[1]
            s[1] += z.sum((0, 2, 3))
            s[2] += (z**2).sum((0, 2, 3))

        return hook

    blocks = [(name, m) for name, m in folded.named_modules() if isinstance(m, Conv)]
    hooks = [m.conv.register_forward_hook(record(name)) for name, m in blocks]
    with torch.no_grad():
        for i in range(0, len(batch), 8):
            folded(torch.from_numpy(batch[i : i + 8]))
    for h in hooks:
        h.remove()
    return {
        name: ((s1 / n).float(), (s2 / n - (s1 / n) ** 2).clamp_min(1e-6).float())
        for name, (n, s1, s2) in sums.items()
    }


def _unfold(folded, model, moments: dict[str, tuple]) -> None:
    """Give ``model`` the folded weights, each BatchNorm set to reproduce its folded convolution exactly:
    running mean/var = the measured moments, scale = sqrt(var + eps), shift = folded bias + mean."""
    import torch
    from ultralytics.nn.modules import Conv

    blocks = dict(folded.named_modules())
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, Conv):
                continue
            mean, var = moments[name]
            m.conv.weight.copy_(blocks[name].conv.weight)
            m.bn.running_mean.copy_(mean)
            m.bn.running_var.copy_(var)
            m.bn.weight.copy_(torch.sqrt(var + m.bn.eps))
            m.bn.bias.copy_(blocks[name].conv.bias + mean)
        state = model.state_dict()
        for key, value in folded.state_dict().items():  # the head's plain convolutions and the DFL
            if key.rsplit(".", 2)[0] not in moments:
                state[key].copy_(value)


def _module_path(node_name: str) -> str:
    """``/model.23/cv3.2/cv3.2.1/cv3.2.1.0/conv/Conv`` → ``model.23.cv3.2.1.0.conv``: the exporter's scope
    names the modules of a container relative to its owner, so a deeper name replaces the shallower one."""
    parts: list[str] = []
    for segment in node_name.strip("/").split("/")[:-1]:
        if len(parts) > 1 and segment.startswith(parts[-1] + "."):
            parts[-1] = segment
        else:
            parts.append(segment)
    return ".".join(parts)


def _conv_weights(graph, to_array) -> dict[str, np.ndarray]:
    """State-dict entries of every convolution by module path, read through each Conv node's inputs
    (the exporter gives convolutions whose values are equal one shared initialiser)."""
    tensors = {i.name: i for i in graph.initializer}
    weights = {}
    for node in graph.node:
        if node.op_type == "Conv":
            for field, name in zip(("weight", "bias"), node.input[1:], strict=False):
                if name in tensors:
                    weights[f"{_module_path(node.name)}.{field}"] = to_array(tensors[name])
    return weights


def _compare(model, detector, batch: np.ndarray) -> Reproduction:
    """Largest differences between the rebuilt network and ONNX Runtime."""
    import torch

    with torch.no_grad():
        ours = model(torch.from_numpy(batch))[0].numpy()
    name = detector.session.get_inputs()[0].name
    theirs = np.concatenate([detector.session.run(None, {name: x[None]})[0] for x in batch])
    return Reproduction(
        len(batch),
        float(np.abs(ours[:, 4:] - theirs[:, 4:]).max()),
        float(np.abs(ours[:, :4] - theirs[:, :4]).max()),
    )
