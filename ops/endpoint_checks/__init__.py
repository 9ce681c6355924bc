"""`ops verify`'s rows beyond its own file: the generation checks made with the `openai` client
(`client.py`), the in-cluster reachability row (`incluster.py`) and the metrics rows
(`metrics.py`)."""
