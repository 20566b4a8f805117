"""The layers import downwards only: contracts <- bus (the library) <- coordinator <- services,
with the operator tooling (bus/ops) above them all and imported by none of them."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import bus
import contracts
import coordinator
import services

# (the package's modules, what importing them must never load)
LAYERS = [
    (contracts, ("bus", "coordinator", "services")),
    (bus, ("coordinator", "services", "bus.ops")),
    (coordinator, ("services", "bus.ops")),
    (services, ("bus.ops",)),
]


def modules_of(package) -> list[str]:
    found = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.startswith("bus.ops") or info.name.endswith("__main__"):
            continue
        found.append(info.name)
    return found


@pytest.mark.parametrize(("package", "forbidden"), LAYERS, ids=[p.__name__ for p, _ in LAYERS])
def test_a_layer_never_imports_the_layers_above_it(package, forbidden):
    """Importing every module of a layer, in a fresh interpreter, loads nothing from above it."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules_of(package)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(result.stdout)
    above = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert above == [], f"{package.__name__} loads {above}"
