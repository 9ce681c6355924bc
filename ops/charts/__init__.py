"""The pinned Helm charts as data: where each chart's source lives (`sources.py`), what it creates
for the stacks' values (`record.py`, `make chart-record`), the values keys it knows
(`values.py`) and its CRD schemas (`crds.py`), each with the check of the program against it."""
