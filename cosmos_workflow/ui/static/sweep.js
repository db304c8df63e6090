// A sweep's grid: cells follow their runs live; picked cells open the compare view.
"use strict";
(function () {
  const sweepId = document.currentScript.dataset.sweep;

  function showRun(run) {
    for (const cell of document.querySelectorAll('.cell[data-run="' + CSS.escape(run.id) + '"]')) {
      cell.className = cell.className.replace(/\bst-\S+/, "st-" + run.status);
      cell.querySelector(".st").textContent = run.status;
      cell.querySelector(".rt").textContent = "\u2605".repeat(run.rating || 0);
      const link = cell.querySelector("a");
      if (run.status === "succeeded" && !link.querySelector("img")) {
        const img = document.createElement("img");
        img.loading = "lazy";
        img.alt = "";
        img.src = "/thumbs/" + encodeURIComponent(sweepId) + "/" + encodeURIComponent(run.id) + ".jpg";
        link.replaceChildren(img);
      }
    }
  }

  function picked() {
    return [...document.querySelectorAll(".cell .pick:checked")].map((box) => box.value);
  }

  function showPicked() {
    const ids = picked();
    document.getElementById("picked").textContent = ids.length;
    document.getElementById("pickbar").hidden = ids.length === 0;
    document.getElementById("compare").disabled = ids.length < 2;
  }

  document.addEventListener("DOMContentLoaded", () => {
    cosmos.live((change) => (change.runs || []).forEach(showRun));
    document.addEventListener("change", (event) => {
      if (event.target.classList.contains("pick")) showPicked();
    });
    document.getElementById("compare").addEventListener("click", () => {
      location.href = "/compare?runs=" + picked().map(encodeURIComponent).join(",");
    });
    document.getElementById("unpick").addEventListener("click", () => {
      document.querySelectorAll(".cell .pick:checked").forEach((box) => (box.checked = false));
      showPicked();
    });
  });
})();
