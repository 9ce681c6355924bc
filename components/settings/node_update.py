"""How a Capacity Block GPU node group takes updates: `gpuNodes.capacityBlockUpdate`.

EKS requires a managed node group with Capacity Blocks to be at desired size 0 while it is
upgraded (EKS user guide, "Create a managed node group with Capacity Blocks for ML"). The
AWS provider applies a version or launch-template change before a scaling change of the same
`pulumi up`, so scaling to 0 and upgrading must be two runs:

- `hold` (default): the node group runs at gpuNodes.desiredSize; Kubernetes version and launch
  template changes of the GPU node group are held back (Pulumi ignoreChanges), so no upgrade
  starts while Capacity Block nodes run. `make plan` says so.
- `scaleToZero`: the node group goes to 0 nodes; changes are still held.
- `apply`: the node group stays at 0 nodes and takes the held changes. Use it only after a
  `pulumi up` with `scaleToZero`; then return to `hold` to bring the nodes back.
"""

from __future__ import annotations

from typing import Literal

CapacityBlockUpdate = Literal["hold", "scaleToZero", "apply"]
CAPACITY_BLOCK_UPDATES: tuple[CapacityBlockUpdate, ...] = ("hold", "scaleToZero", "apply")
