// The Warden dashboard (SPEC OB-2). Plain JavaScript, no build step.
//
// Data: GET /v1/workspaces/{ws}/status, live over SSE from
// /v1/workspaces/{ws}/status/stream. EventSource cannot send an
// Authorization header, so the stream is read with fetch() and parsed
// here; the token never goes into a URL. When the stream fails or is
// blocked, the page polls the status every 5 s and keeps retrying the
// stream in the background.
"use strict";

(function () {
  const POLL_MS = 5000;
  // Longest silence on the stream (the server sends a keep-alive every 10 s)
  // before it counts as dead.
  const STREAM_SILENCE_MS = 25000;
  const RETRY_MIN_MS = 2000;
  const RETRY_MAX_MS = 30000;
  const STATES = ["queued", "running", "waiting_approval", "blocked", "failed", "dead", "done", "cancelled"];
  const STATE_COLORS = {
    queued: "#7b8497", running: "#3b6fd8", waiting_approval: "#8a5cd1", blocked: "#d64545",
    failed: "#e07b39", dead: "#8b1e1e", done: "#1f9d55", cancelled: "#a3a9b7",
  };

  const $ = (id) => document.getElementById(id);
  let token = null;
  let workspace = null;
  let transport = "connecting";
  let streamAbort = null;
  let streamRetryTimer = null;
  let streamRetryMs = RETRY_MIN_MS;
  let pollTimer = null;
  let generation = 0; // bumps on workspace or token change; stale work stops
  const charts = {};

  // ---- token and workspace -------------------------------------------------

  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const t = params.get("token");
    const ws = params.get("ws");
    if (t) localStorage.setItem("warden.token", t);
    if (ws) localStorage.setItem("warden.workspace", ws);
    if (t || ws) history.replaceState(null, "", location.pathname + location.search);
  }

  function showLogin(message) {
    stopAll();
    token = null;
    $("dash").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setTransport("offline", "signed out");
  }

  function signOut() {
    localStorage.removeItem("warden.token");
    showLogin("");
  }

  class AuthError extends Error {}

  async function api(path, signal) {
    const resp = await fetch(path, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
      signal,
    });
    if (resp.status === 401) throw new AuthError("the token was not accepted");
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { const b = await resp.json(); if (b.error && b.error.message) msg = b.error.message; } catch (_) { /* not JSON */ }
      if (resp.status === 403) throw new AuthError(msg);
      throw new Error(msg);
    }
    return resp.json();
  }

  async function start() {
    token = localStorage.getItem("warden.token");
    if (!token) { showLogin(""); return; }
    $("login").hidden = true;
    $("dash").hidden = false;
    let names = [];
    try {
      const global = await api("/v1/status?hours=1");
      names = global.workspaces || [];
    } catch (e) {
      if (e instanceof AuthError) { showLogin(e.message); return; }
      names = [];
    }
    const wanted = localStorage.getItem("warden.workspace") || "default";
    if (!names.includes(wanted)) names.push(wanted);
    names.sort();
    const select = $("workspace");
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    select.value = wanted;
    switchWorkspace(wanted);
  }

  function switchWorkspace(ws) {
    stopAll();
    generation += 1;
    workspace = ws;
    localStorage.setItem("warden.workspace", ws);
    openStream(generation);
  }

  function stopAll() {
    generation += 1;
    if (streamAbort) { streamAbort.abort(); streamAbort = null; }
    clearTimeout(streamRetryTimer);
    streamRetryTimer = null;
    stopPolling();
  }

  // ---- transport: SSE over fetch, polling as the fallback -----------------

  function setTransport(kind, detail) {
    transport = kind;
    const t = $("transport");
    t.dataset.transport = kind;
    t.textContent = { sse: "live (SSE)", polling: "polling every 5 s", offline: "offline", connecting: "connecting…" }[kind] || kind;
    t.title = detail || "";
  }

  async function openStream(gen) {
    const ctrl = new AbortController();
    streamAbort = ctrl;
    let silence = null;
    const arm = () => {
      clearTimeout(silence);
      silence = setTimeout(() => ctrl.abort(), STREAM_SILENCE_MS);
    };
    try {
      arm();
      const resp = await fetch("/v1/workspaces/" + encodeURIComponent(workspace) + "/status/stream", {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        cache: "no-store",
        signal: ctrl.signal,
      });
      if (resp.status === 401 || resp.status === 403) {
        let msg = "the token was not accepted";
        try { const b = await resp.json(); if (b.error && b.error.message) msg = b.error.message; } catch (_) { /* not JSON */ }
        clearTimeout(silence);
        if (gen === generation) showLogin(msg);
        return;
      }
      if (!resp.ok || !resp.body) throw new Error("stream answered " + resp.status);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || gen !== generation) break;
        arm();
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(buffer.slice(cut).match(/^\r?\n\r?\n/)[0].length + cut);
          const message = parseEvent(block);
          if (message && message.event === "status" && gen === generation) {
            render(JSON.parse(message.data));
            if (transport !== "sse") {
              setTransport("sse", "server-sent events from " + location.host);
              stopPolling();
              streamRetryMs = RETRY_MIN_MS;
            }
          }
        }
      }
      throw new Error("stream ended");
    } catch (e) {
      clearTimeout(silence);
      if (gen !== generation) return; // switched away on purpose
      fallBack(gen, e);
    } finally {
      clearTimeout(silence);
    }
  }

  // One SSE block: `event:` and `data:` lines; `:` lines are comments
  // (keep-alives).
  function parseEvent(block) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { event, data: data.join("\n") } : null;
  }

  function fallBack(gen, why) {
    if (!pollTimer) {
      setTransport("polling", "the live stream is unavailable (" + (why && why.message ? why.message : why) + "); retrying it in the background");
      poll(gen);
    }
    clearTimeout(streamRetryTimer);
    streamRetryTimer = setTimeout(() => { if (gen === generation) openStream(gen); }, streamRetryMs);
    streamRetryMs = Math.min(streamRetryMs * 2, RETRY_MAX_MS);
  }

  async function poll(gen) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => { if (gen === generation) poll(gen); }, POLL_MS);
    try {
      const status = await api("/v1/workspaces/" + encodeURIComponent(workspace) + "/status");
      if (gen === generation && transport !== "sse") {
        render(status);
        if (transport !== "polling") setTransport("polling", "the live stream is unavailable; retrying it in the background");
      }
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof AuthError) { showLogin(e.message); return; }
      setTransport("offline", "cannot reach the server: " + e.message);
    }
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  // ---- rendering ------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function ago(iso) {
    if (!iso) return "–";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function seconds(ms) {
    return ms >= 60000 ? (ms / 60000).toFixed(1) + " min" : (ms / 1000).toFixed(1) + " s";
  }

  const pct = (x) => Math.round(x * 100) + "%";
  const usd = (x) => "$" + (x < 1 ? x.toFixed(4) : x.toFixed(2));
  const num = (x) => Number(x || 0).toLocaleString("en-US");

  // Shows the list or its empty state.
  function fill(panelId, container, items) {
    const panel = $(panelId);
    const empty = panel.querySelector(".empty");
    container.replaceChildren(...items);
    const none = items.length === 0;
    empty.hidden = !none;
    const chart = panel.querySelector(".chart");
    if (chart) chart.hidden = none;
    container.hidden = none && !chart;
  }

  function chart(id, type, data, options) {
    if (typeof window.Chart === "undefined") return; // the library did not load
    const existing = charts[id];
    if (existing) {
      existing.data = data;
      existing.update("none");
      return;
    }
    charts[id] = new window.Chart($(id), {
      type,
      data,
      options: Object.assign({
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: true, position: "bottom", labels: { boxWidth: 10, font: { size: 10 } } } },
      }, options || {}),
    });
  }

  function chartPanel(panelId, hasData) {
    const panel = $(panelId);
    panel.querySelector(".chart").hidden = !hasData;
    panel.querySelector(".empty").hidden = hasData;
  }

  function render(s) {
    const counts = s.tasks_by_state || {};
    for (const st of STATES) {
      const node = $("state-count-" + st);
      if (node) node.textContent = num(counts[st]);
    }
    const mode = $("mode");
    mode.textContent = "mode: " + s.mode + (s.mode_reason ? " (" + s.mode_reason + ")" : "");
    mode.className = "pill mode-" + s.mode;
    const idle = $("idle");
    idle.textContent = s.why_idle ? "idle: " + s.why_idle.message : (s.running || []).length + " stage(s) running";
    idle.title = s.why_idle ? s.why_idle.reason : "";
    $("workers").textContent = num((s.workers || []).length);
    $("updated").textContent = "updated " + new Date(s.generated_at || Date.now()).toLocaleTimeString();
    const hours = (s.window && s.window.hours) || 24;
    for (const w of document.querySelectorAll(".window")) w.textContent = "(" + hours + " h)";

    // Tasks by state.
    const total = STATES.reduce((n, st) => n + (counts[st] || 0), 0);
    chartPanel("panel-states", total > 0);
    chart("chart-states", "bar", {
      labels: STATES,
      datasets: [{ label: "tasks", data: STATES.map((st) => counts[st] || 0), backgroundColor: STATES.map((st) => STATE_COLORS[st]) }],
    }, { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    // Quality gates.
    const g = s.quality_gates || {};
    const byGate = g.by_gate || [];
    $("gate-rate").textContent = g.verdicts ? pct(g.approval_rate) : "–";
    $("gate-summary").textContent = g.verdicts
      ? "approve " + pct(g.approval_rate) + " · reject " + pct(g.rejection_rate) + " · " + g.verdicts + " verdicts"
      : "";
    chartPanel("panel-gates", byGate.length > 0);
    chart("chart-gates", "bar", {
      labels: byGate.map((x) => x.gate),
      datasets: [
        { label: "approved", data: byGate.map((x) => x.approvals), backgroundColor: "#1f9d55" },
        { label: "rejected", data: byGate.map((x) => x.rejections), backgroundColor: "#d64545" },
        { label: "escalated", data: byGate.map((x) => x.escalations), backgroundColor: "#8a5cd1" },
      ],
    }, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } });

    // Time per stage and the bottleneck.
    const stages = s.stage_durations || [];
    const bottleneck = s.bottleneck_stage;
    $("bottleneck").textContent = bottleneck
      ? "bottleneck: " + bottleneck.stage + " (" + pct(bottleneck.share) + " of the time)"
      : "";
    chartPanel("panel-stages", stages.length > 0);
    chart("chart-stages", "bar", {
      labels: stages.map((x) => x.stage),
      datasets: [
        {
          label: "total (s)",
          data: stages.map((x) => x.total_ms / 1000),
          backgroundColor: stages.map((x) => (bottleneck && x.stage === bottleneck.stage ? "#d64545" : "#3b6fd8")),
        },
        { label: "mean (s)", data: stages.map((x) => x.mean_ms / 1000), backgroundColor: "#9db4e8" },
      ],
    }, { scales: { y: { beginAtZero: true } } });

    // Tokens and cost.
    const u = s.token_usage || {};
    $("usage-total").textContent = num(u.tokens) + " · " + usd(u.cost_usd || 0);
    usageChart("panel-usage-provider", "chart-usage-provider", u.by_provider || [], "provider");
    usageChart("panel-usage-stage", "chart-usage-stage", (u.by_stage || []).filter((x) => x.stage), "stage");

    // Recent activity.
    fill("panel-recent", $("recent"), (s.recent_tasks || []).map((t) => el("tr", { "data-task-id": t.id, "data-state": t.state },
      el("td", { title: t.id + (t.last_error ? "\n" + t.last_error : "") }, t.title),
      el("td", {}, t.stage),
      el("td", {}, el("span", { class: "state state-" + t.state }, t.state.replace("_", " "))),
      el("td", {}, t.attempts + "/" + t.max_attempts),
      el("td", {}, t.worker || ""),
      el("td", { title: t.last_event_at }, ago(t.last_event_at)),
    )));
    $("recent").closest("table").hidden = (s.recent_tasks || []).length === 0;

    // Alerts.
    fill("panel-alerts", $("alerts"), (s.alerts || []).map((a) => el("li", { title: a.detail ? JSON.stringify(a.detail) : a.summary },
      el("span", { class: "sev sev-" + a.severity }, a.severity), " ", a.summary, " ",
      el("span", { class: "muted" }, (a.count > 1 ? "×" + a.count + " · " : "") + ago(a.last_at)),
    )));

    // Resolution loops.
    const why = { blocked: "blocked", gate_rejections: "rejected by gates", same_failure: "same failure", attempts: "attempts" };
    fill("panel-loops", $("loops"), (s.active_loops || []).map((t) => el("li", { title: (t.last_error || "") },
      el("span", { class: "state state-" + t.state }, why[t.why] || t.why), " ", t.title, " ",
      el("span", { class: "muted" }, t.stage + " · attempt " + t.attempts + "/" + t.max_attempts +
        (t.gate_rejections ? " · " + t.gate_rejections + " rejections" : "")),
    )));

    // Playbook runs.
    fill("panel-runs", $("runs"), (s.playbook_runs || []).map((r) => el("li", { title: r.error || r.id },
      el("span", { class: "state state-" + (r.status === "succeeded" ? "done" : r.status === "failed" ? "failed" : "running") }, r.status), " ",
      r.plugin + "@" + r.version, " ", el("span", { class: "muted" }, r.mode + " · " + r.trigger + " · " + ago(r.created_at)),
    )));

    // Breakers.
    fill("panel-breakers", $("breakers"), (s.breakers || []).map((b) => el("li", { title: b.reason || "" },
      el("span", { class: "br-" + b.state }, b.state), " ", b.name,
      b.failures ? el("span", { class: "muted" }, " · " + b.failures + " failures") : null,
    )));

    // Top errors.
    fill("panel-errors", $("errors"), (s.top_errors || []).map((e) => el("li", { title: e.sample },
      el("b", {}, "×" + e.count), " ", e.sample, " ", el("span", { class: "muted" }, ago(e.last_at)),
    )));
  }

  function usageChart(panelId, id, rows, dim) {
    chartPanel(panelId, rows.length > 0);
    chart(id, "bar", {
      labels: rows.map((x) => x[dim] || "(none)"),
      datasets: [
        { label: "tokens", data: rows.map((x) => x.tokens), backgroundColor: "#3b6fd8", yAxisID: "y" },
        { label: "cost (USD)", data: rows.map((x) => x.cost_usd), backgroundColor: "#d98e04", yAxisID: "cost" },
      ],
    }, {
      scales: {
        x: { ticks: { autoSkip: false } },
        y: { beginAtZero: true, position: "left" },
        cost: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } },
      },
    });
  }

  // ---- wiring ---------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (!t) return;
      localStorage.setItem("warden.token", t);
      $("token").value = "";
      start();
    });
    $("signout").addEventListener("click", signOut);
    $("workspace").addEventListener("change", (ev) => switchWorkspace(ev.target.value));
    window.addEventListener("hashchange", () => { readFragment(); start(); });
    readFragment();
    start();
  });
})();
