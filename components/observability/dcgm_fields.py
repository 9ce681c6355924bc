"""The GPU metrics the pinned dcgm-exporter exports here, as data (ground floor: imports nothing).

The exporter's chart takes a complete collector CSV (`customMetrics`), so this list is exactly
what the p5 nodes export: the dashboards and alerts may use these names and no other DCGM name.

Source: NVIDIA/dcgm-exporter tag 4.5.3-4.8.2, `etc/default-counters.csv` and the chart's
`customMetrics` example in `deployment/values.yaml` (chart 4.8.2), which list every field
below with this type and unit. Units are those of 4.8.x: utilisation in percent (0-100),
framebuffer in MiB, violation counters in nanoseconds. dcgm-exporter 4.9 renames these
fields to the DCGM 4.7 names and changes units (utilisation a 0-1 ratio, framebuffer in
bytes): bumping the pin means rewriting this table, and the tests then check every panel
and alert against the new names.
"""

from __future__ import annotations

from typing import NamedTuple

SOURCE = "NVIDIA/dcgm-exporter 4.5.3-4.8.2: etc/default-counters.csv, deployment/values.yaml customMetrics"


class Field(NamedTuple):
    name: str
    type: str  # the Prometheus type the exporter declares
    help: str


FIELDS: tuple[Field, ...] = (
    Field("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    Field("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    Field("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    Field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    Field("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    Field("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    Field("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    Field("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    Field("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    Field("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    Field("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    # Off in the default CSV; the throttling alert needs them.
    Field("DCGM_FI_DEV_POWER_VIOLATION", "counter", "Throttling duration due to power constraints (in ns)."),
    Field("DCGM_FI_DEV_THERMAL_VIOLATION", "counter", "Throttling duration due to thermal constraints (in ns)."),
    Field("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    Field("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total number of NVLink bandwidth counters for all lanes."),
    Field("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors"),
    Field("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
    Field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    Field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    Field(
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
    ),
)

NAMES = frozenset(f.name for f in FIELDS)


def collector_csv() -> str:
    """The exporter's collector file: `field, type, help` per line, in the table's order."""
    lines = ["# DCGM FIELD, Prometheus metric type, help message (minimax-vllm components/dcgm_fields.py)"]
    lines += [f"{f.name}, {f.type}, {f.help}" for f in FIELDS]
    return "\n".join(lines) + "\n"
