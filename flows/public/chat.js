// The chat page of flows/chat.yaml and flows/chat-auth.yaml: one WebSocket to /socket.
//
// The server sends, in order: {"connected":true,"yourConnectionId":"..."}, then (when
// there is any) {"history":[{"n","from","message"}...]}, then one text frame per message
// from another client: "<sender> says: <message>". It does not echo our own messages, so
// they are shown here as "you: ...". A connection that fails before it opens may have been
// refused for want of an API key (a browser cannot see the 401), so the page then asks for
// one; the key is kept in sessionStorage and sent as ?lolo-api-key=.
"use strict";

(() => {
  const KEY_STORAGE = "lolo-api-key";
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];

  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const idEl = $("connection-id");
  const log = $("log");
  const keyForm = $("key-form");
  const keyInput = $("key");
  const keyHelp = $("key-help");
  const sendForm = $("send-form");
  const messageInput = $("message");
  const sendButton = $("send");

  let socket = null;
  let failures = 0; // consecutive attempts that ended without a greeting: the backoff
  let retryTimer = null;
  let myIds = new Set(); // every id this page has had: history names them
  // History entries are numbered; live messages are not. lastN counts what this page has
  // shown (history, then each message since), so after a reconnect only the messages
  // missed while away are added from the history frame.
  let lastN = 0;
  let greeted = false; // this socket's greeting has arrived
  let connectedOnce = false;

  const storedKey = () => sessionStorage.getItem(KEY_STORAGE) || "";
  const wantsAuth = new URLSearchParams(location.search).has("auth");

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    sendButton.disabled = state !== "open";
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function add(className, parts) {
    const stick = atBottom();
    const item = document.createElement("li");
    item.className = className;
    for (const [text, partClass] of parts) {
      if (partClass) {
        const span = document.createElement("span");
        span.className = partClass;
        span.textContent = text;
        item.append(span);
      } else {
        item.append(document.createTextNode(text));
      }
    }
    log.append(item);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  const note = (text) => add("note", [[text]]);

  function showLine(sender, message, className) {
    add(className, [[sender, "sender"], [" says: " + message]]);
  }

  function showHistory(entries) {
    const fresh = entries.filter((e) => typeof e.n === "number" && e.n > lastN);
    if (fresh.length === 0) return;
    note(connectedOnce && lastN > 0 ? "While you were away:" : "Earlier messages:");
    for (const entry of fresh) {
      if (myIds.has(entry.from)) {
        add("mine history", [["you", "sender"], [": " + entry.message]]);
      } else {
        showLine(String(entry.from), String(entry.message), "history");
      }
    }
    lastN = Math.max(lastN, ...fresh.map((e) => e.n));
  }

  function onText(text) {
    if (text.startsWith("{")) {
      let frame = null;
      try { frame = JSON.parse(text); } catch (_) { /* a plain message after all */ }
      if (frame && frame.connected === true && typeof frame.yourConnectionId === "string") {
        myIds.add(frame.yourConnectionId);
        idEl.textContent = frame.yourConnectionId;
        failures = 0;
        greeted = true;
        keyForm.hidden = true;
        if (connectedOnce) note("Reconnected.");
        connectedOnce = true;
        setStatus("open", "Connected");
        return;
      }
      if (frame && Array.isArray(frame.history)) {
        showHistory(frame.history);
        return;
      }
    }
    if (greeted) lastN += 1;
    const at = text.indexOf(" says: ");
    if (at > 0) showLine(text.slice(0, at), text.slice(at + 7), "message");
    else add("message", [[text]]);
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const key = storedKey();
    const query = key ? "?lolo-api-key=" + encodeURIComponent(key) : "";
    return `${scheme}//${location.host}/socket${query}`;
  }

  function askForKey(reason) {
    if (reason) keyHelp.textContent = reason; // else the page's own help text
    if (keyForm.hidden) {
      keyForm.hidden = false;
      keyInput.value = storedKey();
      keyInput.focus();
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) return;
    setStatus("connecting", "Connecting…");
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    socket = ws;
    greeted = false;
    let opened = false;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onText(event.data);
      else add("message", [[`(a binary message of ${event.data.byteLength} bytes)`]]);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      idEl.textContent = "(not connected)";
      const wasGreeted = greeted;
      greeted = false;
      if (!wasGreeted) failures += 1;
      if (!opened) {
        askForKey(storedKey()
          ? "The connection was refused: is the API key right? Enter it again, or wait."
          : "Could not connect. If this chat needs an API key, enter it; " +
            "otherwise the page keeps trying.");
      } else if (wasGreeted) {
        note(`Disconnected${event.reason ? ": " + event.reason : ""} (code ${event.code}).`);
      }
      scheduleRetry();
    };
  }

  function scheduleRetry() {
    // 0.5 s after a drop, then doubling up to 8 s while attempts fail; a little jitter
    // keeps every page of a restarted server from reconnecting at the same instant.
    const base = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    setStatus("closed", `Disconnected; retrying in ${Math.round(delay / 100) / 10} s`);
    retryTimer = setTimeout(connect, delay);
  }

  sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = messageInput.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(text);
    if (greeted) lastN += 1;
    add("mine", [["you", "sender"], [": " + text]]);
    messageInput.value = "";
    messageInput.focus();
  });

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    keyForm.hidden = true;
    failures = 0;
    if (socket) {
      const old = socket;
      socket = null;
      old.close();
    }
    connect();
    messageInput.focus();
  });

  if (wantsAuth && !storedKey()) {
    setStatus("need-key", "Enter an API key to connect");
    askForKey(null);
  } else {
    connect();
  }
})();
