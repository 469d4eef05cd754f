// The lolo inspector's page: one WebSocket (/_lolo/live) brings the figures; this script
// draws the graph as SVG (a layered layout from the triggers), the node and session tables
// and the log tail. Everything it shows is set as text, never parsed as HTML.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const KEY_STORE = "lolo-inspect-key";
  const NODE_W = 200;
  const GAP_X = 190;
  const GAP_Y = 34;
  const PORT_STEP = 24;
  const MAX_LOG = 300;

  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const keyForm = $("key-form");
  const keyInput = $("key");
  const keyHelp = $("key-help");
  const figuresEl = $("figures");
  const graph = $("graph");
  const logList = $("log");

  let socket = null;
  let sentKey = false;
  let retry = 1000;
  let shape = "";
  let lastEvents = new Map();
  let lastSeq = 0;

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/_lolo/live`);
    sentKey = false;
    setStatus("connecting", "Connecting…");
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener("close", onClose);
  }

  function onMessage(message) {
    if (message.type === "hello") {
      logList.replaceChildren(); // the server sends its whole tail again
      lastSeq = 0;
      shape = "";
      if (!message.needsKey) {
        opened();
        return;
      }
      const key = sessionStorage.getItem(KEY_STORE);
      if (key) {
        socket.send(`Bearer ${key}`);
        sentKey = true;
        opened();
      } else {
        askForKey("");
        socket.close(1000);
      }
      return;
    }
    if (message.type === "update") {
      if (message.figures) showFigures(message.figures);
      if (message.log) showLog(message.log);
    }
  }

  function opened() {
    retry = 1000;
    keyForm.hidden = true;
    figuresEl.hidden = false;
    setStatus("open", "Live");
  }

  function onClose(event) {
    if (event.code === 4401) {
      sessionStorage.removeItem(KEY_STORE);
      figuresEl.hidden = true;
      askForKey(sentKey ? "That key was not accepted." : "");
      return;
    }
    if (!keyForm.hidden) return; // waiting for a key
    setStatus("closed", `Disconnected (code ${event.code}); retrying…`);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 15000);
  }

  function askForKey(problem) {
    setStatus("need-key", problem || "Needs the inspector key");
    if (problem) keyHelp.textContent = `${problem} Enter the LOLO_INSPECT_KEY the app was started with.`;
    keyForm.hidden = false;
    keyInput.focus();
  }

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    keyInput.value = "";
    keyForm.hidden = true;
    connect();
  });

  // -- figures -------------------------------------------------------------------------

  function showFigures(f) {
    $("app").textContent = f.app;
    document.title = `${f.app} · lolo inspector`;
    const newShape = JSON.stringify([
      f.nodes.map((n) => [n.id, n.name, n.type, n.trigger]),
      f.edges.map(edgeKey),
    ]);
    if (newShape !== shape) {
      shape = newShape;
      drawGraph(f.nodes, f.edges);
    }
    updateGraph(f);
    fillNodes(f.nodes);
    fillSessions(f.sessions);
  }

  function edgeKey(e) {
    return `${e.source}.${e.port}->${e.target}.${e.inPort}`;
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Layers: triggers (and nodes nothing feeds) first, then breadth first along edges.
  function layout(nodes, edges) {
    const fedBy = new Map(nodes.map((n) => [n.id, 0]));
    for (const e of edges) fedBy.set(e.target, (fedBy.get(e.target) || 0) + 1);
    const layer = new Map();
    const queue = nodes.filter((n) => n.trigger || fedBy.get(n.id) === 0).map((n) => n.id);
    if (!queue.length && nodes.length) queue.push(nodes[0].id);
    for (const id of queue) layer.set(id, 0);
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      for (const e of edges) {
        if (e.source === id && !layer.has(e.target)) {
          layer.set(e.target, layer.get(id) + 1);
          queue.push(e.target);
        }
      }
    }
    for (const n of nodes) if (!layer.has(n.id)) layer.set(n.id, 0);
    const outs = new Map(nodes.map((n) => [n.id, []]));
    const ins = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) {
      if (outs.has(e.source)) outs.get(e.source).push(e);
      if (ins.has(e.target)) ins.get(e.target).push(e);
    }
    const boxes = new Map();
    const columnY = [];
    for (const n of nodes) {
      const col = layer.get(n.id);
      const ports = Math.max(outs.get(n.id).length, ins.get(n.id).length, 1);
      const h = Math.max(64, PORT_STEP * (ports + 1));
      const y = columnY[col] || 20;
      boxes.set(n.id, { x: 20 + col * (NODE_W + GAP_X), y, w: NODE_W, h });
      columnY[col] = y + h + GAP_Y;
    }
    return { boxes, outs, ins };
  }

  function drawGraph(nodes, edges) {
    const { boxes, outs, ins } = layout(nodes, edges);
    graph.replaceChildren();
    const defs = el("defs");
    const marker = el("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    });
    marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
    defs.append(marker);
    graph.append(defs);
    const anchor = (list, e, box, side) => {
      const i = list.indexOf(e);
      return { x: side === "out" ? box.x + box.w : box.x, y: box.y + (box.h * (i + 1)) / (list.length + 1) };
    };
    const edgeLayer = el("g");
    const labelLayer = el("g");
    for (const e of edges) {
      const from = boxes.get(e.source);
      const to = boxes.get(e.target);
      if (!from || !to) continue;
      const s = anchor(outs.get(e.source), e, from, "out");
      const t = anchor(ins.get(e.target), e, to, "in");
      const bend = Math.max(60, Math.abs(t.x - s.x) / 2);
      const path = el("path", {
        class: "edge", "data-edge": edgeKey(e), "marker-end": "url(#arrow)",
        d: `M${s.x},${s.y} C${s.x + bend},${s.y} ${t.x - bend},${t.y} ${t.x},${t.y}`,
      });
      edgeLayer.append(path);
      const label = el("text", {
        class: "edge-label", "data-edge": edgeKey(e),
        x: (s.x + t.x) / 2, y: (s.y + t.y) / 2 - 4, "text-anchor": "middle",
      });
      label.append(el("tspan", { class: "ports" }, `${e.port} → ${e.inPort}: `));
      label.append(el("tspan", { class: "count" }, String(e.events)));
      labelLayer.append(label);
    }
    const nodeLayer = el("g");
    for (const n of nodes) {
      const b = boxes.get(n.id);
      const g = el("g", { class: n.trigger ? "node trigger" : "node", "data-node": n.id });
      g.append(el("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: n.trigger ? 18 : 6 }));
      g.append(el("text", { class: "name", x: b.x + 12, y: b.y + 20 }, clip(n.name, 26)));
      g.append(el("text", { class: "type", x: b.x + 12, y: b.y + 36 }, clip(n.type, 32)));
      g.append(el("text", { class: "stats", x: b.x + 12, y: b.y + 52 }, ""));
      nodeLayer.append(g);
    }
    graph.append(edgeLayer, nodeLayer, labelLayer);
    let width = 0;
    let height = 0;
    for (const b of boxes.values()) {
      width = Math.max(width, b.x + b.w + 20);
      height = Math.max(height, b.y + b.h + 20);
    }
    graph.setAttribute("viewBox", `0 0 ${width} ${height}`);
    graph.setAttribute("width", width);
    graph.setAttribute("height", height);
    lastEvents = new Map();
  }

  function updateGraph(f) {
    for (const e of f.edges) {
      const key = edgeKey(e);
      const count = graph.querySelector(`text[data-edge="${CSS.escape(key)}"] .count`);
      if (count) count.textContent = String(e.events);
      const before = lastEvents.get(key);
      if (before !== undefined && before !== e.events) {
        const path = graph.querySelector(`path[data-edge="${CSS.escape(key)}"]`);
        if (path) flash(path);
      }
      lastEvents.set(key, e.events);
    }
    const open = new Map(f.sessions.map((s) => [s.trigger, s.open]));
    for (const n of f.nodes) {
      const g = graph.querySelector(`g[data-node="${CSS.escape(n.id)}"]`);
      if (!g) continue;
      const stats = g.querySelector(".stats");
      if (n.trigger) {
        stats.textContent = open.has(n.id) ? `${open.get(n.id)} open` : (n.path || "");
      } else {
        stats.textContent = `${n.calls} calls · ${n.errors} errors · p99 ${duration(n.p99)}`;
      }
      g.classList.toggle("failing", n.errors > 0);
    }
  }

  function flash(path) {
    path.classList.add("moved");
    clearTimeout(path._lolo);
    path._lolo = setTimeout(() => path.classList.remove("moved"), 400);
  }

  function clip(text, n) {
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 0.001) return `${(seconds * 1e6).toPrecision(3)} µs`;
    if (seconds < 1) return `${(seconds * 1e3).toPrecision(3)} ms`;
    return `${seconds.toPrecision(3)} s`;
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fillNodes(nodes) {
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const n of nodes) {
      if (n.trigger) continue;
      const row = body.insertRow();
      row.dataset.node = n.id;
      cell(row, n.name === n.id ? n.id : `${n.name} (${n.id})`, "name");
      cell(row, n.type, "type");
      cell(row, String(n.calls), "num calls");
      cell(row, String(n.errors), n.errors ? "num errors some" : "num errors");
      cell(row, duration(n.p50), "num p50");
      cell(row, duration(n.p99), "num p99");
    }
  }

  function fillSessions(sessions) {
    const body = $("sessions").tBodies[0];
    body.replaceChildren();
    for (const s of sessions) {
      const row = body.insertRow();
      row.dataset.trigger = s.trigger;
      cell(row, s.trigger, "trigger");
      cell(row, s.path || "", "path");
      cell(row, String(s.open), "num open");
    }
    $("no-sessions").hidden = sessions.length > 0;
  }

  function showLog(lines) {
    const atBottom = logList.scrollTop + logList.clientHeight >= logList.scrollHeight - 4;
    for (const line of lines) {
      if (line.seq <= lastSeq) continue;
      lastSeq = line.seq;
      const li = document.createElement("li");
      li.className = line.level;
      li.dataset.seq = String(line.seq);
      li.textContent = line.text;
      logList.append(li);
    }
    while (logList.children.length > MAX_LOG) logList.firstElementChild.remove();
    if (atBottom) logList.scrollTop = logList.scrollHeight;
  }

  connect();
})();
