// The annotated image and the face cards.
// - Face labels keep a readable size (about 14 px) however far the image is scaled down, above the box where
//   there is room, below it otherwise.
// - Each face card shows its heatmap, with a button to see the face alone (without JavaScript both are shown).
(function () {
  "use strict";
  var LABEL_PX = 14;

  function placeLabels(svg) {
    var shown = svg.getBoundingClientRect().width;
    if (!shown) return;
    var unit = Number(svg.dataset.width) / shown; // image pixels per screen pixel
    var size = LABEL_PX * unit;
    svg.querySelectorAll(".facebox text").forEach(function (text) {
      var top = Number(text.parentNode.querySelector("rect").getAttribute("y"));
      text.setAttribute("font-size", size.toFixed(1));
      text.setAttribute("y", (top > size * 1.3 ? top - size * 0.3 : Number(text.dataset.boxBottom) + size).toFixed(1));
    });
  }

  document.querySelectorAll(".annotated .overlay").forEach(function (svg) {
    placeLabels(svg);
    if (window.ResizeObserver) new ResizeObserver(function () { placeLabels(svg); }).observe(svg);
  });

  document.querySelectorAll(".face-heatmap-link img").forEach(function (img) {
    img.addEventListener("error", function () { img.parentNode.classList.add("failed"); });
  });

  document.querySelectorAll(".face-card").forEach(function (card) {
    var crop = card.querySelector(".face-crop");
    var heat = card.querySelector(".face-heatmap-link");
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
