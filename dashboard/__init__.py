"""The central dashboard: MQTT ingest, storage, review UI, restaurant portal and REST API."""
