// Each judged face shows its heatmap, with a button to see the face alone.
// Without JavaScript both pictures are shown side by side.
(function () {
  "use strict";
  document.querySelectorAll(".face-card").forEach(function (card) {
    var crop = card.querySelector(".face-crop");
    var heat = card.querySelector(".face-heatmap");
    var button = card.querySelector(".toggle-heatmap");
    if (!crop || !heat || !button || button.dataset.ready) return;
    button.dataset.ready = "1";
    function show(heatmap) {
      heat.hidden = !heatmap;
      crop.hidden = heatmap;
      button.textContent = heatmap ? "Show the face only" : "Show the heatmap";
      button.setAttribute("aria-pressed", heatmap ? "true" : "false");
    }
    button.hidden = false;
    show(true);
    button.addEventListener("click", function () { show(heat.hidden); });
  });
})();
