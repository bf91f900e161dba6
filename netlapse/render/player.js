// netlapse HTML player: a slider over the frames; each frame's spec is drawn by specdraw.js.
(function () {
  "use strict";
  const doc = JSON.parse(document.getElementById("netlapse-data").textContent);
  const DPI = 100;

  const canvas = document.getElementById("view");
  const slider = document.getElementById("slider"), label = document.getElementById("label");
  const playBtn = document.getElementById("play"), speed = document.getElementById("speed");
  slider.max = String(doc.frames.length - 1);

  function render(i) {
    NetlapseSpec.render(canvas, doc, doc.frames[i], DPI);
    slider.value = String(i);
    label.textContent = `step ${doc.steps[i]}  (${i + 1}/${doc.frames.length})`;
    current = i;
  }

  let current = 0, timer = null;
  function stop() { if (timer) clearInterval(timer); timer = null; playBtn.textContent = "Play"; }
  function play() {
    if (current >= doc.frames.length - 1) render(0);
    playBtn.textContent = "Pause";
    timer = setInterval(() => {
      if (current >= doc.frames.length - 1) { stop(); return; }
      render(current + 1);
    }, 1000 / (doc.fps * parseFloat(speed.value)));
  }
  playBtn.addEventListener("click", () => (timer ? stop() : play()));
  speed.addEventListener("change", () => { if (timer) { stop(); play(); } });
  slider.addEventListener("input", () => { stop(); render(parseInt(slider.value, 10)); });
  document.addEventListener("keydown", e => {
    if (e.key === " ") { e.preventDefault(); timer ? stop() : play(); }
    else if (e.key === "ArrowRight") { stop(); render(Math.min(current + 1, doc.frames.length - 1)); }
    else if (e.key === "ArrowLeft") { stop(); render(Math.max(current - 1, 0)); }
  });
  window.netlapsePlayer = {doc: doc, render: render, get frame() { return current; }};
  render(0);
})();
