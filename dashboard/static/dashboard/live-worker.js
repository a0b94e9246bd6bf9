/* Spindle dashboard: the browser's ONE live feed, shared by every tab (a SharedWorker).
 *
 * Tabs connect, say whether they are visible and ping; the worker holds a single EventSource on the
 * dashboard's /events while at least one tab is visible, and relays each event to every tab. So six or sixty
 * tabs use one HTTP connection and one of the workspace's stream slots; with every tab hidden, none.
 */
"use strict";

const PORT_TIMEOUT_MS = 60000;
const tabs = new Map(); // port -> {visible, seen}
let source = null;
let url = null;
let status = "idle";

function broadcast(message) {
  for (const port of tabs.keys()) port.postMessage(message);
}

function setStatus(value) {
  status = value;
  broadcast({ type: "status", status });
}

function open() {
  source = new EventSource(url);
  source.addEventListener("connected", () => setStatus("open"));
  source.addEventListener("changed", (event) => broadcast({ type: "changed", data: JSON.parse(event.data) }));
  source.addEventListener("closed", () => {
    close();
    setStatus("closed");
  });
  source.onerror = () => {
    // CLOSED: the server answered 204 (no free stream slot, or no stream under WSGI) or 401. Pages poll.
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      setStatus("off");
    } else {
      setStatus("reconnecting");
    }
  };
}

function close() {
  if (source) source.close();
  source = null;
}

function sync() {
  const now = Date.now();
  let wanted = false;
  for (const [port, tab] of tabs) {
    if (now - tab.seen > PORT_TIMEOUT_MS) tabs.delete(port); // a tab that vanished without saying bye
    else if (tab.visible) wanted = true;
  }
  if (wanted && !source && url) {
    open();
  } else if (!wanted && source) {
    close();
    setStatus("paused");
  }
}

self.onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (message) => {
    const data = message.data || {};
    if (data.type === "bye") {
      tabs.delete(port);
    } else {
      if (data.url) url = data.url;
      tabs.set(port, { visible: data.visible !== false, seen: Date.now() });
      if (data.type === "hello") port.postMessage({ type: "status", status });
    }
    sync();
  };
  port.start();
};

setInterval(sync, 15000);
