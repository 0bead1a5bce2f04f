// The annotated image and the face cards.
// - Each face's number stays about 22 px on screen however far the image is scaled down, in its box's top-left
//   corner, inside the image, and moved down past a number it would cover (the same rule as the PDF's).
// - Each face card shows its heatmap, with a button to see the face alone (without JavaScript both are shown).
// - A heatmap that is still being drawn (or failed once) is asked for again, a few times, without a reload.
(function () {
  "use strict";
  var BADGE_PX = 22;

  function placeLabels(svg) {
    var shown = svg.getBoundingClientRect().width;
    if (!shown) return;
    var width = Number(svg.dataset.width), height = Number(svg.dataset.height);
    var side = Math.min(BADGE_PX * width / shown, width, height); // image pixels for 22 screen pixels
    var placed = [];
    svg.querySelectorAll(".facebox").forEach(function (g) {
      var x = Math.min(Math.max(0, Number(g.dataset.x)), width - side);
      var y = Math.min(Math.max(0, Number(g.dataset.y)), height - side);
      function covers(b) { return x < b[2] && b[0] < x + side && y < b[3] && b[1] < y + side; }
      while (placed.some(covers)) {
        y += side;
        if (y + side > height) { y = 0; x = Math.min(x + side, width - side); }
      }
      placed.push([x, y, x + side, y + side]);
      var tag = g.querySelector("rect.tag"), text = g.querySelector("text");
      tag.setAttribute("x", x.toFixed(1)); tag.setAttribute("y", y.toFixed(1));
      tag.setAttribute("width", side.toFixed(1)); tag.setAttribute("height", side.toFixed(1));
      text.setAttribute("x", (x + side / 2).toFixed(1)); text.setAttribute("y", (y + side / 2).toFixed(1));
      text.setAttribute("font-size", (side * 0.7).toFixed(1));
    });
  }

  document.querySelectorAll(".annotated .overlay").forEach(function (svg) {
    placeLabels(svg);
    if (window.ResizeObserver) new ResizeObserver(function () { placeLabels(svg); }).observe(svg);
  });

  document.querySelectorAll(".face-heatmap-link img, img.face-heatmap").forEach(function (img) {
    var tries = 0;
    img.addEventListener("error", function () {
      if (tries >= 3) { img.parentNode.classList.add("failed"); return; }
      tries += 1; // drawn on first request: a busy server may answer late; ask again, later each time
      setTimeout(function () {
        var url = new URL(img.currentSrc || img.src, location.href);
        url.searchParams.set("try", String(tries));
        img.src = url.toString();
      }, 1500 * tries);
    });
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
