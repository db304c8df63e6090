// The compare view: every video.sync follows one clock (the first video is the leader).
"use strict";
(function () {
  const TOLERANCE = 0.04; // seconds a follower may drift before it is put right

  document.addEventListener("DOMContentLoaded", () => {
    const videos = [...document.querySelectorAll("video.sync")].filter((v) => v.getAttribute("src"));
    if (!videos.length) return;
    const leader = videos[0];
    const fps = Number(document.getElementById("player").dataset.fps) || 24;
    const play = document.getElementById("play");
    const seek = document.getElementById("seek");
    const clock = document.getElementById("clock");
    window.cosmosCompare = { videos, leader };

    function seekAll(t) {
      const end = leader.duration || 0;
      const at = Math.min(Math.max(0, t), end || t);
      videos.forEach((v) => { v.currentTime = at; });
    }
    function playAll() { videos.forEach((v) => { v.currentTime = leader.currentTime; v.play(); }); }
    function pauseAll() {
      videos.forEach((v) => v.pause());
      seekAll(leader.currentTime);
    }
    function step(frames) { pauseAll(); seekAll(leader.currentTime + frames / fps); }

    play.addEventListener("click", () => (leader.paused ? playAll() : pauseAll()));
    document.getElementById("back").addEventListener("click", () => step(-1));
    document.getElementById("fwd").addEventListener("click", () => step(1));
    seek.addEventListener("input", () => seekAll((seek.value / 1000) * (leader.duration || 0)));
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
      if (e.key === " ") { e.preventDefault(); play.click(); }
      if (e.key === ",") step(-1);
      if (e.key === ".") step(1);
    });
    leader.addEventListener("play", () => (play.textContent = "Pause"));
    leader.addEventListener("pause", () => (play.textContent = "Play"));
    leader.addEventListener("ended", () => videos.forEach((v) => v.pause()));

    // Followers are put right whenever they drift (decoders run at their own pace).
    function follow() {
      const t = leader.currentTime;
      for (const v of videos) {
        if (v === leader) continue;
        if (Math.abs(v.currentTime - t) > TOLERANCE && !v.seeking) v.currentTime = t;
        if (leader.paused !== v.paused) (leader.paused ? v.pause() : v.play());
      }
      clock.textContent = t.toFixed(2) + " s";
      if (leader.duration && document.activeElement !== seek) seek.value = Math.round((t / leader.duration) * 1000);
      requestAnimationFrame(follow);
    }
    requestAnimationFrame(follow);

    // A/B wipe: video B under A; A is cut off right of the slider.
    const wipeVideos = [...document.querySelectorAll(".wipe-video")];
    const pickA = document.getElementById("wipe-a");
    const pickB = document.getElementById("wipe-b");
    const at = document.getElementById("wipe-at");
    function showWipe() {
      const a = Number(pickA.value), b = Number(pickB.value);
      wipeVideos.forEach((v, i) => {
        v.hidden = i !== a && i !== b;
        v.classList.toggle("wipe-top", i === a);
        v.style.clipPath = i === a ? "inset(0 " + (100 - at.value) + "% 0 0)" : "none";
      });
      document.getElementById("wipe-line").style.left = at.value + "%";
    }
    [pickA, pickB, at].forEach((el) => el.addEventListener("input", showWipe));
    showWipe();
  });
})();
