"""The offline engine: the real Pulumi program run under Pulumi's mocks (`engine.py`), what the
mocks answer (`mocks.py`), the create/delete order computed from the recorded graph
(`graph_order.py`), the rendering written out as files (`manifests.py`), and what a later
`pulumi up` does to each resource (`diff.py`, from the providers' replace rules in
`replace_rules.py`)."""
