"""The edge agent: cameras → motion gate → ONNX detector → tracker → rules → events → MQTT outbox.

Imports no torch and no ultralytics (tests/test_packaging.py checks it).
"""
