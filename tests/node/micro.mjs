// What the official NATS JavaScript client's service API sees of a service (ADR-32 discovery),
// beside what it sees of a service written with that API itself (the reference shapes).
// Usage: node micro.mjs <nats-url> <service-name>; prints one JSON document.
import { connect } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";

const [url, name] = process.argv.slice(2);
const nc = await connect({ servers: url });
const svcm = new Svcm(nc);
const client = svcm.client();

async function all(iterator) {
  const found = [];
  for await (const answer of await iterator) found.push(answer);
  return found;
}

const reference = await svcm.add({ name: `reference-${process.pid}`, version: "1.0.0", description: "reference" });
reference.addEndpoint("echo", {
  subject: `reference.${process.pid}.echo`,
  metadata: { kind: "reference" },
  handler: (err, msg) => (msg.data.length ? msg.respond(msg.data) : msg.respondError(400, "empty")),
});
await nc.request(`reference.${process.pid}.echo`, "hello");
await nc.request(`reference.${process.pid}.echo`, "");

const seen = {
  ping: await all(client.ping(name)),
  info: await all(client.info(name)),
  stats: await all(client.stats(name)),
  reference: {
    info: (await all(client.info(reference.info().name)))[0],
    stats: (await all(client.stats(reference.info().name)))[0],
  },
};
await reference.stop();
await nc.close();
console.log(JSON.stringify(seen));
