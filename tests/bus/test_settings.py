"""The bus's settings stand alone: the library reads them without the layers above."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bus.settings import BusSettings


def test_importing_the_bus_settings_imports_no_layer_above():
    """`bus.settings` loads without importing `coordinator` or `services` (imports point down)."""
    code = (
        "import sys, bus.settings\n"
        "above = sorted(m for m in sys.modules if m.split('.')[0] in ('coordinator', 'services'))\n"
        "print(','.join(above))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_bus_reads_its_variables_and_ignores_the_other_layers(monkeypatch: pytest.MonkeyPatch):
    """MESH_NATS_URL reaches BusSettings; another layer's variable, even a bad one, is not its business."""
    monkeypatch.setenv("MESH_NATS_URL", "nats://a:4222,nats://b:4222")
    monkeypatch.setenv("MESH_POLICY", "mostly")
    monkeypatch.setenv("MESH_LLM_CHAIN", "nonsense>")
    settings = BusSettings()
    assert settings.nats_servers == ["nats://a:4222", "nats://b:4222"]
    assert not hasattr(settings, "policy") and not hasattr(settings, "llm_chain")
