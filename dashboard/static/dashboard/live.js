/* Spindle dashboard: targeted live refresh over the browser's one shared feed.
 *
 * The feed (dashboard/live.py) says what changed: `{changes: [{q: queue, j: job, k: kind}]}` or `{all: true}`.
 * Each live fragment lists what it shows in `data-live`: `*` (anything), `queue:NAME`, `job:ID` or
 * `kind:PREFIX` (e.g. `kind:schedule:`), space-separated; only fragments an event touches re-fetch. The swap
 * morphs the DOM (idiomorph), so focus, selection, open details and scroll stay, and an unchanged fragment is
 * not swapped at all. Without a feed (no SharedWorker and no Web Locks, no free stream slot, WSGI) fragments
 * poll every 30 s instead (hx-trigger's filter reads `spindleLive.open`).
 */
(function () {
  "use strict";
  // Destructive or duplicating actions ask first: a form with `data-confirm` submits only once confirmed.
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // A header checkbox ticks every row checkbox of its form.
  document.addEventListener("change", (event) => {
    const form = event.target.dataset && event.target.dataset.selectAll;
    if (!form) return;
    for (const box of document.querySelectorAll(`input[type=checkbox][form="${form}"]`)) box.checked = event.target.checked;
  });

  const root = document.documentElement;
  const url = root.dataset.events;
  const live = (window.spindleLive = { open: false, status: "idle" });
  if (!url) return;

  function matches(element, data) {
    if (data.all) return true;
    const tokens = (element.dataset.live || "").split(/\s+/).filter(Boolean);
    return (data.changes || []).some((change) =>
      tokens.some(
        (t) =>
          t === "*" ||
          (t.startsWith("queue:") && t.slice(6) === change.q) ||
          (t.startsWith("job:") && t.slice(4) === change.j) ||
          (t.startsWith("kind:") && change.k.startsWith(t.slice(5)))
      )
    );
  }

  function onMessage(message) {
    if (message.type === "status") {
      live.status = message.status;
      live.open = message.status === "open";
      root.dataset.liveStatus = message.status;
    } else if (message.type === "changed") {
      live.changes = (live.changes || 0) + 1;
      for (const element of document.querySelectorAll("[data-live]")) {
        if (matches(element, message.data) && window.htmx) window.htmx.trigger(element, "live");
      }
    }
  }

  // Skip the swap when the fragment came back identical (CSRF tokens are masked afresh on every render, so
  // they are left out of the comparison): nothing to move, nothing to lose.
  const comparable = (html) => html.replace(/name="csrfmiddlewaretoken" value="[^"]*"/g, "").trim();
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (!target || !target.hasAttribute("data-live") || event.detail.xhr.status !== 200) return;
    const text = comparable(event.detail.xhr.responseText);
    if (text === target.spindleLast) event.detail.shouldSwap = false;
    target.spindleLast = text;
    live.fetched = (live.fetched || 0) + 1;
  });

  // What the user set stays across a morph: ticked row checkboxes and opened <details>.
  if (window.Idiomorph) {
    const callbacks = window.Idiomorph.defaults.callbacks;
    // Only boxes with an id (the same job's box, matched by id) keep their tick; others follow the server.
    callbacks.beforeNodeMorphed = (node) => !(node instanceof HTMLInputElement && node.type === "checkbox" && node.id);
    callbacks.beforeAttributeUpdated = (name, node) => !(name === "open" && node.tagName === "DETAILS");
  }

  const visible = () => document.visibilityState === "visible";

  if (window.SharedWorker) {
    const worker = new SharedWorker(root.dataset.liveWorker, { name: "spindle-live" });
    const port = worker.port;
    port.onmessage = (event) => onMessage(event.data);
    port.start();
    const say = (type) => port.postMessage({ type, url, visible: visible() });
    say("hello");
    document.addEventListener("visibilitychange", () => say("visibility"));
    window.addEventListener("pagehide", () => say("bye"));
    window.addEventListener("pageshow", (event) => event.persisted && say("hello"));
    setInterval(() => say("ping"), 20000);
    return;
  }

  // No SharedWorker (e.g. Chrome on Android): the tab holding a Web Lock leads, owns the one EventSource and
  // relays over a BroadcastChannel; when it closes, the lock passes to another tab. A tab that joins asks the
  // leader for the feed's status.
  const channel = window.BroadcastChannel ? new BroadcastChannel("spindle-live") : null;
  let leading = null; // the leader's last status message
  if (channel) {
    channel.onmessage = (event) => {
      if (event.data.type === "hello") leading && channel.postMessage(leading);
      else onMessage(event.data);
    };
    channel.postMessage({ type: "hello" });
  }
  function lead() {
    return new Promise(() => {
      const source = new EventSource(url);
      const send = (message) => {
        if (message.type === "status") leading = message;
        onMessage(message);
        channel && channel.postMessage(message);
      };
      source.addEventListener("connected", () => send({ type: "status", status: "open" }));
      source.addEventListener("changed", (e) => send({ type: "changed", data: JSON.parse(e.data) }));
      source.addEventListener("closed", () => source.close());
      source.onerror = () => source.readyState === EventSource.CLOSED && send({ type: "status", status: "off" });
    });
  }
  if (navigator.locks && channel) navigator.locks.request("spindle-live", lead);
  else lead();
})();
