"""The stack's settings: the schema helpers (`schema.py`), the sections that have their own module
(`aws`, `capacity_block`, `endpoint`, `node_update`, `observability`, `scaling`, `weights`), and
the typed, frozen `Settings` with the remaining sections (`stack.py`) that every room reads.

May import `components.facts` only. Reading `pulumi.Config` and stack files, and the checks
that need more than one room, live in `components.platform` (`config.py`, `settings_rules.py`).
"""
