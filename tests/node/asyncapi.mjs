// Validate an AsyncAPI document with the official parser (@asyncapi/parser).
// Usage: node asyncapi.mjs <file>; prints {"errors": [...], "warnings": [...], "summary": {...}} as JSON.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const text = await readFile(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const describe = (d) => ({ code: d.code, message: d.message, path: d.path.join("/") });
const summary = document && {
  version: document.version(),
  channels: document.channels().all().map((c) => ({ id: c.id(), address: c.address() })),
  operations: document.operations().all().map((o) => ({
    id: o.id(),
    action: o.action(),
    channels: o.channels().all().map((c) => c.id()),
    messages: o.messages().all().map((m) => m.id()),
  })),
  messages: document.allMessages().all().map((m) => ({
    id: m.id(),
    headers: m.hasHeaders() ? Object.keys(m.headers().properties()) : [],
    payload: m.hasPayload() ? m.payload().title() ?? null : null,
  })),
};
console.log(
  JSON.stringify({
    errors: diagnostics.filter((d) => d.severity === 0).map(describe),
    warnings: diagnostics.filter((d) => d.severity === 1).map(describe),
    summary,
  }),
);
