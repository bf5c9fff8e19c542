// A Node.js client of slawatch.v1.TicketService, built only from the project's .proto file with
// @grpc/grpc-js and @grpc/proto-loader: proof that the contract works outside Python.
//
// Usage: node client.js <target> <ticket_id>   (env SLAWATCH_TOKEN: bearer token, optional)
// Prints one JSON object per line on stdout; the Python test drives it through these steps:
//   ingested -> ticket -> watching   (the test now makes the ticket breach)
//   -> alert (live) -> replayed (the same alert again, from a replay with after_alert_id).
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const [target, ticketId] = process.argv.slice(2);

function emit(event, body) {
  process.stdout.write(JSON.stringify({ event, ...body }) + "\n");
}

function fail(step, err) {
  emit("error", { step, code: err.code, details: err.details || String(err) });
  process.exit(1);
}

const definition = protoLoader.loadSync("slawatch/v1/ticket_service.proto", {
  includeDirs: [path.join(ROOT, "proto")],
  keepCase: true, // field names as in the .proto: ticket_id, after_alert_id
  longs: String, // int64 alert ids stay exact
  enums: String,
  defaults: true,
  oneofs: true,
});
const { TicketService } = grpc.loadPackageDefinition(definition).slawatch.v1;
const client = new TicketService(target, grpc.credentials.createInsecure());

function metadata() {
  const md = new grpc.Metadata();
  if (process.env.SLAWATCH_TOKEN) md.set("authorization", `Bearer ${process.env.SLAWATCH_TOKEN}`);
  return md;
}

function timestamp(date) {
  const ms = date.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

function unary(method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 30000);
    client[method](request, metadata(), { deadline }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

// The first alert of a WatchAlerts stream, and the resume point the server announced.
function firstAlert(request, onStarted) {
  return new Promise((resolve, reject) => {
    const call = client.WatchAlerts(request, metadata());
    call.on("metadata", (md) => onStarted && onStarted(md.get("slawatch-resume-after")[0]));
    call.on("data", (response) => {
      resolve(response.alert);
      call.cancel();
    });
    call.on("error", (err) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
}

async function main() {
  const created = new Date(Date.now() - 20 * 60 * 1000); // past the 15-minute response target
  const ingest = await unary("IngestTickets", {
    events: [
      {
        ticket_id: ticketId,
        priority: "high",
        customer_tier: "gold",
        status: "TICKET_STATUS_OPEN",
        created_at: timestamp(created),
        updated_at: timestamp(created),
      },
    ],
  }).catch((err) => fail("ingest", err));
  emit("ingested", { outcomes: ingest.results.map((r) => r.outcome) });

  const got = await unary("GetTicket", { ticket_id: ticketId }).catch((err) => fail("get", err));
  emit("ticket", {
    ticket_id: got.ticket.ticket_id,
    status: got.ticket.status,
    response_target_seconds: got.ticket.response.target.seconds,
    sla_state: got.ticket.sla_state,
  });

  const live = await firstAlert({}, (resumeAfter) =>
    emit("watching", { resume_after: resumeAfter }),
  ).catch((err) => fail("watch", err));
  emit("alert", { alert: live });

  const replayed = await firstAlert({
    after_alert_id: String(BigInt(live.alert_id) - 1n),
  }).catch((err) => fail("replay", err));
  emit("replayed", { alert: replayed });
  client.close();
}

main();
