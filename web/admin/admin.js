// Switchboard admin page: plain JavaScript over the REST API (/api/v1) with
// the API token the operator logs in with, and the live event stream
// (/api/v1/events) read with fetch, since EventSource cannot send the token.
"use strict";

const $ = (id) => document.getElementById(id);
const tokenKey = "switchboard.token";
let token = sessionStorage.getItem(tokenKey) || "";
let stream = null;         // AbortController of the event stream
let lastEventID = "";      // to resume the stream after a drop
let recordsCursor = "";    // next page of the call history
let refreshTimer = null;

// api calls the REST API and returns the decoded JSON (null for 204). Errors
// are thrown with the problem details' text.
async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  if (res.status === 401) {
    logout("That token was not accepted.");
    throw new Error("unauthorized");
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    let msg = (data && (data.detail || data.title)) || res.statusText;
    if (data && data.errors) msg += ": " + data.errors.map((e) => `${e.location} ${e.message}`).join("; ");
    throw new Error(msg);
  }
  return data;
}

// all reads every page of a list.
async function all(path) {
  let items = [], cursor = "";
  for (let i = 0; i < 50; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", path + sep + "limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items = items.concat(page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return items;
}

function showError(err) {
  if (err && err.message !== "unauthorized") $("error").textContent = err.message || String(err);
}
function clearError() { $("error").textContent = ""; }

// el builds an element: el("td", {class: "x"}, "text", child…).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function fill(tbody, rows, cols, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: cols, class: "empty" }, emptyText))]));
}

function duration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return (h ? h + ":" + pad(m) : m) + ":" + pad(s % 60);
}
function when(t) { return t ? new Date(t).toLocaleString() : ""; }
function since(t) { return t ? duration(Date.now() - new Date(t).getTime()) : ""; }

// ---- sections ----

async function loadStatus() {
  const s = await api("GET", "/api/v1/status");
  $("status").textContent = `v${s.version} · up ${duration(s.uptime_seconds * 1000)} · ${s.users} users · ` +
    `${s.registrations} registrations · ${s.active_calls} active calls` + (s.ready ? "" : " · NOT READY");
}

// viaTrunk is a call's callee, naming the trunk (and dialled number) of a
// call to or from the outside world.
function viaTrunk(c) {
  if (!c.trunk) return c.callee;
  return `${c.callee} (via ${c.trunk}${c.did ? ", dialled " + c.did : ""})`;
}

async function loadCalls() {
  const calls = await all("/api/v1/calls");
  $("calls-count").textContent = calls.length ? `(${calls.length})` : "";
  fill($("calls"), calls.map((c) => {
    const legs = c.legs || [];
    const per = (f) => legs.map(f).join(" · ");
    return el("tr", { "data-testid": "call-row-" + c.id, "data-call": c.id },
      el("td", {}, c.caller), el("td", {}, viaTrunk(c)),
      el("td", { class: "state-" + c.state }, c.state),
      el("td", {}, (c.codecs || []).join(", ")),
      el("td", { "data-since": c.answered_at || c.started_at }, since(c.answered_at || c.started_at)),
      el("td", {}, per((l) => l.relay_port)),
      el("td", {}, per((l) => `${l.packets_in}/${l.packets_out}`)),
      el("td", {}, per((l) => l.lost)),
      el("td", {}, per((l) => l.jitter_ms.toFixed(1))),
      el("td", {}, el("button", { class: "danger", "data-testid": "hangup-" + c.id, onclick: () => hangup(c.id) }, "Hang up")));
  }), 10, "No calls in progress.");
}

async function hangup(id) {
  clearError();
  try { await api("DELETE", "/api/v1/calls/" + encodeURIComponent(id)); } catch (e) { showError(e); }
  await loadCalls().catch(showError);
}

async function loadUsers() {
  const [users, regs] = await Promise.all([all("/api/v1/users"), all("/api/v1/registrations")]);
  const devices = {};
  for (const r of regs) devices[r.user] = (devices[r.user] || 0) + 1;
  fill($("users"), users.map((u) => el("tr", { "data-testid": "user-row-" + u.name },
    el("td", {}, u.name), el("td", { "data-testid": "user-display-" + u.name }, u.display_name),
    el("td", {}, String(devices[u.name] || 0)),
    el("td", {}, u.from_config ? "config file" : "API"),
    el("td", {},
      el("button", { class: "secondary", "data-testid": "edit-" + u.name, onclick: (ev) => editUser(ev.target, u) }, "Edit"), " ",
      el("button", { class: "danger", "data-testid": "remove-" + u.name, onclick: () => removeUser(u.name) }, "Remove")))),
  5, "No users.");
  fill($("regs"), regs.map((r) => el("tr", { "data-testid": "reg-row-" + r.user },
    el("td", {}, r.user), el("td", { class: "wrap" }, r.contact), el("td", {}, r.source), el("td", {}, r.transport),
    el("td", { class: "wrap" }, r.user_agent), el("td", { "data-expires": r.expires_at }, duration(new Date(r.expires_at) - Date.now())),
    el("td", {}, el("button", { class: "danger", onclick: () => removeReg(r.id) }, "Remove")))),
  7, "Nobody is registered.");
}

function editUser(button, u) {
  const form = $("edit-user").content.firstElementChild.cloneNode(true);
  form.elements.display.value = u.display_name;
  form.elements.display.setAttribute("data-testid", "edit-display-" + u.name);
  form.querySelector("button[type=submit]").setAttribute("data-testid", "edit-save-" + u.name);
  const cell = button.parentElement, before = [...cell.childNodes];
  form.querySelector(".cancel").addEventListener("click", () => cell.replaceChildren(...before));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const change = { display_name: form.elements.display.value };
    if (form.elements.password.value) change.password = form.elements.password.value;
    try {
      await api("PATCH", "/api/v1/users/" + encodeURIComponent(u.name), change);
      await loadUsers();
    } catch (e) { showError(e); }
  });
  cell.replaceChildren(form);
  form.elements.display.focus();
}

async function removeUser(name) {
  if (!confirm(`Remove user ${name} and their registrations?`)) return;
  clearError();
  try { await api("DELETE", "/api/v1/users/" + encodeURIComponent(name)); await loadUsers(); } catch (e) { showError(e); }
}

async function removeReg(id) {
  clearError();
  try { await api("DELETE", "/api/v1/registrations/" + encodeURIComponent(id)); await loadUsers(); } catch (e) { showError(e); }
}

function recordsQuery() {
  const q = new URLSearchParams({ limit: "50" });
  if ($("rec-user").value) q.set("user", $("rec-user").value.trim());
  if ($("rec-result").value) q.set("result", $("rec-result").value);
  if ($("rec-since").value) q.set("since", new Date($("rec-since").value).toISOString());
  if ($("rec-until").value) q.set("until", new Date($("rec-until").value).toISOString());
  return q;
}

async function loadRecords(more) {
  const q = recordsQuery();
  if (more && recordsCursor) q.set("cursor", recordsCursor);
  const page = await api("GET", "/api/v1/records?" + q);
  recordsCursor = page.next_cursor || "";
  $("records-more").hidden = !recordsCursor;
  const rows = page.items.map((r) => el("tr", { "data-testid": "record-row-" + r.id },
    el("td", {}, when(r.started_at)), el("td", {}, r.caller), el("td", {}, viaTrunk(r)),
    el("td", {}, r.result || "(in progress)"), el("td", {}, String(r.status || "")),
    el("td", {}, r.answered_at ? duration(r.duration_ms) : ""), el("td", {}, r.hangup_by), el("td", { class: "wrap" }, r.reason)));
  if (more) $("records").append(...rows);
  else fill($("records"), rows, 8, "No calls match.");
}

async function loadTrunks() {
  const list = await api("GET", "/api/v1/trunks");
  fill($("trunks"), list.items.map((t) => el("tr", { "data-testid": "trunk-row-" + t.name },
    el("td", {}, t.name), el("td", {}, t.address), el("td", { class: "state-" + t.state }, t.state),
    el("td", { class: "wrap" }, t.last_error ? `${t.last_error} (${when(t.last_error_at)})` : ""))),
  4, "No trunks configured.");
}

async function loadWebhooks() {
  const list = await api("GET", "/api/v1/webhooks");
  fill($("webhooks"), list.items.map((w) => el("tr", { "data-testid": "webhook-row" },
    el("td", { class: "wrap" }, w.url + (w.configured ? "" : " (removed)")),
    el("td", {}, String(w.pending)), el("td", {}, String(w.delivered)), el("td", {}, String(w.expired)),
    el("td", {}, String(w.attempts)),
    el("td", {}, w.next_attempt_at ? when(w.next_attempt_at) : ""),
    el("td", { class: "wrap" }, w.last_error || ""))),
  7, "No webhooks configured.");
}

// ---- live events ----

function logEvent(type, msg) {
  const data = msg.data || {};
  const who = data.user || (data.caller ? `${data.caller} → ${data.callee}` : data.name || "");
  const li = el("li", { "data-type": type }, `${new Date(msg.timestamp).toLocaleTimeString()} ${type} ${who}` +
    (data.result ? ` (${data.result})` : ""));
  $("events").prepend(li);
  while ($("events").children.length > 100) $("events").lastChild.remove();
}

function onEvent(type, msg) {
  logEvent(type, msg);
  if (type.startsWith("call.")) {
    loadCalls().catch(showError);
    if (type === "call.started" || type === "call.ended") loadRecords(false).catch(showError);
  } else if (type.startsWith("registration.")) {
    loadUsers().catch(showError);
  } else if (type.startsWith("trunk.")) {
    loadTrunks().catch(showError);
  }
  loadStatus().catch(showError);
  loadWebhooks().catch(showError);
}

// connectEvents reads /api/v1/events and reconnects (resuming after the last
// event seen) until logout.
async function connectEvents() {
  const ctl = new AbortController();
  stream = ctl;
  const live = $("live");
  while (stream === ctl) {
    try {
      const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
      if (lastEventID) headers["Last-Event-ID"] = lastEventID;
      const res = await fetch("/api/v1/events", { headers, signal: ctl.signal });
      if (!res.ok || !res.body) throw new Error("event stream: " + res.status);
      live.textContent = "live"; live.className = "pill on";
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let id = "", type = "", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (!type || !data) continue;
          if (id) lastEventID = id;
          try { onEvent(type, JSON.parse(data)); } catch (e) { console.error(e); }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    live.textContent = "reconnecting"; live.className = "pill off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- session ----

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  clearError();
  await Promise.all([loadStatus(), loadCalls(), loadUsers(), loadRecords(false), loadTrunks(), loadWebhooks()]);
  connectEvents();
  // Media counters and durations change without events.
  refreshTimer = setInterval(() => {
    loadCalls().catch(showError);
    loadStatus().catch(showError);
    loadWebhooks().catch(showError);
  }, 3000);
}

function logout(why) {
  token = "";
  sessionStorage.removeItem(tokenKey);
  if (stream) stream.abort();
  stream = null;
  clearInterval(refreshTimer);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("status").textContent = "";
  $("live").textContent = "offline"; $("live").className = "pill off";
  $("login-error").textContent = why || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("login-error").textContent = "";
    try {
      await api("GET", "/api/v1/status");
    } catch (e) {
      if (e.message !== "unauthorized") $("login-error").textContent = e.message;
      return;
    }
    sessionStorage.setItem(tokenKey, token);
    $("token").value = "";
    start().catch(showError);
  });
  $("logout").addEventListener("click", () => logout(""));

  $("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      await api("POST", "/api/v1/users", {
        name: $("new-name").value.trim(), display_name: $("new-display").value.trim(), password: $("new-password").value,
      });
      ev.target.reset();
      await loadUsers();
    } catch (e) { showError(e); }
  });

  $("originate-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      const o = await api("POST", "/api/v1/calls", { from: $("orig-from").value.trim(), to: $("orig-to").value.trim() });
      logEvent("originate", { timestamp: o.started_at, data: { caller: o.from, callee: o.to } });
    } catch (e) { showError(e); }
  });

  $("records-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadRecords(false).catch(showError);
  });
  $("records-more").addEventListener("click", () => loadRecords(true).catch(showError));

  if (token) {
    api("GET", "/api/v1/status").then(() => start()).catch(() => {});
  }
});
