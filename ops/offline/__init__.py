"""The offline engine: the real Pulumi program run under Pulumi's mocks (`engine.py`), what the
mocks answer (`mocks.py`), the create/delete order computed from the recorded graph
(`graph_order.py`), and the rendering written out as files (`manifests.py`)."""
