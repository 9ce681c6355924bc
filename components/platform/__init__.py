"""The whole stack: reading one stack's config (`config.py`), the checks that need more than
one room (`settings_rules.py`), the gate before a real deploy (`deploy_gate.py`), and the
wiring of the rooms into the AWS layer, then the Kubernetes layer (`build.py`).

May import every room of `components`; nothing in `components` imports it.
"""
