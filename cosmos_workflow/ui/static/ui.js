// cosmos ui: what every page shares. No framework, no network but this server.
"use strict";
window.cosmos = (function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // POST (or another method) with the CSRF header; body: an object (sent as JSON) or FormData.
  async function send(url, body, method) {
    const headers = { "X-CSRF-Token": csrf() };
    let payload = body;
    if (body && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    return fetch(url, { method: method || "POST", headers, body: payload, credentials: "same-origin" });
  }

  // Server-sent events of /events: handler(change) for each change; one stream per page.
  const handlers = [];
  let source = null;
  function live(handler) {
    handlers.push(handler);
    if (source) return;
    const badge = document.getElementById("live");
    source = new EventSource("/events");
    source.onopen = () => badge && badge.classList.add("on");
    source.onerror = () => badge && badge.classList.remove("on");
    source.addEventListener("change", (message) => {
      const change = JSON.parse(message.data);
      if (change.reload) { location.reload(); return; }
      handlers.forEach((h) => h(change));
    });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }

  // Every element with data-sweep="ID" shows that sweep's counts, stage and ETA.
  function showSweeps(change) {
    for (const summary of change.sweeps || []) {
      for (const box of document.querySelectorAll('[data-sweep="' + CSS.escape(summary.id) + '"]')) {
        for (const el of box.querySelectorAll("[data-count]")) {
          const n = summary.counts[el.dataset.count];
          if (n !== undefined) el.textContent = n;
        }
        const total = summary.counts.total || 1;
        for (const el of box.querySelectorAll("[data-bar]")) {
          el.style.width = ((100 * (summary.counts[el.dataset.bar] || 0)) / total).toFixed(1) + "%";
        }
        const stage = box.querySelector('[data-field="stage"]');
        if (stage) stage.textContent = summary.stage;
        const eta = box.querySelector('[data-field="eta"]');
        const left = ["pending", "queued", "running"].some((s) => summary.counts[s] > 0);
        if (eta) eta.textContent = left ? duration(summary.eta_s) : "done";
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.querySelector("[data-sweep]")) live(showSweeps);
  });

  return { csrf, send, live, duration };
})();
