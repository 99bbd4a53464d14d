"""The inference server: Open Inference Protocol v2 REST routes, ``/metrics`` and OpenAPI docs."""
