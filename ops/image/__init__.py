"""The pinned vLLM image as data: what it holds that the pods use (`contents.py`), and every
program and module a rendered pod runs in it, read from its commands (`pod_commands.py`)."""
