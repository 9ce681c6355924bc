"""The offline engine: the real Pulumi program run under Pulumi's mocks (`engine.py`), what the
mocks answer (`mocks.py`) and the create/delete order computed from the recorded graph."""
