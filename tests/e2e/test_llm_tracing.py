"""Model calls in a real service's trace: the security reviewer runs as a process, asks a fake
Anthropic API, and exports its spans over OTLP to an in-process receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bus.ops.launcher import start_mesh
from bus.ops.otlp_receiver import OtlpReceiver
from contracts.reviews import TokenUsage
from services.llm.pricing import price_table
from tests.e2e.support import eventually, sample
from tests.fakes.anthropic_server import FakeAnthropic

SONNET = "claude-sonnet-4-6"


def flatten(exports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every span received, with its service's name under `service` and attributes as a dict."""
    spans = []
    for export in list(exports):
        for resource in export.get("resourceSpans", []):
            service = attributes_of(resource.get("resource", {})).get("service.name")
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    spans.append({**span, "service": service, "attrs": attributes_of(span)})
    return spans


def attributes_of(item: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for attribute in item.get("attributes", []):
        value = attribute["value"]
        if "arrayValue" in value:
            found[attribute["key"]] = [next(iter(v.values())) for v in value["arrayValue"].get("values", [])]
        else:
            (kind, raw), *_ = value.items()
            found[attribute["key"]] = int(raw) if kind == "intValue" else raw
    return found


def ancestors(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["spanId"]: s for s in spans if s["traceId"] == span["traceId"]}
    chain, parent = [], span.get("parentSpanId")
    while parent in by_id:
        chain.append(by_id[parent])
        parent = by_id[parent].get("parentSpanId")
    return chain


@pytest.fixture
def api():
    with FakeAnthropic(seed=3) as server:
        yield server


async def test_the_model_call_is_a_descendant_of_the_reviewers_process_span(
    settings, service_identities, tmp_path, api, client
):
    """One proposal: in the security process's trace, `chat claude-sonnet-4-6` sits under
    `llm.chain` under the `process` span of the proposal, beside `review.rules`; the call's
    tokens and cost are on it, and no SDK span duplicates it."""
    exports: list[dict[str, Any]] = []
    with OtlpReceiver(exports.append) as receiver:
        env = {
            "MESH_ANTHROPIC_API_KEY": "sk-test",
            "MESH_ANTHROPIC_BASE_URL": api.url,
            "MESH_LLM_CHAIN": f"{SONNET},offline",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        mesh = await asyncio.to_thread(
            start_mesh,
            settings,
            names=["security"],
            home=tmp_path / "mesh",
            embedded=False,
            env=env,
            identities=service_identities(settings, ["security"]),
        )
        try:
            await client.propose(sample("release_secret", release_id="traced-llm-1"))

            async def traced() -> list[dict[str, Any]] | None:
                spans = flatten(exports)
                chats = [s for s in spans if s["name"] == f"chat {SONNET}"]
                # the process span ends after the review is published, so wait for it too
                if chats and any(s["name"] == "process" or s["name"].startswith("process ") for s in spans):
                    return spans
                return None

            spans = await eventually(traced, timeout=30)
        finally:
            await asyncio.to_thread(mesh.stop)
    assert spans, f"no model call and process span exported: {[s['name'] for s in flatten(exports)]}"

    (chat,) = [s for s in spans if s["name"] == f"chat {SONNET}"]
    above = ancestors(chat, spans)
    names = [s["name"] for s in above]
    assert names[0] == "llm.chain", names
    process = next((s for s in above if s["name"].startswith("process ")), None)
    assert process is not None, f"no process span above the model call: {names}"
    assert process["service"] == chat["service"] == "security"
    (rules,) = [s for s in spans if s["name"] == "review.rules" and s["traceId"] == chat["traceId"]]
    assert process in ancestors(rules, spans)
    assert not [s for s in spans if s["name"].startswith("anthropic.")]  # no SDK duplicate

    attrs = chat["attrs"]
    assert chat["kind"] == "SPAN_KIND_CLIENT"
    assert (attrs["gen_ai.provider.name"], attrs["gen_ai.request.model"], attrs["mesh.agent"]) == (
        "anthropic",
        SONNET,
        "security",
    )
    cached = attrs["gen_ai.usage.cache_read.input_tokens"] + attrs["gen_ai.usage.cache_creation.input_tokens"]
    tokens = TokenUsage(
        input_tokens=attrs["gen_ai.usage.input_tokens"] - cached,
        output_tokens=attrs["gen_ai.usage.output_tokens"],
        cache_read_input_tokens=attrs["gen_ai.usage.cache_read.input_tokens"],
        cache_creation_input_tokens=attrs["gen_ai.usage.cache_creation.input_tokens"],
    )
    assert tokens.input_tokens > 0 and tokens.output_tokens > 0
    assert attrs["mesh.llm.cost_usd"] == pytest.approx(price_table().price(SONNET).cost(tokens))
