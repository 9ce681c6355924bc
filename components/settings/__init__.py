"""The stack's settings: the schema helpers, one module per config section, and the typed,
frozen `Settings` that every room reads (`stack.py`).

May import `components.facts` only. Reading `pulumi.Config` and stack files, and the checks
that need more than one room, live in `components.platform` (`config.py`, `settings_rules.py`).
"""
