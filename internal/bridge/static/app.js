// The live page: one WebSocket to /ws/alerts, reconnecting with ?after=<last alert id> so that
// nothing written while it was away is missed; SLA counts from /api/dashboard.
//
// The bridge wants a token: opened as /?token=..., the page keeps it in this tab's
// sessionStorage and removes it from the address bar (so it is not bookmarked, shared or kept in
// history); otherwise it asks for one in a small form when the bridge refuses the connection.
// Browsers cannot put headers on a WebSocket, so the socket carries it as ?token=;
// /api/dashboard, /v1 and /api/report.csv get it as an Authorization header.
//
// Three views, chosen by the address's fragment so that links, Back and bookmarks work: the live
// alerts (#live, the default), one ticket (#ticket/<id>, from GetTicket's full view: clocks with
// their timelines, history, alerts with their notifications) and the report (#report: the last
// 30 days' attainment per day from GetSlaReport, drawn here as SVG, and its CSV). Everything is
// built with DOM calls: the page's CSP allows no inline script or style.
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
  reportQuery: null, // the query of the report on screen, for its CSV
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

// A cell (or span) holding a link to the ticket's view: a real link, so Tab reaches it and
// Enter opens it.
function ticketLink(tag, className, ticketId) {
  const el = document.createElement(tag);
  el.className = className;
  const link = document.createElement("a");
  link.href = ticketHash(ticketId);
  link.textContent = ticketId;
  el.append(link);
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
    ticketLink("span", "ticket", alert.ticket_id),
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

// "12/4/26, 2:05 PM": short enough for the narrow columns of the urgent-tickets table.
function shortWhen(value) {
  return new Date(value).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
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
    else if (c.due_at) detail += `, due ${shortWhen(c.due_at)}`;
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
        ticketLink("td", "ticket", t.ticket_id),
        text("td", `state-${t.sla_state}`, t.sla_state),
        text("td", "", t.priority),
        text("td", "", t.customer_tier),
        text("td", "", String(t.escalation_level)),
        clocksCell(t.clocks || []),
        text("td", "", due ? shortWhen(due) : "–"),
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

// ---- views -------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const REPORT_DAYS = 30;

function ticketHash(ticketId) {
  return `#ticket/${encodeURIComponent(ticketId)}`;
}

// "SLA_STATE_BREACHED" -> "breached": the contract's enum names in the page's words.
function short(name, prefix) {
  return (name || "").startsWith(prefix) ? name.slice(prefix.length).toLowerCase() : name || "";
}

// proto3 JSON durations are strings of seconds: "900s", "12.5s", "-300s".
function durationSeconds(value) {
  return value ? Number.parseFloat(value) : 0;
}

// 5400 -> "1h 30m"; 45 -> "45s".
function humanDuration(seconds) {
  const s = Math.round(Math.abs(seconds));
  const sign = seconds < 0 ? "-" : "";
  if (s < 60) return `${sign}${s}s`;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [];
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m && !d) parts.push(`${m}m`);
  return sign + (parts.join(" ") || "0m");
}

function when(value) {
  return value ? new Date(value).toLocaleString() : "–";
}

function svg(tag, attributes) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) el.setAttribute(name, value);
  return el;
}

function svgTitle(el, value) {
  const title = svg("title");
  title.textContent = value;
  el.append(title);
  return el;
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store", headers: authHeaders() });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not the JSON error shape: the status says enough
    }
    throw new Error(message);
  }
  return response.json();
}

// Which view the fragment names: ["ticket", id], ["report"] or ["live"].
function route() {
  const hash = window.location.hash;
  if (hash.startsWith("#ticket/")) {
    try {
      return ["ticket", decodeURIComponent(hash.slice(8))];
    } catch {
      return ["ticket", hash.slice(8)]; // typed by hand, not one of our links: shown as it is
    }
  }
  if (hash === "#report") return ["report"];
  return ["live"];
}

function showView() {
  const [name, ticketId] = route();
  $("live-view").hidden = name !== "live";
  $("ticket-view").hidden = name !== "ticket";
  $("report-view").hidden = name !== "report";
  for (const [link, view] of [
    ["nav-live", "live"],
    ["nav-report", "report"],
  ]) {
    if (view === name) $(link).setAttribute("aria-current", "page");
    else $(link).removeAttribute("aria-current");
  }
  if (name === "ticket") {
    $("ticket-title").focus();
    loadTicket(ticketId);
  } else if (name === "report") {
    $("report-title").focus();
    loadReport();
  }
}

// ---- the ticket view ---------------------------------------------------------------------------

async function loadTicket(ticketId) {
  $("ticket-title").textContent = `Ticket ${ticketId}`;
  $("ticket-summary").textContent = "loading…";
  $("ticket-error").textContent = "";
  for (const id of ["ticket-clocks", "ticket-history"]) $(id).tBodies[0].replaceChildren();
  $("ticket-alerts").replaceChildren();
  try {
    const url = `/v1/tickets/${encodeURIComponent(ticketId)}?view=TICKET_VIEW_FULL`;
    const body = await getJson(url);
    if (route()[1] !== ticketId) return; // another ticket was opened meanwhile
    renderTicket(body);
  } catch (err) {
    $("ticket-summary").textContent = "";
    $("ticket-error").textContent = `ticket unavailable: ${err.message}`;
  }
}

function renderTicket(body) {
  const t = body.ticket;
  $("ticket-summary").textContent =
    `${short(t.status, "TICKET_STATUS_")} · ${t.priority}/${t.customer_tier}` +
    (t.policy ? ` · policy ${t.policy}` : "") +
    ` · SLA ${short(t.sla_state, "SLA_STATE_")} · level ${t.escalation_level}` +
    ` · created ${when(t.created_at)}` +
    (t.group ? ` · group ${t.group}` : "") +
    (t.assignee ? ` · assignee ${t.assignee}` : "");
  const now = Date.now();
  $("ticket-clocks").tBodies[0].replaceChildren(...(t.clocks || []).map((c) => clockRow(c, now)));
  $("ticket-history").tBodies[0].replaceChildren(...(body.history || []).map(historyRow));
  const alerts = body.alerts || [];
  $("ticket-alerts-empty").hidden = alerts.length > 0;
  $("ticket-alerts").replaceChildren(...alerts.map(alertItem));
}

function clockRow(c, now) {
  const state = short(c.state, "SLA_STATE_");
  let status = state;
  if (c.stopped) status += ", stopped";
  else if (c.paused) status += ", paused";
  const tr = row([
    text("td", "", metricWords(c.metric)),
    text("td", "", String(c.cycle)),
    text("td", `state-${state}`, status),
    text("td", "", c.due_at ? when(c.due_at) : "–"),
    text(
      "td",
      "",
      `${humanDuration(durationSeconds(c.elapsed))} / ${humanDuration(durationSeconds(c.target))}`,
    ),
    timelineCell(c.timeline || [], now),
  ]);
  tr.className = "clock-row";
  tr.dataset.metric = c.metric;
  tr.dataset.cycle = String(c.cycle);
  return tr;
}

// The clock's timeline as one bar: each segment a rectangle as wide as its share of the time
// from the clock's start to now (to its stop, for a stopped clock), coloured by kind, its times
// and cause in a tooltip and in the label.
function timelineCell(segments, now) {
  const cell = document.createElement("td");
  cell.className = "timeline";
  if (!segments.length) {
    cell.textContent = "–";
    return cell;
  }
  const spans = segments.map((s) => {
    const start = new Date(s.start).getTime();
    const end = s.end ? new Date(s.end).getTime() : Math.max(now, start);
    return { kind: short(s.kind, "TIMELINE_SEGMENT_KIND_"), start, end, segment: s };
  });
  const first = spans[0].start;
  const last = spans[spans.length - 1];
  const width = 1000;
  // A stopped clock's last segment runs on for ever: drawn to scale it would squeeze what the
  // clock did into nothing, so it gets a fixed tail and the scale ends where it began.
  const stoppedTail = spans.length > 1 && last.kind === "stopped" && !last.segment.end;
  const tail = stoppedTail ? width * 0.06 : 0;
  const scale = (width - tail) / Math.max(1, (stoppedTail ? last.start : last.end) - first);
  const bar = svg("svg", {
    viewBox: `0 0 ${width} 14`,
    preserveAspectRatio: "none",
    class: "timeline-bar",
    role: "img",
  });
  const words = [];
  for (const span of spans) {
    const x = (span.start - first) * scale;
    // At least a sliver: a short pause in a long clock stays visible (and has its tooltip).
    const w = span === last && stoppedTail ? tail : Math.max((span.end - span.start) * scale, 4);
    const kind = span.kind.replaceAll("_", " ");
    const cause = span.segment.cause ? span.segment.cause.trigger : "";
    const detail =
      `${kind} from ${when(span.segment.start)}` +
      (span.segment.end ? ` to ${when(span.segment.end)}` : ", ongoing") +
      ` (${humanDuration((span.end - span.start) / 1000)}; ${cause})`;
    const rect = svg("rect", { x: x.toFixed(2), y: "0", width: w.toFixed(2), height: "14" });
    rect.setAttribute("class", `seg seg-${span.kind}`);
    bar.append(svgTitle(rect, detail));
    words.push(detail);
  }
  bar.setAttribute("aria-label", words.join("; "));
  cell.append(bar);
  return cell;
}

function historyRow(h) {
  const status = short(h.status, "TICKET_STATUS_");
  const activity = short(h.activity, "TICKET_ACTIVITY_");
  return row([
    text("td", "", when(h.updated_at)),
    text("td", "", status === "unspecified" ? "(unchanged)" : status),
    text("td", "", activity === "unspecified" ? "field update" : activity.replaceAll("_", " ")),
    text("td", "", `${h.priority}/${h.customer_tier}`),
    text("td", "", [h.group, h.assignee].filter(Boolean).join(" / ") || "–"),
    text("td", "muted", when(h.received_at)),
  ]);
}

function alertItem(a) {
  const item = document.createElement("li");
  const kind = short(a.kind, "ALERT_KIND_");
  item.className = `ticket-alert kind-${kind}`;
  item.dataset.alertId = String(a.alert_id);
  item.append(
    text(
      "p",
      "what",
      `${kind} · level ${a.escalation_level} · ${clockName(a.metric, a.cycle || 1)} clock · #${a.alert_id}`,
    ),
    text(
      "p",
      "muted",
      `raised ${when(a.created_at)}` +
        (a.due_at ? ` · due ${when(a.due_at)}` : "") +
        (a.repeat > 0 ? ` · repeated ${a.repeat}×` : "") +
        (a.acknowledged_by
          ? ` · acknowledged by ${a.acknowledged_by} ${when(a.acknowledged_at)}` +
            (a.ack_note ? ` (“${a.ack_note}”)` : "")
          : ""),
    ),
  );
  const notifications = a.notifications || [];
  if (!notifications.length) {
    item.append(text("p", "muted", "no notifications (no channel for this step)"));
    return item;
  }
  const table = document.createElement("table");
  table.className = "notifications";
  const head = document.createElement("thead");
  head.append(
    row(
      ["channel", "repeat", "delivery", "attempts", "sent", "last error"].map((h) =>
        text("th", "", h),
      ),
    ),
  );
  const rows = document.createElement("tbody");
  for (const n of notifications) {
    const state = short(n.state, "NOTIFICATION_STATE_");
    rows.append(
      row([
        text("td", "", n.channel),
        text("td", "", String(n.repeat)),
        text("td", `delivery-${state}`, state),
        text("td", "", String(n.attempts)),
        text("td", "", when(n.sent_at)),
        text("td", "last-error", n.last_error || "–"),
      ]),
    );
  }
  table.append(head, rows);
  item.append(table);
  return item;
}

// ---- the report view ---------------------------------------------------------------------------

function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

// The local date of an instant, as YYYY-MM-DD (the report's days are the browser's days).
function localDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// The last 30 local days, today included: their midnights, oldest first.
function reportDays() {
  const first = new Date();
  first.setHours(0, 0, 0, 0);
  first.setDate(first.getDate() - (REPORT_DAYS - 1));
  return Array.from({ length: REPORT_DAYS }, (_, i) => {
    const day = new Date(first);
    day.setDate(first.getDate() + i);
    return day;
  });
}

function reportQuery(days) {
  const query = new URLSearchParams({
    start: days[0].toISOString(),
    end: new Date().toISOString(),
    interval: "REPORT_INTERVAL_DAY",
    time_zone: timeZone(),
  });
  return query.toString();
}

async function loadReport() {
  const days = reportDays();
  const query = reportQuery(days);
  page.reportQuery = query;
  $("report-error").textContent = "";
  $("report-meta").textContent = "loading…";
  try {
    const body = await getJson(`/v1/reports/sla?${query}`);
    const rows = body.rows || [];
    renderReportChart(days, rows);
    renderReportTable(rows);
    $("report-meta").textContent =
      `${localDay(days[0])} to ${localDay(days[days.length - 1])}, days in ${timeZone()}` +
      ` · ${rows.length} of ${REPORT_DAYS} days with decided clocks · at ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("report-meta").textContent = "";
    $("report-error").textContent = `report unavailable: ${err.message}`;
  }
}

function attainmentPercent(r) {
  return Math.round(Number(r.attainment) * 1000) / 10;
}

// Attainment per day as bars on a 0–100 % scale, one slot per day of the range; a day without a
// row (nothing decided) has no bar, only its slot on the axis.
function renderReportChart(days, rows) {
  const byDay = new Map(rows.map((r) => [localDay(new Date(r.interval_start)), r]));
  const W = 640;
  const H = 260;
  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const slot = plotW / days.length;
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "report-chart",
    role: "img",
    "aria-label": `attainment per day, ${rows.length} days with decided clocks`,
  });
  for (const percent of [0, 25, 50, 75, 100]) {
    const y = top + plotH - (percent / 100) * plotH;
    chart.append(
      svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }),
      textAt(left - 6, y + 4, `${percent}%`, "axis end"),
    );
  }
  days.forEach((day, i) => {
    const x = left + i * slot;
    if (i % 5 === 0 || i === days.length - 1) {
      const label = day.toLocaleDateString(undefined, { month: "short", day: "numeric" });
      chart.append(textAt(x + slot / 2, H - bottom + 16, label, "axis middle"));
    }
    const r = byDay.get(localDay(day));
    if (!r) return;
    const percent = attainmentPercent(r);
    const h = Math.max((percent / 100) * plotH, 1.5);
    const bar = svg("rect", {
      x: (x + slot * 0.15).toFixed(2),
      y: (top + plotH - h).toFixed(2),
      width: (slot * 0.7).toFixed(2),
      height: h.toFixed(2),
      class: `bar ${percent >= 95 ? "bar-good" : percent >= 80 ? "bar-fair" : "bar-poor"}`,
    });
    bar.dataset.day = localDay(day);
    svgTitle(
      bar,
      `${day.toLocaleDateString()}: ${percent}% (${r.achieved} achieved, ${r.breached} breached)`,
    );
    chart.append(bar);
  });
  $("report-chart").replaceChildren(chart);
}

function textAt(x, y, value, className) {
  const el = svg("text", { x, y, class: className });
  el.textContent = value;
  return el;
}

function percentile(value) {
  return value ? humanDuration(durationSeconds(value)) : "–";
}

function renderReportTable(rows) {
  $("report-table").tBodies[0].replaceChildren(
    ...rows.map((r) =>
      row([
        text("td", "", new Date(r.interval_start).toLocaleDateString()),
        text("td", "num", String(r.achieved)),
        text("td", "num", String(r.breached)),
        text("td", "num", `${attainmentPercent(r)}%`),
        text("td", "num", percentile(r.p50_elapsed)),
        text("td", "num", percentile(r.p90_elapsed)),
        text("td", "num", String(r.running_past_target)),
      ]),
    ),
  );
}

// The CSV of the report on screen, from /api/report.csv with the page's token (a plain link
// could not send the Authorization header), saved under the name the bridge gives it.
async function downloadReportCsv() {
  const button = $("report-csv");
  button.disabled = true;
  $("report-error").textContent = "";
  try {
    const query = page.reportQuery || reportQuery(reportDays());
    const response = await fetch(`/api/report.csv?${query}`, {
      cache: "no-store",
      headers: authHeaders(),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = match ? match[1] : "sla-report.csv";
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } catch (err) {
    $("report-error").textContent = `CSV unavailable: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

window.addEventListener("hashchange", showView);
$("report-csv").addEventListener("click", downloadReportCsv);

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  $("token-input").value = "";
  if (token) useToken(token);
});

adoptTokenFromUrl();
connect();
showView();
