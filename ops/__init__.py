"""Commands around the Pulumi program: `python -m ops plan | preflight | verify | sweep | capacity`.

The commands are `plan.py` (offline rendering and what `pulumi up` would build), `preflight.py`
with `eks_versions.py` (will AWS let the stack come up), `verify.py` with `chat.py` and
`metrics_check.py` (the deployed endpoint against the serving guides), and `scaling_sim.py`
(`make scaling`); `offline/` is the engine they render with, `sweep/` cleans up after an
interrupted destroy, `capacity/` finds and follows GPU capacity, `simulation/` is the scaling
model. Shared: `report.py` (rows and exit codes), `awsclients.py`, `registry.py`. `mutation.py`
runs `make mutation`. May import `components`; nothing in `components` imports `ops`.
"""
