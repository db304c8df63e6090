// cosmos ui: the run, prompts and queue pages. Uses window.cosmos of ui.js.
"use strict";
(function () {
  // Forms with data-confirm ask first.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Range inputs show their value in the <output> they name.
  document.addEventListener("input", (event) => {
    const id = event.target.dataset && event.target.dataset.shows;
    if (id) document.getElementById(id).textContent = event.target.value;
  });

  function setupRating(box) {
    const runId = box.dataset.run;
    const stars = box.querySelectorAll("[data-rate]");
    const said = document.getElementById("rated");
    function show(rating) {
      box.dataset.rating = rating || "";
      stars.forEach((s) => s.classList.toggle("on", rating && Number(s.dataset.rate) <= rating));
    }
    async function rate(rating) {
      const answer = await window.cosmos.send("/runs/" + encodeURIComponent(runId) + "/rate",
        { rating: rating || "" });
      if (answer.ok) {
        const data = await answer.json();
        show(data.rating);
        said.textContent = data.rating ? "rated " + data.rating : "rating cleared";
      } else {
        const text = await answer.text();
        const page = new DOMParser().parseFromString(text, "text/html");
        const message = page.querySelector(".error");
        said.textContent = message ? message.textContent : "not rated (" + answer.status + ")";
      }
    }
    stars.forEach((s) => s.addEventListener("click", () => rate(Number(s.dataset.rate))));
    document.addEventListener("keydown", (event) => {
      const tag = (event.target.tagName || "").toLowerCase();
      if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
      if (/^[0-5]$/.test(event.key)) rate(Number(event.key));
    });
  }

  function followLog(pre) {
    const source = new EventSource(pre.dataset.follow);
    source.addEventListener("line", (message) => {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(JSON.parse(message.data) + "\n"));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", (message) => {
      source.close();
      const status = document.getElementById("status");
      if (status) status.textContent = JSON.parse(message.data);
      window.setTimeout(() => location.reload(), 500);
    });
  }

  function setupPicks() {
    const all = document.getElementById("pick-all");
    if (!all) return;
    all.addEventListener("change", () => {
      document.querySelectorAll("input.pick").forEach((box) => { box.checked = all.checked; });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const run = document.getElementById("run");
    if (run) setupRating(run);
    const log = document.querySelector("pre.log[data-follow]");
    if (log) followLog(log);
    setupPicks();
    const queue = document.getElementById("queue");
    if (queue && window.cosmos) {
      // Reload when a shown run changes or another one starts: not for the rest
      // (the first poll reports every recent run: reloading then would never end).
      const shown = JSON.parse(queue.dataset.shown || "{}");
      let pending = null;
      window.cosmos.live((change) => {
        const matters = (change.runs || []).some((run) =>
          run.id in shown ? shown[run.id] !== run.status
            : run.status === "running" || run.status === "queued");
        if (matters && !pending) pending = window.setTimeout(() => location.reload(), 300);
      });
    }
  });
})();
