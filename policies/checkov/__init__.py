"""checkov loads the checks of this folder as a package (tests/test_checkov.py)."""
