"""Facts on the ground floor: the model and instance catalogue, pinned versions, the GPU node
pool's labels and taint, the cold-start timeline, and the data files they are recorded in.

Imports nothing of the project: every other room builds on these.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"  # recorded facts: vLLM's flags, exposed paths, upstream IAM policy
