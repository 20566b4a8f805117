"""Each layer owns its settings, all read from the same MESH_* variables; MeshSettings is all of them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bus.ops.settings import MeshSettings, TraceSettings
from bus.settings import BusSettings
from coordinator.settings import CoordinatorSettings
from services.digest.settings import DigestSettings
from services.gateway.settings import GatewaySettings
from services.llm.settings import LLMSettings
from services.review.settings import ReviewerSettings
from services.steward.settings import StewardSettings
from services.watch.settings import WatchSettings

LAYERS = (
    BusSettings,
    CoordinatorSettings,
    LLMSettings,
    ReviewerSettings,
    GatewaySettings,
    DigestSettings,
    WatchSettings,
    StewardSettings,
)


def test_each_variable_reaches_the_layer_that_reads_it(monkeypatch: pytest.MonkeyPatch):
    """MESH_NATS_URL reaches every layer; MESH_POLICY the coordinator's; MESH_LLM_RPM and the SDK's
    ANTHROPIC_API_KEY the LLM layer's; MESH_DEADLINE_SECONDS the coordinator's and a reviewer's."""
    env = {
        "MESH_NATS_URL": "nats://n1:4222",
        "MESH_POLICY": "quorum:2",
        "MESH_FALLBACKS": "compliance=block",
        "MESH_LLM_RPM": "120",
        "ANTHROPIC_API_KEY": "sk-test",
        "MESH_REVIEW_BUDGET_SECONDS": "7",
        "MESH_DEADLINE_SECONDS": "45",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert all(layer().nats_url == "nats://n1:4222" for layer in (*LAYERS, MeshSettings))
    coordinator = CoordinatorSettings()
    assert (coordinator.policy, coordinator.deadline_seconds) == ("quorum:2", 45)
    assert coordinator.fallback_for("compliance") == "block" and coordinator.fallback_for("security") == "block"
    llm = LLMSettings()
    assert llm.llm_rpm == 120 and llm.anthropic_api_key.get_secret_value() == "sk-test"
    reviewer = ReviewerSettings()
    assert (reviewer.review_budget_seconds, reviewer.deadline_seconds, reviewer.llm_rpm) == (7, 45, 120)
    mesh = MeshSettings()
    assert (mesh.policy, mesh.llm_rpm, mesh.review_budget_seconds, mesh.deadline_seconds) == ("quorum:2", 120, 7, 45)
    assert not hasattr(coordinator, "llm_rpm") and not hasattr(llm, "policy")


def test_mesh_settings_is_every_layers_settings():
    """Whatever takes one layer's settings accepts the operator tools' MeshSettings, which adds
    only the tools' own (TraceSettings: the trace store, Jaeger)."""
    assert all(issubclass(MeshSettings, layer) for layer in (*LAYERS, TraceSettings))
    fields = set().union(*(layer.model_fields for layer in (*LAYERS, TraceSettings)))
    assert set(MeshSettings.model_fields) == fields
    assert not set(TraceSettings.model_fields) & set().union(*(layer.model_fields for layer in LAYERS))


def test_the_trace_settings_read_mesh_variables_and_the_standard_otlp_endpoint(monkeypatch: pytest.MonkeyPatch):
    """MESH_TRACES_* and MESH_JAEGER_URL as usual; the user's endpoint from the OpenTelemetry variable."""
    monkeypatch.setenv("MESH_TRACES_MAX_AGE_SECONDS", "3600")
    monkeypatch.setenv("MESH_JAEGER_URL", "http://jaeger:16686")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    mesh = MeshSettings()
    assert (mesh.traces_max_age_seconds, mesh.traces_max_bytes) == (3600, 256 * 2**20)
    assert (mesh.jaeger_url, mesh.otlp_endpoint) == ("http://jaeger:16686", "http://collector:4318")


def test_the_round_deadline_is_one_setting_in_both_layers_that_read_it():
    """MESH_DEADLINE_SECONDS is declared by the coordinator and by a reviewer, with one default and bound."""
    ours = CoordinatorSettings.model_fields["deadline_seconds"]
    theirs = ReviewerSettings.model_fields["deadline_seconds"]
    assert (ours.annotation, ours.default, ours.metadata) == (theirs.annotation, theirs.default, theirs.metadata)


@pytest.mark.parametrize(
    ("layer", "variable", "value", "message"),
    [
        (CoordinatorSettings, "MESH_POLICY", "mostly", "policy"),
        (CoordinatorSettings, "MESH_FALLBACKS", "security=shrug", "fallback for 'security' is 'shrug'"),
        (LLMSettings, "MESH_LLM_CHAIN", "claude-haiku-4-5", "llm_chain"),
    ],
)
def test_a_bad_value_fails_in_its_layer_and_in_mesh_settings(monkeypatch, layer, variable, value, message):
    """A layer checks its own grammar (the policy's, the chains'); MeshSettings checks them all."""
    monkeypatch.setenv(variable, value)
    for settings_type in (layer, MeshSettings):
        with pytest.raises(ValidationError, match=message):
            settings_type()


def test_as_env_passes_explicit_settings_on_but_never_the_anthropic_ones():
    """Child processes get MESH_* for what was set; the key and base URL stay in the environment only."""
    settings = MeshSettings(anthropic_api_key="sk-secret", anthropic_base_url="http://fake", model="m", policy="veto")
    env = settings.as_env()
    assert env["MESH_MODEL"] == "m" and env["MESH_POLICY"] == "veto"
    assert not any("ANTHROPIC" in name for name in env) and "sk-secret" not in env.values()
