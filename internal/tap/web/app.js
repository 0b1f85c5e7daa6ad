// relay tap page: one websocket on v1/tap, filters pushed to the relay as
// query parameters, per-stream rates from the relay's "rates" notices.
"use strict";
(function () {
  const MAX_ROWS = 500, HISTORY = 60;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search || location.hash.slice(1));
  const token = params.get("token") || "";
  if (params.get("stream")) $("stream").value = params.get("stream");
  if (params.get("grep")) $("grep").value = params.get("grep");

  let ws = null, paused = false, received = 0, skipped = 0, drops = 0, retry = 500;
  const series = new Map(); // stream -> array of events/s, oldest first
  const colors = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72", "#a5d6ff"];

  function tapURL() {
    const u = new URL("v1/tap", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ rates: "1" });
    const stream = $("stream").value.trim();
    if (stream && stream !== "*") q.append("stream", stream);
    const grep = $("grep").value;
    if (grep) q.set("grep", grep);
    if (token) q.set("token", token);
    u.search = q.toString();
    return u.toString();
  }

  function setStatus(on, text) {
    const s = $("status");
    s.className = "status " + (on ? "on" : "off");
    s.textContent = text;
  }

  function connect() {
    if (ws) { ws.onclose = null; ws.close(); }
    const sock = new WebSocket(tapURL());
    ws = sock;
    setStatus(false, "connecting");
    sock.onopen = () => { retry = 500; setStatus(true, "live"); };
    sock.onclose = (e) => {
      setStatus(false, e.code === 1008 || e.code === 1006 && !e.wasClean ? "disconnected, retrying" : "closed, retrying");
      setTimeout(() => { if (ws === sock) connect(); }, retry);
      retry = Math.min(retry * 2, 10000);
    };
    sock.onmessage = (m) => onMessage(m.data);
  }

  function onMessage(data) {
    let obj = null;
    if (data.charAt(0) === "{") { try { obj = JSON.parse(data); } catch (_) { obj = null; } }
    if (obj && obj.notice) { onNotice(obj); return; }
    received++;
    $("count").textContent = received + " events" + (paused ? ", " + skipped + " not shown" : "");
    if (paused) { skipped++; return; }
    addRow(obj, data);
  }

  function onNotice(n) {
    if (n.notice === "dropped") {
      drops = n.total;
      const d = $("drops");
      d.textContent = "drops " + drops;
      d.className = "drops bad";
    } else if (n.notice === "rates") {
      const secs = (n.interval_ms || 1000) / 1000;
      const names = new Set([...series.keys(), ...Object.keys(n.streams || {})]);
      for (const name of names) {
        const arr = series.get(name) || new Array(HISTORY).fill(0);
        arr.push(((n.streams || {})[name] || 0) / secs);
        while (arr.length > HISTORY) arr.shift();
        series.set(name, arr);
      }
      updateStreams();
      draw();
    }
  }

  function field(o, ...keys) {
    for (const k of keys) if (o && o[k] !== undefined && o[k] !== null) return String(o[k]);
    return "";
  }

  function addRow(obj, data) {
    const tr = document.createElement("tr");
    const ts = field(obj, "timestamp", "time", "received");
    const cells = obj ? [
      ts ? ts.replace(/^.*T/, "").slice(0, 12) : new Date().toISOString().slice(11, 23),
      field(obj, "stream"), field(obj, "hostname", "host"), field(obj, "app_name", "appname", "app"),
      field(obj, "message", "msg") || field(obj, "raw") || data,
    ] : [new Date().toISOString().slice(11, 23), "", "", "", data];
    tr.dataset.stream = cells[1];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      td.title = c;
      tr.appendChild(td);
    }
    const body = $("events");
    body.insertBefore(tr, body.firstChild);
    while (body.childNodes.length > MAX_ROWS) body.removeChild(body.lastChild);
  }

  function updateStreams() {
    const dl = $("streams");
    if (dl.childNodes.length === series.size) return;
    dl.textContent = "";
    for (const name of [...series.keys()].sort()) {
      const o = document.createElement("option");
      o.value = name;
      dl.appendChild(o);
    }
  }

  function draw() {
    const c = $("chart"), g = c.getContext("2d");
    const w = c.width, h = c.height, pad = 30;
    g.clearRect(0, 0, w, h);
    let max = 1;
    for (const arr of series.values()) for (const v of arr) max = Math.max(max, v);
    g.strokeStyle = "#2a313a"; g.fillStyle = "#7d8590"; g.font = "11px monospace";
    g.beginPath(); g.moveTo(pad, 4); g.lineTo(pad, h - 14); g.lineTo(w, h - 14); g.stroke();
    g.fillText(Math.round(max) + "/s", 0, 12);
    g.fillText("-" + HISTORY + "s", pad, h - 2);
    const legend = $("legend");
    legend.textContent = "";
    let i = 0;
    for (const [name, arr] of [...series.entries()].sort()) {
      const col = colors[i++ % colors.length];
      g.strokeStyle = col; g.lineWidth = 1.5; g.beginPath();
      arr.forEach((v, x) => {
        const px = pad + (w - pad) * x / (HISTORY - 1), py = (h - 14) - (h - 20) * v / max;
        x ? g.lineTo(px, py) : g.moveTo(px, py);
      });
      g.stroke();
      const item = document.createElement("span");
      const box = document.createElement("b");
      box.style.background = col;
      item.appendChild(box);
      item.appendChild(document.createTextNode(name + " " + Math.round(arr[arr.length - 1]) + "/s"));
      legend.appendChild(item);
    }
  }

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); $("events").textContent = ""; connect(); });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    skipped = 0;
    const b = $("pause");
    b.textContent = paused ? "resume" : "pause";
    b.className = paused ? "paused" : "";
  });
  connect();
})();
