"""Bright Kitchen: shared pieces of the edge agent, dashboard and training (CLI, MQTT contract, config)."""

__version__ = "0.1.0"
