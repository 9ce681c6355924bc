"""vLLM's router on loopback in front of fake replicas: the trace replay behind `make routing` and its tests."""
