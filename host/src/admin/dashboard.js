// lbx dashboard: polls the admin API every second and shows what it answers. Rates come from
// the differences between polls (kept for a few minutes in memory); the API itself only holds
// counters. Served as /dashboard.js (the page's policy allows no inline script).
//
// Every number shown sits in an element with `data-field` (and `data-backend-id` on backend
// rows) and, when it is known, its raw value in `data-value`; a field this lbx does not report
// shows "–". Tests and scripts read the page through these attributes.
"use strict";

(() => {
  const POLL_MS = 1000;
  const HISTORY_MS = 5 * 60 * 1000;
  const RATE_WINDOW_MS = 5 * 1000;
  const ERROR_WINDOW_MS = 10 * 1000;
  const LATENCY_WINDOW_MS = 10 * 1000;
  const SHARE_WINDOW_MS = 60 * 1000;
  const TOKEN_KEY = "lbx-admin-token";
  const DASH = "–";

  const $ = (selector, root = document) => root.querySelector(selector);
  const main = $("#dashboard");

  // ---- the admin API, with the bearer token when it asks for one ----

  let token = sessionStorage.getItem(TOKEN_KEY);
  let tokenDeclined = false;

  // Asked at most once per refusal: a cancelled prompt stops asking until the button is used.
  function askForToken(refused) {
    if (tokenDeclined) return false;
    const entered = window.prompt(
      refused ? "The admin token was refused. Admin token:" : "This lbx needs its admin token:");
    if (entered === null || entered.trim() === "") {
      tokenDeclined = true;
      $("#token-button").hidden = false;
      return false;
    }
    token = entered.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#token-button").hidden = true;
    return true;
  }

  async function api(path, options = {}) {
    const sentWith = token;
    const headers = Object.assign({}, options.headers);
    if (sentWith) headers.Authorization = "Bearer " + sentWith;
    const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
    if (response.status === 401) {
      // Another request may have got the token while this one was out: just send it again.
      if (token !== sentWith || askForToken(Boolean(sentWith))) return api(path, options);
    }
    return response;
  }

  // { status, json } — json is null unless the answer was a 2xx with a JSON body.
  async function getJson(path) {
    const response = await api(path);
    const json = response.ok ? await response.json() : null;
    return { status: response.status, json };
  }

  // ---- history and what is computed from it ----

  // Each sample: { t (ms, monotonic), backends: Map(id -> backend), plugin }.
  const samples = [];

  function record(backendsJson, pluginJson) {
    const backends = new Map();
    for (const b of backendsJson.backends || []) backends.set(b.id, b);
    const now = performance.now();
    samples.push({ t: now, backends, plugin: pluginJson });
    while (samples.length > 2 && now - samples[1].t >= HISTORY_MS) samples.shift();
  }

  // The newest sample and the newest one at least `ms` older (or the oldest there is).
  function windowPair(ms) {
    if (samples.length < 2) return null;
    const newest = samples[samples.length - 1];
    let old = samples[0];
    for (let i = samples.length - 2; i >= 0; i--) {
      if (newest.t - samples[i].t >= ms) { old = samples[i]; break; }
    }
    return [old, newest];
  }

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  // new - old for a counter; null if either is missing or it went backwards (a restart).
  function delta(newValue, oldValue) {
    if (!isNum(newValue) || !isNum(oldValue) || newValue < oldValue) return null;
    return newValue - oldValue;
  }

  function backendDelta(pair, id, read) {
    if (!pair) return null;
    const [old, newest] = pair;
    const a = old.backends.get(id), b = newest.backends.get(id);
    if (!a || !b) return null;
    return delta(read(b), read(a));
  }

  function requestRate(id) {
    const pair = windowPair(RATE_WINDOW_MS);
    const d = backendDelta(pair, id, (b) => b.requests);
    return d === null ? null : d / ((pair[1].t - pair[0].t) / 1000);
  }

  function share(id) {
    const pair = windowPair(SHARE_WINDOW_MS);
    if (!pair) return null;
    let total = 0;
    for (const other of pair[1].backends.keys()) {
      total += backendDelta(pair, other, (b) => b.requests) || 0;
    }
    const mine = backendDelta(pair, id, (b) => b.requests);
    return mine === null || total === 0 ? null : mine / total;
  }

  const sumOf = (values) => (values || []).reduce((sum, v) => sum + (isNum(v) ? v : 0), 0);

  // (5xx + backend errors) over (responses + backend errors): every attempt that reached this
  // backend or failed on it, so the rate stays within 0–100 %.
  function errorRate(id) {
    const pair = windowPair(ERROR_WINDOW_MS);
    const responses = (b) => b.traffic && b.traffic.responses && sumOf(Object.values(b.traffic.responses));
    const failures = (b) => b.traffic && b.traffic.responses &&
      sumOf([b.traffic.responses["5xx"], b.traffic.backend_errors]);
    const errors = (b) => b.traffic && b.traffic.backend_errors;
    const dResponses = backendDelta(pair, id, responses);
    const dFailures = backendDelta(pair, id, failures);
    const dErrors = backendDelta(pair, id, errors) || 0;
    if (dResponses === null || dFailures === null || dResponses + dErrors === 0) return null;
    return dFailures / (dResponses + dErrors);
  }

  // The q-quantile of the upstream latency from histogram bucket differences, interpolated
  // within a bucket as Prometheus' histogram_quantile does; past the last bound, that bound.
  function latencyQuantile(id, q) {
    const pair = windowPair(LATENCY_WINDOW_MS);
    if (!pair) return null;
    const a = pair[0].backends.get(id), b = pair[1].backends.get(id);
    const bounds = b && b.traffic && b.traffic.latency_bounds_seconds;
    const now = b && b.traffic && b.traffic.upstream_latency_counts;
    const then = a && a.traffic && a.traffic.upstream_latency_counts;
    if (!Array.isArray(bounds) || !Array.isArray(now) || !Array.isArray(then) ||
        now.length !== then.length || now.length < bounds.length) return null;
    const counts = now.map((n, i) => n - then[i]);
    if (counts.some((c) => c < 0)) return null;
    const total = sumOf(counts);
    if (total === 0) return null;
    const rank = q * total;
    let below = 0;
    for (let i = 0; i < counts.length; i++) {
      if (below + counts[i] >= rank && counts[i] > 0) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        const lower = i === 0 ? 0 : bounds[i - 1];
        return lower + (bounds[i] - lower) * ((rank - below) / counts[i]);
      }
      below += counts[i];
    }
    return bounds[bounds.length - 1];
  }

  function pluginRates() {
    const pair = windowPair(RATE_WINDOW_MS);
    const result = { decisionsPerS: null, fallbackShare: null, usPerDecision: null };
    if (!pair) return result;
    const [old, newest] = pair;
    const a = old.plugin || {}, b = newest.plugin || {};
    const seconds = (newest.t - old.t) / 1000;
    // Counters of a new plugin version start again from zero.
    const samePlugin = a.sha256 === b.sha256;
    const decisions = samePlugin ? delta(b.decisions, a.decisions) : null;
    if (decisions !== null) result.decisionsPerS = decisions / seconds;
    if (b.decided_by && a.decided_by) {
      const all = delta(sumOf(Object.values(b.decided_by)), sumOf(Object.values(a.decided_by)));
      // Every decision the plugin did not make: none loaded, no opinion, failed, or disabled.
      const fallbackOf = (d) => sumOf([d.builtin, d.fallback_no_opinion, d.fallback_after_error, d.fallback_plugin_disabled]);
      const fallback = delta(fallbackOf(b.decided_by), fallbackOf(a.decided_by));
      if (all && fallback !== null) result.fallbackShare = fallback / all;
    }
    const count = samePlugin ? delta(b.decision_count, a.decision_count) : null;
    const secondsSpent = samePlugin ? delta(b.decision_seconds_sum, a.decision_seconds_sum) : null;
    if (count && secondsSpent !== null) result.usPerDecision = (secondsSpent / count) * 1e6;
    return result;
  }

  // ---- formatting and writing fields ----

  const fmtCount = (v) => Math.round(v).toLocaleString("en-US");
  const fmtRate = (v) => (v >= 100 ? fmtCount(v) : v.toFixed(1));
  const fmtPercent = (v) => (v * 100).toFixed(1) + " %";
  function fmtSeconds(s) {
    if (s >= 1) return s.toFixed(2) + " s";
    if (s >= 0.001) return (s * 1000).toFixed(s >= 0.01 ? 0 : 1) + " ms";
    return Math.round(s * 1e6) + " µs";
  }
  function fmtSpan(ms) {
    const s = Math.round(ms / 1000);
    return s < 90 ? s + " s" : (s / 60).toFixed(1) + " min";
  }

  // Show `value` formatted (or "–" when it is unknown) and keep the raw value in data-value.
  function setField(element, value, format = String) {
    if (!element) return;
    const known = value !== null && value !== undefined && !(typeof value === "number" && !isFinite(value));
    element.textContent = known ? format(value) : DASH;
    if (known) element.dataset.value = String(value);
    else delete element.dataset.value;
  }
  const field = (root, name) => root.querySelector(`[data-field="${name}"]`);

  // ---- backends ----

  // Colours follow the order in which ids were first seen, so a backend keeps its colour.
  const colours = new Map();
  function colourOf(id) {
    if (!colours.has(id)) colours.set(id, colours.size % 8);
    return "c" + colours.get(id);
  }

  function stateOf(b) {
    if (typeof b.state === "string") return b.state;
    if (b.draining) return "draining";
    if (b.ejected) return "ejected";
    if (b.down || b.usable === false) return "down";
    return "up";
  }

  const BACKEND_FIELDS = ["id", "address", "state", "weight", "in_flight", "requests", "rps",
    "share", "error_rate", "p50", "p99"];

  function backendRow(id) {
    const row = document.createElement("tr");
    row.dataset.backendId = id;
    for (const name of BACKEND_FIELDS) {
      const cell = document.createElement("td");
      cell.dataset.field = name;
      if (!["id", "address", "state"].includes(name)) cell.className = "num";
      if (name === "address") cell.classList.add("mono");
      if (name === "id") {
        const swatch = document.createElement("span");
        swatch.className = "swatch " + colourOf(id);
        const text = document.createElement("span");
        text.dataset.field = "id";
        cell.removeAttribute("data-field");
        cell.append(swatch, text);
      }
      if (name === "state") {
        const badge = document.createElement("span");
        badge.dataset.field = "state";
        cell.removeAttribute("data-field");
        cell.append(badge);
      }
      row.append(cell);
    }
    // What the backend reports of itself (`[signals]`): one line per signal, shown only when
    // lbx scrapes some.
    const signals = document.createElement("td");
    signals.className = "signals mono";
    signals.dataset.signals = "";
    signals.hidden = true;
    row.append(signals);
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.backendId = id;
    actions.append(button);
    row.append(actions);
    return row;
  }

  function renderBackends(backends) {
    const tbody = $("#backend-rows");
    const seen = new Set();
    for (const b of backends) {
      seen.add(b.id);
      let row = [...tbody.rows].find((r) => r.dataset.backendId === b.id);
      if (!row) row = backendRow(b.id);
      tbody.append(row); // keeps the API's order
      const state = stateOf(b);
      row.dataset.state = state;
      setField(field(row, "id"), b.id);
      setField(field(row, "address"), b.address);
      const badge = field(row, "state");
      setField(badge, state);
      badge.className = "state state-" + state;
      setField(field(row, "weight"), isNum(b.weight) ? b.weight : null);
      setField(field(row, "in_flight"), isNum(b.in_flight) ? b.in_flight : null, fmtCount);
      setField(field(row, "requests"), isNum(b.requests) ? b.requests : null, fmtCount);
      setField(field(row, "rps"), requestRate(b.id), fmtRate);
      setField(field(row, "share"), share(b.id), fmtPercent);
      setField(field(row, "error_rate"), errorRate(b.id), fmtPercent);
      setField(field(row, "p50"), latencyQuantile(b.id, 0.5), fmtSeconds);
      setField(field(row, "p99"), latencyQuantile(b.id, 0.99), fmtSeconds);
      renderSignals(row.querySelector("td[data-signals]"), b.signals);
      const button = row.querySelector("button");
      const drain = !b.draining;
      button.dataset.action = drain ? "drain" : "undrain";
      button.textContent = drain ? "drain" : "undrain";
    }
    for (const row of [...tbody.rows]) {
      if (!seen.has(row.dataset.backendId)) row.remove();
    }
    const anySignals = backends.some((b) => b.signals);
    for (const el of document.querySelectorAll("#backends .signals")) el.hidden = !anySignals;
  }

  // One line per signal, `name value`, each value in its own `signal:<name>` field (raw value
  // in data-value), then the reading's age; "–" for a signal with no value.
  function renderSignals(cell, signals) {
    if (!signals) {
      cell.replaceChildren();
      return;
    }
    const names = Object.keys(signals.values);
    if (cell.dataset.names !== names.join("\n")) {
      cell.replaceChildren();
      for (const name of names) {
        const line = document.createElement("div");
        const label = document.createElement("span");
        label.className = "muted";
        label.textContent = name + " ";
        const value = document.createElement("span");
        value.dataset.field = "signal:" + name;
        line.append(label, value);
        cell.append(line);
      }
      const age = document.createElement("div");
      age.className = "muted";
      const ageValue = document.createElement("span");
      ageValue.dataset.field = "signals_age";
      age.append("age ", ageValue);
      cell.append(age);
      cell.dataset.names = names.join("\n");
    }
    // Selectors may hold quotes (`q{model="a"}`): find the fields by value, not by a CSS query.
    const values = [...cell.querySelectorAll("[data-field]")];
    for (const name of names) {
      const element = values.find((el) => el.dataset.field === "signal:" + name);
      setField(element, signals.values[name], fmtSignal);
    }
    setField(field(cell, "signals_age"), signals.age_ms === null ? null : signals.age_ms / 1000, fmtSeconds);
    cell.title = signals.last_error ? "last scrape failed: " + signals.last_error : "";
  }
  const fmtSignal = (v) => (Number.isInteger(v) ? fmtCount(v) : v.toPrecision(3));

  // ---- the traffic share chart: stacked areas of each backend's share of requests ----

  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function renderChart(ids) {
    const chart = $("#share-chart");
    // Drawn in the chart's own pixels, so the labels are not stretched.
    const [width, height, left, top, bottom] = [chart.clientWidth || 800, 160, 40, 8, 8];
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const y = (share) => height - bottom - share * (height - top - bottom);
    const children = [];
    for (const level of [0, 0.5, 1]) {
      children.push(svg("line", { x1: left, x2: width, y1: y(level), y2: y(level), class: "grid" }));
      children.push(svg("text", { x: 4, y: y(level) + 4 }, `${level * 100} %`));
    }
    const newest = samples[samples.length - 1];
    // One point per interval between consecutive polls: each backend's share of its requests.
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const [a, b] = [samples[i - 1], samples[i]];
      const counts = ids.map((id) => {
        const d = delta((b.backends.get(id) || {}).requests, (a.backends.get(id) || {}).requests);
        return d || 0;
      });
      const total = sumOf(counts);
      points.push({ t: b.t, shares: counts.map((c) => (total ? c / total : 0)) });
    }
    if (points.length >= 2) {
      const span = Math.max(newest.t - points[0].t, 1);
      const x = (t) => left + ((t - points[0].t) / span) * (width - left);
      const base = points.map(() => 0);
      ids.forEach((id, k) => {
        const top = points.map((p, i) => base[i] + p.shares[k]);
        const upper = points.map((p, i) => `${x(p.t).toFixed(1)},${y(top[i]).toFixed(1)}`);
        const lower = points.map((p, i) => `${x(p.t).toFixed(1)},${y(base[i]).toFixed(1)}`).reverse();
        children.push(svg("polygon", { points: upper.concat(lower).join(" "), class: colourOf(id) },
          undefined));
        top.forEach((v, i) => { base[i] = v; });
      });
      setField(field(main, "history_span"), span, fmtSpan);
    }
    chart.replaceChildren(...children);
    $("#legend").replaceChildren(...ids.map((id) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch " + colourOf(id);
      item.append(swatch, id);
      return item;
    }));
  }

  // ---- plugin and reloads ----

  function renderPlugin(plugin) {
    const root = $("#plugin");
    const rates = pluginRates();
    setField(field(root, "plugin_state"), plugin.state || null);
    setField(field(root, "plugin_name"), plugin.path ? plugin.path.split("/").pop() : null);
    const sha = field(root, "sha256");
    setField(sha, plugin.sha256 || null, (v) => v.slice(0, 12));
    sha.title = plugin.sha256 || "";
    setField(field(root, "loaded_at"), plugin.loaded_at || null,
      (v) => new Date(v).toLocaleString("sv-SE"));
    setField(field(root, "decisions_per_s"), rates.decisionsPerS, fmtRate);
    setField(field(root, "fallback_share"), rates.fallbackShare, fmtPercent);
    setField(field(root, "failures"), isNum(plugin.failures) ? plugin.failures : null, fmtCount);
    setField(field(root, "us_per_decision"), rates.usPerDecision, (v) => v.toFixed(1));
    const refused = plugin.last_refused_reload;
    setField(field(root, "last_refused_reload"),
      refused ? (typeof refused === "string" ? refused : JSON.stringify(refused)) : "none");
  }

  function renderCanary(canary) {
    const root = $("#canary");
    $("#canary-note").textContent = canary ? "" :
      "No canary. Start one with POST /admin/plugin/canary.";
    setField(field(root, "canary_state"), canary ? canary.state : null);
    setField(field(root, "canary_path"), canary ? canary.path.split("/").pop() : null);
    setField(field(root, "canary_share"), canary ? canary.share_percent + " %" : null);
    setField(field(root, "canary_step"), canary ?
      `${canary.step + 1} of ${canary.steps.length} (${canary.steps.join(", ")} %), ` +
      `${canary.step_elapsed_s.toFixed(0)} of ${canary.step_duration_s.toFixed(0)} s` : null);
    setField(field(root, "canary_verdict"), canary ? canary.verdict : null);
    const sides = canary ? [["live", canary.live], ["canary", canary.candidate]] : [];
    $("#canary-rows").replaceChildren(...sides.map(([name, side]) => {
      const row = document.createElement("tr");
      row.dataset.side = name;
      for (const [key, value, cls] of [
        ["side", name, ""], ["decisions", fmtCount(side.decisions), "num"],
        ["error_rate", fmtPercent(side.error_rate), "num"],
        ["fallback_rate", fmtPercent(side.fallback_rate), "num"],
        ["p99", isNum(side.p99_ms) ? String(side.p99_ms) : DASH, "num"],
      ]) {
        const cell = document.createElement("td");
        cell.dataset.field = key;
        cell.textContent = value;
        if (cls) cell.className = cls;
        row.append(cell);
      }
      return row;
    }));
    const story = canary ? canary.transitions.slice(-6) : [];
    $("#canary-story").replaceChildren(...story.map((t) => {
      const item = document.createElement("li");
      item.textContent = `${new Date(t.at).toLocaleTimeString("en-GB")} ${t.what}: ${t.detail}`;
      return item;
    }));
  }

  function renderShadows(shadows) {
    const tbody = $("#shadow-rows");
    $("#shadows-note").textContent = shadows.length ? "" :
      "No shadow plugins. Start one with [[plugin.shadow]] or POST /admin/plugin/shadow.";
    tbody.replaceChildren(...shadows.map((s) => {
      const row = document.createElement("tr");
      row.dataset.shadow = s.name;
      const errors = Object.values(s.errors || {}).reduce((a, b) => a + b, 0);
      const shares = (s.shares || []).map((x) =>
        `${x.choice} ${fmtPercent(x.live)} → ${fmtPercent(x.shadow)}`).join(", ");
      const disagreements = (s.confusion || []).filter((c) => c.live !== c.shadow)
        .sort((x, y) => y.count - x.count).slice(0, 4)
        .map((c) => `${c.live} → ${c.shadow}: ${fmtCount(c.count)}`).join(", ");
      for (const [name, value, cls] of [
        ["name", s.name, ""], ["sample", fmtPercent(s.sample), "num"],
        ["sha256", (s.sha256 || "").slice(0, 12), "mono"],
        ["decisions", fmtCount(s.decisions), "num"],
        ["agreement", isNum(s.agreement) ? fmtPercent(s.agreement) : DASH, "num"],
        ["dropped", fmtCount(s.dropped), "num"], ["errors", fmtCount(errors), "num"],
        ["us_per_decision", isNum(s.us_per_decision) ? s.us_per_decision.toFixed(1) : DASH, "num"],
        ["shares", shares || DASH, "detail"], ["disagreements", disagreements || "none", "detail"],
      ]) {
        const cell = document.createElement("td");
        cell.dataset.field = name;
        cell.textContent = value;
        if (cls) cell.className = cls;
        row.append(cell);
      }
      return row;
    }));
  }

  // Fleet mode only: /admin/fleet answers 404 on a node that runs alone, and the panel stays
  // hidden.
  function renderFleet(answer) {
    const section = $("#fleet");
    section.hidden = !answer.json;
    if (!answer.json) return;
    const fleet = answer.json;
    const nodes = fleet.nodes || [];
    $('[data-field="fleet_summary"]').textContent =
      `${nodes.length} live node${nodes.length === 1 ? "" : "s"}, shared state at revision ` +
      `${fleet.shared_revision}, this node ${fleet.node}` +
      (fleet.connected ? "" : ` — store unreachable: ${fleet.store_error || "connecting"}`);
    $("#fleet-rows").replaceChildren(...nodes.map((n) => {
      const row = document.createElement("tr");
      row.dataset.fleetNode = n.node;
      const refused = n.state === "refusing" && n.refused
        ? `revision ${n.refused.revision}: ${n.refused.reason}` : DASH;
      for (const [name, value, cls] of [
        ["node", n.node, ""], ["state", n.state, "result-" + n.state],
        ["applied_revision", n.applied_revision, "num"], ["lag", n.lag, "num"],
        ["plugin", (n.plugin_sha256 || DASH).slice(0, 12), "mono"],
        ["store", n.connected ? "connected" : "unreachable", ""],
        ["refused", refused, "detail"],
      ]) {
        const cell = document.createElement("td");
        cell.dataset.field = name;
        cell.textContent = value === undefined || value === null ? DASH : String(value);
        if (cls) cell.className = cls;
        row.append(cell);
      }
      return row;
    }));
  }

  function renderReloads(answer) {
    const tbody = $("#reload-rows");
    const note = $("#reloads-note");
    if (!answer.json) {
      tbody.replaceChildren();
      note.textContent = answer.status === 404
        ? "This lbx does not report its reload history (no /admin/reloads)."
        : `/admin/reloads answered ${answer.status}.`;
      return;
    }
    const reloads = answer.json.reloads || [];
    note.textContent = reloads.length ? "" : "No reloads since start.";
    tbody.replaceChildren(...reloads.map((r) => {
      const row = document.createElement("tr");
      row.dataset.reload = "";
      for (const [name, value] of [["at", r.at], ["what", r.what], ["result", r.result],
        ["detail", r.detail]]) {
        const cell = document.createElement("td");
        cell.dataset.field = name;
        cell.textContent = value === undefined || value === null ? DASH : String(value);
        if (name === "at" && value) cell.textContent = new Date(value).toLocaleString("sv-SE");
        if (name === "result") cell.className = "result-" + value;
        if (name === "detail") cell.className = "detail";
        row.append(cell);
      }
      return row;
    }));
  }

  // ---- the poll loop ----

  function setStatus(text, ok) {
    const status = $("#status");
    status.textContent = text;
    status.className = "status " + (ok ? "ok" : "error");
  }

  async function poll() {
    const started = performance.now();
    try {
      const [backends, plugin, reloads, fleet] = await Promise.all(
        [getJson("/admin/backends"), getJson("/admin/plugin"), getJson("/admin/reloads"),
          getJson("/admin/fleet")]);
      if (!backends.json) {
        setStatus(backends.status === 401 ? "admin token required" :
          `/admin/backends answered ${backends.status}`, false);
        return;
      }
      record(backends.json, plugin.json);
      const list = backends.json.backends || [];
      renderBackends(list);
      renderChart(list.map((b) => b.id));
      setField(field(main, "generation"), backends.json.generation);
      const pair = windowPair(RATE_WINDOW_MS);
      const total = pair ? sumOf(list.map((b) => backendDelta(pair, b.id, (x) => x.requests)))
        / ((pair[1].t - pair[0].t) / 1000) : null;
      setField(field(main, "total_rps"), total, fmtRate);
      if (plugin.json) {
        renderPlugin(plugin.json);
        renderShadows(plugin.json.shadows || []);
        renderCanary(plugin.json.canary || null);
      }
      renderReloads(reloads);
      renderFleet(fleet);
      setStatus("updated " + new Date().toLocaleTimeString("en-GB"), true);
      main.dataset.polls = String(Number(main.dataset.polls) + 1);
    } catch (error) {
      setStatus("lbx unreachable: " + error.message, false);
    } finally {
      setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  // ---- drain / undrain: the API decides (token, whether it supports it) ----

  $("#backend-rows").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { backendId, action } = button.dataset;
    const message = $("#action-message");
    button.disabled = true;
    try {
      const response = await api("/admin/backends/" + encodeURIComponent(backendId), {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ drain: action === "drain" }),
      });
      const text = response.ok
        ? `${action === "drain" ? "Draining" : "Undrained"} ${backendId}.`
        : `${action} ${backendId}: lbx answered ${response.status} ${(await response.text()).trim()}`;
      message.textContent = text;
      message.dataset.status = String(response.status);
    } catch (error) {
      message.textContent = `${action} ${backendId}: ${error.message}`;
      message.dataset.status = "0";
    } finally {
      button.disabled = false;
    }
  });

  $("#token-button").addEventListener("click", () => {
    tokenDeclined = false;
    askForToken(false);
  });

  poll();
})();
