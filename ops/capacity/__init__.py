"""Capacity: `make capacity`'s KV-cache report (`report.py`) and Capacity Blocks for ML, found
(`find.py`), bought and pointed at (`use.py`), followed through time in preflight
(`block_state.py`), with their command line (`cli.py`); and preflight's rows for the stack's
capacity reservation (`reservation.py`)."""
