"""`ops preflight`'s AWS rows beyond its own file: the Kubernetes version and add-on builds
(`eks_versions.py`), resources named by region-less ids (`resources.py`) and the zones a stack
records for its life (`zone_record.py`)."""
