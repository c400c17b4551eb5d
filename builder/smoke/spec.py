"""What the smoke runner is asked to prove, from the catalogue and the lock: a pure function.

The spec is the runner's only input (runner.py's docstring gives its format): the versions the lock
installs, the modules the stack's recipes import, the device profile of the target (compute
capability, memory, bandwidth per power mode), the power mode the stack requires, and the stack's
smoke checks with their thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from builder.catalogue.models import Device, Stack
from builder.errors import UsageError
from builder.lock.model import Lock, read_toml
from builder.plan.stages import Plan

RUNNER = Path(__file__).with_name("runner.py")  # builder's copy, rendered into every image
IMAGE_RUNNER = "/opt/builder/smoke/runner.py"  # where `build render` puts the runner in every image
IMAGE_SPEC = "/opt/builder/smoke/spec.json"  # and the spec it was rendered with


def locked_versions(lock: Lock) -> dict[str, str]:
    """Distribution name -> version of everything the lock installs (pylock and source builds)."""
    versions = {
        str(canonicalize_name(package["name"])): str(package["version"])
        for package in read_toml(lock.pylock).get("packages", [])
        if package.get("version") is not None
    }
    for decision in lock.image.packages:
        if decision.version is not None:
            versions.setdefault(str(canonicalize_name(decision.package)), decision.version)
    return dict(sorted(versions.items()))


def device_profile(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "kind": device.kind,
        "compute_capability": device.gpu.compute_capability,
        "memory_gb": device.memory.size_gb,
        "unified_memory": device.memory.unified,
        "power_modes": [
            {"name": mode.name, "memory_bandwidth_gbps": mode.memory_bandwidth_gbps} for mode in device.power_modes
        ],
        "default_power_mode": device.default_power_mode,
    }


def required_power_mode(stack: Stack, device: Device, override: str | None) -> str | None:
    """The mode the run must see: --power-mode, else the stack's; one the device does not have is refused."""
    mode = override or stack.runtime.power_mode
    names = [m.name for m in device.power_modes]
    if mode is not None and mode not in names:
        where = "--power-mode" if override else f"stack {stack.name} runtime.power_mode"
        raise UsageError(f"{where} '{mode}' is not a power mode of {device.id} (its modes: {', '.join(names)})")
    return mode


def check_models(stack: Stack, models: Mapping[str, str]) -> None:
    """A --model NAME must be named by one of the stack's smoke checks, or it would silently do nothing."""
    texts = [check.model or "" for check in stack.smoke]
    for name in models:
        if not any(name.lower() in text.lower() for text in texts):
            named = "; ".join(f"{c.name}: {c.model}" for c in stack.smoke if c.model) or "none names a model"
            raise UsageError(f"--model {name}: no smoke check of {stack.name} names it ({named})")


def smoke_spec(
    stack: Stack,
    plan: Plan,
    lock: Lock,
    *,
    power_mode: str | None = None,
    models: Mapping[str, str] | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """The runner's spec for `stack` on the plan's target; `models` maps NAME to where the runner
    finds the checkpoint (a path on the machine or in the container)."""
    models = dict(models or {})
    check_models(stack, models)
    spec: dict[str, Any] = {
        "stack": stack.name,
        "target": plan.target,
        "image": image,
        "lock_checksum": lock.checksum,
        "versions": locked_versions(lock),
        "imports": plan.imports,
        "device": device_profile(plan.device),
        "power_mode": required_power_mode(stack, plan.device, power_mode),
        "checks": [
            {
                key: value
                for key, value in {
                    "name": check.name,
                    "metric": check.metric,
                    "min": check.min,
                    "max": check.max,
                    "model": check.model,
                    "roofline_min": check.roofline_min,
                }.items()
                if value is not None
            }
            for check in stack.smoke
        ],
        "models": models,
    }
    return spec
