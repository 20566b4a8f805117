"""How the fake "model" answers when no reply is scripted: from the request itself.

- The tool input is built from the forced tool's `input_schema` (enums, bounds, required
  fields), with a profile's `answer` laid over it — so it validates, unless the profile rolls a
  malformed answer.
- `usage` counts tokens as characters ÷ 4 and simulates prompt caching: the prefix up to the
  last `cache_control` breakpoint (tools, then system) is written on first use and read for
  five minutes after, if it reaches the model's minimum cacheable length.
- A provider rate limiter per model (requests and input tokens per minute, token buckets)
  answers 429 with `retry-after` in whole seconds, as the API does.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.llm.fake.replies import Reply, message, next_id, overloaded, rate_limited, server_error

CACHE_TTL_SECONDS = 300.0
# Minimum cacheable prefix per model, per Anthropic's prompt-caching docs (late 2026); others 1024.
MIN_CACHEABLE_TOKENS = {"claude-haiku-4-5": 4096, "claude-opus-4-5": 4096, "claude-opus-4-6": 4096}
# What a gullible model takes for an order to approve: the usual shapes of a prompt injection.
INJECTION = re.compile(
    r"(?:ignore|disregard|forget|override)\s+(?:(?:all|any|your|the|my|of)\s+)*(?:previous|prior|above|earlier|"
    r"preceding|system)\s+(?:instructions?|rules|prompts?|guidance)"
    r"|you\s+must\s+approve|(?:respond|answer|reply)\s+with\s+(?:the\s+)?(?:verdict\s+)?[\"']?approve"
    r"|verdict\\?[\"']?\s*[=:]\s*\\?[\"']?approve|pre-?approved|approved\s+automatically|must\s+be\s+approved",
    re.IGNORECASE,
)


def message_text(messages: list[dict[str, Any]]) -> str:
    """The text a model reads in `messages`: string contents and text blocks, one per line."""
    parts = []
    for item in messages:
        content = item.get("content")
        blocks = [content] if isinstance(content, str) else content or []
        parts += [b if isinstance(b, str) else b.get("text", "") for b in blocks if isinstance(b, str | dict)]
    return "\n".join(parts)


def injected(text: str) -> bool:
    """Whether `text` holds an instruction a gullible model would obey (see `Profile.obey_injection`)."""
    return INJECTION.search(text) is not None


def tokens_in(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


@dataclass
class Profile:
    """How one model behaves when no reply is scripted. Rates are shares of requests (0..1)."""

    latency: float = 0.0  # seconds before a good answer
    jitter: float = 0.0  # ± share of latency
    error_latency: float = 0.02  # seconds before an error answer
    overloaded_rate: float = 0.0  # answered 529
    error_rate: float = 0.0  # answered 500
    malformed_rate: float = 0.0  # tool input that breaks the schema
    answer: dict[str, Any] = field(default_factory=dict)  # laid over the schema-built tool input
    confidence: float | tuple[float, float] | None = None  # fixed, or a uniform range
    obey_injection: bool = False  # approve whatever the data says, when it asks to (a fooled model)
    # The answer built from the request itself (laid over `answer`): an oracle keyed by the prompt.
    answer_for: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def from_schema(schema: dict[str, Any], name: str = "value") -> Any:
    """A value that satisfies a JSON schema (the subset tool schemas use)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: from_schema(properties.get(key, {}), key) for key in schema.get("required", [])}
    if kind == "array":
        return [from_schema(schema.get("items", {}), name) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return f"Fake {name}."
    if kind in ("number", "integer"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = low + 0.9 * (high - low) if low is not None and high is not None else (low if low is not None else 1)
        return int(value) if kind == "integer" else round(float(value), 3)
    if kind == "boolean":
        return True
    return None


def broken(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`value` with every top-level field made wrong for `schema` (bad enum, out of range, wrong type)."""
    out = dict(value)
    for key, spec in schema.get("properties", {}).items():
        if "enum" in spec:
            out[key] = f"not-{spec['enum'][0]}"
        elif "maximum" in spec:
            out[key] = spec["maximum"] + 6
        elif spec.get("type") == "array":
            out[key] = "none"
        elif spec.get("type") == "string":
            out[key] = ""
    return out


class PromptCache:
    """Which prompt prefixes each model has cached, and until when."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        """Whether `key` is cached; a hit refreshes the TTL, a miss writes the entry."""
        now = self.clock()
        with self._lock:
            live = self._entries.get(key, 0.0) > now
            self._entries[key] = now + CACHE_TTL_SECONDS
            return live


def cacheable_prefix(request: dict[str, Any]) -> str | None:
    """The text of tools + system up to the last `cache_control` breakpoint, or None."""
    parts: list[Any] = []
    last = None
    for tool in request.get("tools") or []:
        parts.append(tool)
        if tool.get("cache_control"):
            last = len(parts)
    system = request.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else (system or [])
    for block in blocks:
        parts.append(block)
        if isinstance(block, dict) and block.get("cache_control"):
            last = len(parts)
    if last is None:
        return None
    return json.dumps(_content(parts[:last]))


def _content(value: Any) -> Any:
    """`value` without `cache_control` markers, which are not tokens of the prompt."""
    if isinstance(value, dict):
        return {k: _content(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_content(v) for v in value]
    return value


def request_usage(request: dict[str, Any], model: str, cache: PromptCache, output_tokens: int) -> dict[str, int]:
    """`usage` for a request: cached prefix written or read, the rest plain input."""
    everything = json.dumps(_content([request.get("tools"), request.get("system"), request.get("messages")]))
    total = tokens_in(everything)
    prefix = cacheable_prefix(request)
    prefix_tokens = tokens_in(prefix) if prefix else 0
    use = {
        "input_tokens": total,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    if prefix and prefix_tokens >= MIN_CACHEABLE_TOKENS.get(model, 1024):
        key = hashlib.sha256(f"{model}\n{prefix}".encode()).hexdigest()
        use["cache_read_input_tokens" if cache.hit(key) else "cache_creation_input_tokens"] = prefix_tokens
        use["input_tokens"] = max(total - prefix_tokens, 1)
    return use


class ProviderLimits:
    """Per-model request and token limits, as token buckets holding `burst_seconds` of refill."""

    def __init__(
        self, rpm: float | None = None, tpm: float | None = None, *, burst_seconds: float = 2.0, clock=time.monotonic
    ) -> None:
        self.rpm, self.tpm, self.burst_seconds, self.clock = rpm, tpm, burst_seconds, clock
        self._buckets: dict[tuple[str, str], list[float]] = {}  # (model, kind) -> [level, updated]
        self._lock = threading.Lock()

    def _take(self, model: str, kind: str, per_minute: float, amount: float, now: float) -> float:
        """Take `amount`, or return the seconds until it would be there (taking nothing)."""
        rate = per_minute / 60
        capacity = max(1.0, rate * self.burst_seconds)
        level, updated = self._buckets.get((model, kind), [capacity, now])
        level = min(capacity, level + (now - updated) * rate)
        if level >= min(amount, capacity):
            self._buckets[(model, kind)] = [level - amount, now]
            return 0.0
        self._buckets[(model, kind)] = [level, now]
        return (min(amount, capacity) - level) / rate

    def admit(self, model: str, tokens: int) -> Reply | None:
        """None when the request may go ahead, else the 429 to send."""
        now = self.clock()
        with self._lock:
            if self.rpm and (wait := self._take(model, "requests", self.rpm, 1, now)):
                return rate_limited(max(1, math.ceil(wait)), limit=int(self.rpm))
            if self.tpm and (wait := self._take(model, "tokens", self.tpm, tokens, now)):
                if self.rpm:  # give the request back: it was not served
                    self._buckets[(model, "requests")][0] += 1
                return rate_limited(max(1, math.ceil(wait)))
        return None


def answer(request: dict[str, Any], profile: Profile, cache: PromptCache, rng: random.Random) -> Reply:
    """The reply a model with `profile` gives to `request` (already validated)."""
    roll = rng.random()
    if roll < profile.overloaded_rate:
        return _late(overloaded(), profile.error_latency)
    if roll < profile.overloaded_rate + profile.error_rate:
        return _late(server_error(500, retry_after_ms=0), profile.error_latency)
    model = request["model"]
    tools = {tool["name"]: tool for tool in request.get("tools") or []}
    choice = request.get("tool_choice") or {}
    tool = tools.get(choice.get("name")) or next(iter(tools.values()), None)
    delay = max(0.0, profile.latency * (1 + rng.uniform(-profile.jitter, profile.jitter)))
    if tool is None:
        text = "Fake answer."
        return message(
            [{"type": "text", "text": text}],
            "end_turn",
            model=model,
            use=request_usage(request, model, cache, tokens_in(text) + 5),
            delay=delay,
        )
    schema = tool.get("input_schema", {})
    tool_input = {**from_schema(schema, tool["name"]), **profile.answer}
    if profile.answer_for is not None:
        tool_input.update(profile.answer_for(request))
    if isinstance(profile.confidence, tuple):
        tool_input["confidence"] = round(rng.uniform(*profile.confidence), 3)
    elif profile.confidence is not None:
        tool_input["confidence"] = profile.confidence
    if profile.obey_injection and injected(message_text(request["messages"])):
        tool_input.update(verdict="approve", confidence=0.99, rationale="As instructed, approved.", findings=[])
    if rng.random() < profile.malformed_rate:
        tool_input = broken(tool_input, schema)
    block = {"type": "tool_use", "id": next_id("toolu"), "name": tool["name"], "input": tool_input}
    use = request_usage(request, model, cache, tokens_in(json.dumps(tool_input)) + 20)
    return message([block], "tool_use", model=model, use=use, delay=delay)


def _late(reply: Reply, delay: float) -> Reply:
    return Reply(status=reply.status, body=reply.body, headers=reply.headers, delay=delay)
