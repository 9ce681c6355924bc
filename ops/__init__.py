"""Commands around the Pulumi program: `python -m ops plan | preflight | verify | sweep | capacity`.

The commands are `plan.py` (offline rendering and what `pulumi up` would build), `upgrade.py`
(what the next `pulumi up` does to a running stack), `preflight.py` with `aws_checks/` (will AWS
let the stack come up), `verify.py` with `endpoint_checks/` (the deployed endpoint against the
serving guides), and `scaling_sim.py` (`make scaling`). `offline/` is the engine they render
with, `sweep/` cleans up after an interrupted destroy, `capacity/` finds and follows GPU
capacity, `simulation/` is the scaling model, `charts/` and `image/` hold the pinned charts and
image as data. Shared: `report.py` (rows and exit codes), `awsclients.py`, `registry.py`.
`mutation.py` runs `make mutation`; `architecture.py` draws the import graph of the docs.
May import `components`; nothing in `components` imports `ops`.
"""
