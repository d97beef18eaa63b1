// wsgate dashboard: polls /stats once a second, charts the last minutes
// (seeded from /stats/history) and drives the admin API for drains. Plain
// JavaScript, no dependencies; everything from the server is set as text.
"use strict";

const POLL_MS = 1000;
const WINDOW_MS = 10 * 60 * 1000; // the server keeps ten minutes of samples
const TOKEN_KEY = "wsgate-admin-token";

const state = {
  samples: [], // {t, active, handshakes, rejects, bytes_up, bytes_down}
  stats: null,
  prev: null, // the stats before, for per-second rates of the tables
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  failures: 0,
};

const $ = (id) => document.getElementById(id);

// ---- formatting

function fmtInt(n) {
  return Math.round(n).toLocaleString("en-US");
}

function fmtRate(n) {
  if (!isFinite(n)) return "–";
  if (n >= 100) return fmtInt(n);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2).replace(/\.?0+$/, "") || "0";
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? Math.round(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
}

function fmtDuration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return d + "d " + h + "h";
  if (h > 0) return h + "h " + m + "m";
  if (m > 0) return m + "m " + (s % 60) + "s";
  return s + "s";
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

// ---- data

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status + " " + r.statusText);
  return r.json();
}

function sampleOf(st) {
  return {
    t: Date.parse(st.time),
    active: st.tunnels.active,
    handshakes: st.handshakes.ok + st.handshakes.plain_ok,
    rejects: st.handshakes.rejected_total,
    bytes_up: st.bytes.up,
    bytes_down: st.bytes.down,
  };
}

function addSample(s) {
  const last = state.samples[state.samples.length - 1];
  if (last && s.t <= last.t) return;
  state.samples.push(s);
  const cut = s.t - WINDOW_MS;
  while (state.samples.length && state.samples[0].t < cut) state.samples.shift();
}

// rate of field between the last two samples, per second.
function rate(field) {
  const n = state.samples.length;
  if (n < 2) return NaN;
  const a = state.samples[n - 2], b = state.samples[n - 1];
  const dt = (b.t - a.t) / 1000;
  return dt > 0 ? Math.max(0, (b[field] - a[field]) / dt) : NaN;
}

// series of per-second rates of a cumulative field.
function rates(field) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1], b = state.samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt > 0) out.push({ t: b.t, v: Math.max(0, (b[field] - a[field]) / dt) });
  }
  return out;
}

async function refresh() {
  try {
    const st = await getJSON("stats");
    state.prev = state.stats;
    state.stats = st;
    addSample(sampleOf(st));
    state.failures = 0;
    setText("conn", "");
    render();
  } catch (e) {
    state.failures++;
    setText("conn", "admin API unreachable (" + e.message + ")");
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

async function start() {
  try {
    const h = await getJSON("stats/history");
    for (const s of h.samples) addSample(s);
  } catch (e) {
    // The page works without the history; the chart starts empty.
  }
  poll();
}

// ---- rendering

function render() {
  const st = state.stats;
  setText("version", st.version);
  setText("uptime", "up " + fmtDuration(st.uptime_seconds));
  renderNode(st.node);
  setText("active", fmtInt(st.tunnels.active));
  setText("total", fmtInt(st.tunnels.total) + " since start");
  setText("hs-rate", fmtRate(rate("handshakes")));
  setText("hs-total", fmtInt(st.handshakes.ok) + " upgraded, " + fmtInt(st.handshakes.plain_ok) + " plain");
  const up = rate("bytes_up"), down = rate("bytes_down");
  setText("bytes-rate", isFinite(up) ? fmtBytes(up) + " · " + fmtBytes(down) : "–");
  setText("bytes-total", fmtBytes(st.bytes.up) + " up, " + fmtBytes(st.bytes.down) + " down");
  setText("rej-rate", fmtRate(rate("rejects")));
  setText("rej-total", fmtInt(st.handshakes.rejected_total) + " since start");
  setText("pipes", fmtInt(st.pipes_in_use));
  setText("conns", fmtInt(st.connections.accepted) + " accepted, " + fmtInt(st.connections.accept_errors) + " accept errors");
  renderBackends(st.backends);
  renderCounts("rejects", st.handshakes.rejected, state.prev && state.prev.handshakes.rejected);
  renderCounts("closes", st.closes, state.prev && state.prev.closes);
  renderCharts();
}

function renderNode(node) {
  const badge = $("node-state");
  const word = node.ready ? "ready" : node.reason;
  let text = word;
  if (node.drain) {
    text += node.drain.closing ? " · closing" : node.drain.deadline ? " · closes at " + new Date(node.drain.deadline).toLocaleTimeString() : "";
  }
  setText("node-state", text);
  badge.className = "badge " + word;
  $("node-drain").hidden = node.draining || node.reason === "stopping";
  $("node-undrain").hidden = !node.draining;
}

const COLUMNS = ["pool", "address", "state", "weight", "active", "total", "failures", "drain", "actions"];

function renderBackends(list) {
  const tbody = $("backends").tBodies[0];
  const seen = new Set();
  for (const b of list) {
    const key = b.pool + " " + b.address;
    seen.add(key);
    let tr = tbody.querySelector('tr[data-key="' + CSS.escape(key) + '"]');
    if (!tr) tr = newBackendRow(tbody, b, key);
    const c = tr.cells;
    c[2].firstChild.textContent = b.state;
    c[2].firstChild.className = "badge " + b.state;
    tr.dataset.state = b.state;
    setCell(c[3], b.effective_weight < b.weight ? b.weight + " (" + b.effective_weight + ")" : String(b.weight));
    setCell(c[4], fmtInt(b.active));
    setCell(c[5], fmtInt(b.total));
    setCell(c[6], fmtInt(b.failures));
    renderDrain(c[7], b.drain);
    c[8].querySelector('[data-action="drain"]').hidden = b.state === "draining";
    c[8].querySelector('[data-action="undrain"]').hidden = b.state !== "draining";
  }
  for (const tr of Array.from(tbody.rows)) {
    if (tr.dataset.key && !seen.has(tr.dataset.key)) tr.remove();
  }
  const empty = tbody.querySelector("tr.empty");
  if (list.length === 0 && !empty) {
    const tr = tbody.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = COLUMNS.length;
    td.textContent = "no backends";
  } else if (list.length > 0 && empty) {
    empty.remove();
  }
}

function newBackendRow(tbody, b, key) {
  const tr = tbody.insertRow();
  tr.dataset.key = key;
  tr.dataset.pool = b.pool;
  tr.dataset.address = b.address;
  for (const col of COLUMNS) {
    const td = tr.insertCell();
    td.className = col;
    if (["weight", "active", "total", "failures"].includes(col)) td.classList.add("num");
  }
  tr.cells[0].textContent = b.pool;
  tr.cells[1].textContent = b.address;
  tr.cells[1].classList.add("addr");
  tr.cells[2].appendChild(document.createElement("span"));
  for (const action of ["drain", "undrain"]) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.dataset.action = action;
    btn.textContent = action === "drain" ? "Drain" : "Undrain";
    tr.cells[8].appendChild(btn);
  }
  return tr;
}

function setCell(td, text) {
  if (td.textContent !== text) td.textContent = text;
}

function renderDrain(td, d) {
  if (!d) {
    setCell(td, "");
    return;
  }
  const pct = Math.round(d.progress * 100);
  let what = pct + "% · " + fmtInt(d.active) + " left";
  if (d.removing) what += " · removing";
  if (d.deadline) what += " · closes at " + new Date(d.deadline).toLocaleTimeString();
  if (td.dataset.what === what) return;
  td.dataset.what = what;
  const bar = document.createElement("span");
  bar.className = "progress";
  const fill = document.createElement("span");
  fill.style.width = pct + "%";
  bar.appendChild(fill);
  td.replaceChildren(bar, document.createTextNode(what));
}

// renderCounts fills a reason/cause table: non-zero rows, most first.
function renderCounts(id, counts, before) {
  const tbody = $(id).tBodies[0];
  const rows = Object.entries(counts || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const dt = state.prev ? (Date.parse(state.stats.time) - Date.parse(state.prev.time)) / 1000 : 0;
  const trs = [];
  for (const [name, n] of rows) {
    const tr = document.createElement("tr");
    const per = before && dt > 0 ? Math.max(0, (n - (before[name] || 0)) / dt) : NaN;
    for (const [text, num] of [[name, false], [fmtInt(n), true], [fmtRate(per), true]]) {
      const td = tr.insertCell();
      td.textContent = text;
      if (num) td.className = "num";
    }
    trs.push(tr);
  }
  if (trs.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = 3;
    td.textContent = "none";
    trs.push(tr);
  }
  tbody.replaceChildren(...trs);
}

// ---- charts (canvas, drawn by hand)

function renderCharts() {
  const now = state.samples.length ? state.samples[state.samples.length - 1].t : Date.now();
  const span = Math.min(WINDOW_MS, Math.max(60 * 1000, now - (state.samples[0] || { t: now }).t));
  setText("window", "last " + fmtDuration(span / 1000));
  const from = now - span;
  drawChart($("chart-active"), from, now, [{ color: "--c1", points: state.samples.map((s) => ({ t: s.t, v: s.active })), fill: true }], fmtInt, true);
  drawChart($("chart-hs"), from, now, [
    { color: "--c1", points: rates("handshakes") },
    { color: "--c4", points: rates("rejects") },
  ], fmtRate);
  drawChart($("chart-bytes"), from, now, [
    { color: "--c2", points: rates("bytes_up") },
    { color: "--c3", points: rates("bytes_down") },
  ], (v) => fmtBytes(v));
}

// niceStep is a round step (1, 2, 2.5 or 5 × 10^k) of at least v;
// integer series never get a fractional step.
function niceStep(v, integer) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= v) {
      step = m * p;
      break;
    }
  }
  return integer ? Math.max(1, Math.ceil(step)) : step;
}

function drawChart(canvas, from, to, series, fmt, integer) {
  const css = getComputedStyle(document.documentElement);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight; // sized by CSS
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 64, right = 16, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.t >= from) max = Math.max(max, p.v);
  const step = niceStep(max / 4, integer);
  max = step * 4;
  const x = (t) => left + ((t - from) / (to - from)) * pw;
  const y = (v) => top + ph - (v / max) * ph;

  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = css.getPropertyValue("--muted");
  ctx.strokeStyle = css.getPropertyValue("--line");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = step * i, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, yy);
    ctx.lineTo(left + pw, yy);
    ctx.stroke();
    ctx.fillText(fmt(v), left - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const minutes = Math.round((to - from) / 60000);
  const every = minutes > 5 ? 2 : 1;
  for (let m = 0; m <= minutes; m += every) {
    ctx.textAlign = m === 0 ? "right" : "center";
    ctx.fillText(m === 0 ? "now" : "-" + m + "m", x(to - m * 60000), top + ph + 5);
  }
  for (const s of series) {
    const pts = s.points.filter((p) => p.t >= from);
    if (pts.length === 0) continue;
    const color = css.getPropertyValue(s.color).trim();
    ctx.beginPath();
    pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p.v)) : ctx.lineTo(x(p.t), y(p.v))));
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
    if (s.fill) {
      ctx.lineTo(x(pts[pts.length - 1].t), y(0));
      ctx.lineTo(x(pts[0].t), y(0));
      ctx.closePath();
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
}

// ---- actions

function showMessage(text, ok) {
  const el = $("message");
  el.textContent = text;
  el.className = ok ? "ok" : "";
  el.hidden = false;
  clearTimeout(showMessage.timer);
  showMessage.timer = setTimeout(() => (el.hidden = true), ok ? 4000 : 10000);
}

// askToken opens the token dialog; it resolves to the token, or "" when
// cancelled.
function askToken(why) {
  return new Promise((resolve) => {
    const dlg = $("token-dialog"), input = $("token-input");
    setText("token-why", why || "");
    input.value = "";
    dlg.returnValue = "";
    dlg.addEventListener(
      "close",
      () => {
        const tok = dlg.returnValue === "ok" ? input.value.trim() : "";
        input.value = "";
        resolve(tok);
      },
      { once: true },
    );
    dlg.showModal();
    input.focus();
  });
}

// mutate sends a change, asking for the token first when the API needs
// one and again when it was refused.
async function mutate(method, path) {
  // A 401 also says a token is needed: /stats may not have been read yet.
  let needToken = state.stats && state.stats.token_required;
  let why = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    if (needToken && !state.token) {
      state.token = await askToken(why);
      if (!state.token) return null;
      sessionStorage.setItem(TOKEN_KEY, state.token);
    }
    const headers = {};
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    let r;
    try {
      r = await fetch(path, { method, headers });
    } catch (e) {
      showMessage(method + " " + path + ": " + e.message);
      return null;
    }
    const body = await r.json().catch(() => ({}));
    if (r.status === 401 || r.status === 403) {
      if (!needToken && r.status === 403) {
        showMessage(body.error || r.status + " " + r.statusText);
        return null;
      }
      needToken = true;
      state.token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      why = body.error || "token refused";
      continue;
    }
    if (!r.ok) {
      showMessage(body.error || r.status + " " + r.statusText);
      return null;
    }
    return body;
  }
  return null;
}

function drainQuery() {
  const q = new URLSearchParams();
  q.set("deadline", $("deadline").value.trim() || "0");
  q.set("spread", $("spread").value.trim() || "0");
  return q.toString();
}

$("backends").addEventListener("click", async (e) => {
  const btn = e.target.closest("button[data-action]");
  if (!btn) return;
  const tr = btn.closest("tr");
  const addr = tr.dataset.address, pool = tr.dataset.pool;
  const path = "backends/" + encodeURIComponent(addr) + "/" + btn.dataset.action + "?" +
    (btn.dataset.action === "drain" ? drainQuery() + "&" : "") + "pool=" + encodeURIComponent(pool);
  btn.disabled = true;
  const b = await mutate("POST", path);
  btn.disabled = false;
  if (b) {
    showMessage(addr + ": " + b.state, true);
    refresh();
  }
});

$("node-drain").addEventListener("click", async () => {
  if (!window.confirm("Drain this node? It stops accepting connections and /readyz fails at once.")) return;
  const st = await mutate("POST", "drain?" + drainQuery());
  if (st) {
    showMessage("node draining", true);
    refresh();
  }
});

$("node-undrain").addEventListener("click", async () => {
  const st = await mutate("POST", "undrain");
  if (st) {
    showMessage(st.closes_scheduled ? "accepting again; tunnels already scheduled to close still close" : "accepting again", true);
    refresh();
  }
});

window.addEventListener("resize", () => state.stats && renderCharts());

start();
