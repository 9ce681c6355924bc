"""The Pod Security Standards (baseline and restricted, as of Kubernetes v1.34) as pure functions,
for tests/test_pod_security_admission.py: which rules a pod breaks at each level.

Source: kubernetes.io/docs/concepts/security/pod-security-standards (the policy tables), checked
against staging/src/k8s.io/pod-security-admission/policy/*.go of Kubernetes. A pod is the
plain dict `pod()` makes, from a rendered pod template or from a chart record's `pod`.
"""

from __future__ import annotations

from typing import Any

from components.kubernetes import pod_security_admission as psa
from components.kubernetes.admission_policies import BASELINE_CAPABILITIES

SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    """A rendered pod spec in the chart record's shape (ops/charts/record.py `_pod`)."""
    volumes = []
    for v in spec.get("volumes") or []:
        kind = next(k for k in sorted(v) if k != "name")
        volumes.append({"name": v["name"], "type": kind, **({"path": v[kind]["path"]} if kind == "hostPath" else {})})
    containers = [
        {
            "name": c["name"],
            "securityContext": c.get("securityContext") or {},
            "hostPorts": [p["hostPort"] for p in c.get("ports") or [] if p.get("hostPort")],
        }
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    ]
    security = {k: spec[k] for k in ("hostNetwork", "hostPID", "hostIPC") if k in spec}
    security |= {"securityContext": spec.get("securityContext") or {}, "volumes": volumes}
    return {"security": security, "containers": containers}


def baseline_violations(p: dict[str, Any]) -> list[str]:
    sec, found = p["security"], []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if sec.get(host):
            found.append(host)
    found += [f"hostPath volume {v['name']} ({v['path']})" for v in sec["volumes"] if v["type"] == "hostPath"]
    pod_ctx = sec["securityContext"]
    contexts = [("pod", pod_ctx)] + [(c["name"], c["securityContext"]) for c in p["containers"]]
    for name, ctx in contexts:
        if ctx.get("privileged"):
            found.append(f"{name}: privileged")
        added = set((ctx.get("capabilities") or {}).get("add") or []) - set(BASELINE_CAPABILITIES)
        if added:
            found.append(f"{name}: adds capabilities {sorted(added)}")
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"{name}: seccomp Unconfined")
        if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
            found.append(f"{name}: AppArmor Unconfined")
        if ctx.get("procMount") not in (None, "Default"):
            found.append(f"{name}: procMount {ctx['procMount']}")
        se = ctx.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            found.append(f"{name}: SELinux options {se}")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{name}: Windows host process")
    unsafe = {s["name"] for s in pod_ctx.get("sysctls") or []} - SAFE_SYSCTLS
    if unsafe:
        found.append(f"unsafe sysctls {sorted(unsafe)}")
    found += [f"{c['name']}: host ports {c['hostPorts']}" for c in p["containers"] if c["hostPorts"]]
    return found


def restricted_violations(p: dict[str, Any]) -> list[str]:
    found = baseline_violations(p)
    sec = p["security"]
    pod_ctx = sec["securityContext"]
    found += [f"volume {v['name']} of type {v['type']}" for v in sec["volumes"] if v["type"] not in RESTRICTED_VOLUMES]
    for c in p["containers"]:
        ctx, name = c["securityContext"], c["name"]
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            found.append(f"{name}: runs as UID 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp profile {seccomp}")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: does not drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds {sorted(caps['add'])}")
    return found


def violations(p: dict[str, Any], level: str) -> list[str]:
    return {
        psa.PRIVILEGED: lambda _: [],
        psa.BASELINE: baseline_violations,
        psa.RESTRICTED: restricted_violations,
    }[level](p)


def strictest(p: dict[str, Any]) -> str:
    """The strictest level that admits the pod."""
    return [level for level in psa.LEVELS if not violations(p, level)][-1]
