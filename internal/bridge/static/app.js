// The live page: one WebSocket to /ws/alerts, reconnecting with ?after=<last alert id> so that
// nothing written while it was away is missed; SLA counts from /api/dashboard.
//
// The bridge wants a token: opened as /?token=..., the page keeps it in this tab's
// sessionStorage and removes it from the address bar (so it is not bookmarked, shared or kept in
// history); otherwise it asks for one in a small form when the bridge refuses the connection.
// Browsers cannot put headers on a WebSocket, so the socket carries it as ?token=;
// /api/dashboard gets it as an Authorization header.
"use strict";

const MAX_FEED_ITEMS = 300;
const COUNTS_EVERY_MS = 10000;
const TOKEN_KEY = "slawatch.token";
// Close codes of the bridge (docs/realtime.md).
const CLOSE_TOO_SLOW = 4008;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_TOO_MANY_CLIENTS = 4429;

const page = {
  token: null,
  lastId: null, // the last alert id shown, or the resume point the bridge announced
  attempt: 0,
  ws: null,
  heartbeatSeconds: 15,
  lastMessageAt: 0,
  countsTimer: null,
};

const $ = (id) => document.getElementById(id);

function setConnection(state, detail) {
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = detail ? `${state} (${detail})` : state;
}

function setUpstream(state) {
  const el = $("upstream");
  el.dataset.state = state;
  el.textContent = `server: ${state}`;
}

function setLastId(id) {
  page.lastId = id;
  $("last-alert-id").textContent = id === null ? "–" : String(id);
}

function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  if (url.searchParams.has("token")) {
    const token = url.searchParams.get("token").trim();
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
  page.token = window.sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(why) {
  $("token-error").textContent = why;
  $("token-form").hidden = false;
  $("token-input").focus();
}

function useToken(token) {
  // Perhaps another tenant: nothing shown so far belongs to the new token.
  window.sessionStorage.setItem(TOKEN_KEY, token);
  page.token = token;
  page.attempt = 0;
  setLastId(null);
  $("feed").replaceChildren();
  $("feed-empty").hidden = false;
  $("token-form").hidden = true;
  $("token-error").textContent = "";
  connect();
}

function authHeaders() {
  return page.token ? { Authorization: `Bearer ${page.token}` } : {};
}

function socketUrl() {
  const url = new URL("/ws/alerts", window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  if (page.lastId !== null) url.searchParams.set("after", String(page.lastId));
  if (page.token) url.searchParams.set("token", page.token);
  return url.toString();
}

function connect() {
  if (page.ws) return;
  setConnection(page.attempt === 0 ? "connecting" : "reconnecting");
  const ws = new WebSocket(socketUrl());
  page.ws = ws;
  ws.onopen = () => {
    page.lastMessageAt = Date.now();
  };
  ws.onmessage = (event) => {
    page.lastMessageAt = Date.now();
    handle(JSON.parse(event.data));
  };
  ws.onclose = (event) => {
    if (page.ws !== ws) return;
    page.ws = null;
    if (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_FORBIDDEN) {
      // The same token would be refused again: wait for another one.
      const state = event.code === CLOSE_UNAUTHORIZED ? "unauthorized" : "forbidden";
      setConnection(state);
      askForToken(event.reason || (page.token ? "token refused" : "this bridge needs a token"));
      return;
    }
    const why =
      event.code === CLOSE_TOO_SLOW
        ? "fell behind"
        : event.code === CLOSE_TOO_MANY_CLIENTS
          ? "too many clients for this tenant"
          : `code ${event.code}`;
    setConnection("reconnecting", why);
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  page.attempt += 1;
  const ceiling = Math.min(10000, 250 * 2 ** Math.min(page.attempt, 6));
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  window.setTimeout(connect, delay);
}

function handle(message) {
  switch (message.type) {
    case "hello":
      page.attempt = 0;
      page.heartbeatSeconds = message.heartbeat_seconds || page.heartbeatSeconds;
      if (page.lastId === null && message.resume_after !== null) setLastId(message.resume_after);
      setConnection("live");
      setUpstream(message.upstream);
      refreshCounts();
      break;
    case "alert":
      addAlert(message.alert);
      break;
    case "alert_update":
      updateAlert(message.alert);
      break;
    case "status":
    case "heartbeat":
      setUpstream(message.upstream);
      break;
    default:
      break; // newer bridges may send more types; ignore what we do not know
  }
}

function text(tag, className, value) {
  const el = document.createElement(tag);
  el.className = className;
  el.textContent = value;
  return el;
}

// A metric's name in words, as Slack messages say it: "first response", "next reply".
const METRIC_WORDS = { response: "first response" };
function metricWords(metric) {
  return METRIC_WORDS[metric] || metric.replaceAll("_", " ");
}

// "next reply", or "next reply (cycle 2)" from the second cycle on.
function clockName(metric, cycle) {
  return metricWords(metric) + (cycle > 1 ? ` (cycle ${cycle})` : "");
}

function addAlert(alert) {
  if (page.lastId !== null && alert.alert_id <= page.lastId) return;
  setLastId(alert.alert_id);
  const item = document.createElement("li");
  item.className = `alert fresh kind-${alert.kind} level-${alert.escalation_level}`;
  item.dataset.alertId = String(alert.alert_id);
  item.dataset.ticketId = alert.ticket_id;
  item.append(
    text("span", "what", `${alert.kind} · level ${alert.escalation_level}`),
    text("span", "ticket", alert.ticket_id),
    text("span", "when", new Date(alert.created_at).toLocaleTimeString()),
    text(
      "span",
      "meta",
      `${clockName(alert.metric || alert.clock, alert.cycle || 1)} clock · ` +
        `${alert.priority}/${alert.customer_tier}` +
        (alert.due_at ? ` · due ${new Date(alert.due_at).toLocaleString()}` : "") +
        ` · #${alert.alert_id}`,
    ),
  );
  const ack = document.createElement("button");
  ack.type = "button";
  ack.className = "ack";
  ack.textContent = "Acknowledge";
  ack.addEventListener("click", () => acknowledge(item, alert.alert_id));
  item.append(ack, text("span", "handled", ""));
  showHandled(item, alert);
  const feed = $("feed");
  feed.prepend(item);
  while (feed.children.length > MAX_FEED_ITEMS) feed.lastElementChild.remove();
  $("feed-empty").hidden = true;
  // A new alert usually moves a ticket to another state; refresh soon, not per alert.
  window.clearTimeout(page.countsTimer);
  page.countsTimer = window.setTimeout(refreshCounts, 500);
}

// Who handled an alert, or how often it was repeated unhandled; the button goes once it is.
function showHandled(item, alert) {
  const handled = item.querySelector(".handled");
  const ack = item.querySelector("button.ack");
  if (alert.acknowledged_by) {
    handled.textContent = `acknowledged by ${alert.acknowledged_by}`;
    item.classList.add("acknowledged");
    ack.hidden = true;
  } else if (alert.repeat > 0) {
    handled.textContent = `repeated ${alert.repeat}×, not acknowledged`;
  }
}

function updateAlert(alert) {
  const item = document.querySelector(`#feed li[data-alert-id="${alert.alert_id}"]`);
  if (item) showHandled(item, alert);
}

async function acknowledge(item, alertId) {
  const handled = item.querySelector(".handled");
  const ack = item.querySelector("button.ack");
  ack.disabled = true;
  try {
    const response = await fetch(`/v1/alerts/${alertId}:acknowledge`, {
      method: "POST",
      cache: "no-store",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: "{}",
    });
    if (response.status === 403) throw new Error("this token lacks the ack role");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    showHandled(item, (await response.json()).alert);
  } catch (err) {
    handled.textContent = `not acknowledged: ${err.message}`;
    ack.disabled = false;
  }
}

async function refreshCounts() {
  try {
    const response = await fetch("/api/dashboard?page_size=10", {
      cache: "no-store",
      headers: authHeaders(),
    });
    if (response.status === 401 || response.status === 403) {
      throw new Error(response.status === 401 ? "token refused" : "token lacks the read role");
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    for (const [state, n] of Object.entries(body.counts)) {
      const el = $(`count-${state}`);
      if (el) el.textContent = String(n);
    }
    renderUrgent(body.tickets);
    $("counts-updated").textContent = `counts at ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("counts-updated").textContent = `counts unavailable: ${err.message}`;
  }
}

// Every clock of the ticket by its metric's name in words, with its state and what it waits
// for: "next reply (cycle 2): warning, due 14:05".
function clocksCell(clocks) {
  const cell = document.createElement("td");
  cell.className = "clocks";
  for (const c of clocks) {
    let detail = c.state;
    if (c.stopped) detail += ", stopped";
    else if (c.paused) detail += ", paused";
    else if (c.due_at) detail += `, due ${new Date(c.due_at).toLocaleString()}`;
    const el = text("span", `clock state-${c.state}`, `${clockName(c.metric, c.cycle)}: ${detail}`);
    el.dataset.metric = c.metric;
    el.dataset.cycle = String(c.cycle);
    cell.append(el);
  }
  return cell;
}

function renderUrgent(tickets) {
  const body = $("urgent").tBodies[0];
  body.replaceChildren(
    ...tickets.map((t) => {
      const row = document.createElement("tr");
      // The earliest running due time: what puts the ticket at this place in the list.
      const dues = (t.clocks || []).map((c) => c.due_at).filter(Boolean).map((d) => new Date(d));
      const due = dues.length ? new Date(Math.min(...dues)) : null;
      row.append(
        text("td", "ticket", t.ticket_id),
        text("td", `state-${t.sla_state}`, t.sla_state),
        text("td", "", t.priority),
        text("td", "", t.customer_tier),
        text("td", "", String(t.escalation_level)),
        clocksCell(t.clocks || []),
        text("td", "", due ? due.toLocaleString() : "–"),
      );
      return row;
    }),
  );
}

// A connection that has gone silent for three heartbeats is dead even if the browser has not
// noticed (sleeping laptop, dropped NAT entry): close it and reconnect from the last id.
window.setInterval(() => {
  const ws = page.ws;
  if (ws && ws.readyState === WebSocket.OPEN) {
    if (Date.now() - page.lastMessageAt > 3000 * page.heartbeatSeconds) ws.close();
  }
}, 1000);
window.setInterval(refreshCounts, COUNTS_EVERY_MS);

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  $("token-input").value = "";
  if (token) useToken(token);
});

adoptTokenFromUrl();
connect();
