"""The rule registry: a rule type is one module here with a ``Rule`` subclass, listed in ``_MODULES``.

Example::

    rules = build_rules(camera_cfg.rules, LabelMap(detector.labels), cfg.palette)
    hits = [h for r in rules for h in r.evaluate(dets, (w, h), at)]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.config import RuleConfig
    from edge_agent.rules.base import LabelMap, Rule

_MODULES = {
    "board_misuse": "edge_agent.rules.board_misuse",
    "stacked_containers": "edge_agent.rules.stacked_containers",
}


def rule_types() -> list[str]:
    return sorted(_MODULES)


def rule_class(rule_type: str) -> type[Rule]:
    """The class implementing ``rule_type``; ``ValueError`` naming the known types otherwise."""
    if rule_type not in _MODULES:
        raise ValueError(f"unknown rule type {rule_type!r}; known: {', '.join(rule_types())}")
    module = importlib.import_module(_MODULES[rule_type])
    return module.RULE


def build_rules(configs: list[RuleConfig], labels: LabelMap, palette: dict[str, list[str]]) -> list[Rule]:
    """Instantiate a camera's rules from its config."""
    return [rule_class(cfg.type)(cfg, labels, palette) for cfg in configs]
