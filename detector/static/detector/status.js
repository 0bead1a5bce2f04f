// A result page whose analysis is queued: poll its status and show the verdict once it is there.
(function () {
  "use strict";
  var box = document.querySelector("[data-status-url]");
  if (!box) return;
  var label = box.querySelector("[data-status-label]");
  var delay = 500;

  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data.status === "done" || data.status === "failed") {
          window.location.reload();
          return;
        }
        label.textContent = data.status === "analysing" ? "Analysing…" : "Queued…";
        if (data.frames_planned) {  // a video: frames analysed of frames planned
          var bar = box.querySelector("progress"), text = box.querySelector("[data-status-progress]");
          bar.max = data.frames_planned;
          bar.value = data.frames_sampled || 0;
          if (text) text.textContent = (data.frames_sampled || 0) + " of " + data.frames_planned + " frames analysed";
        }
        delay = Math.min(delay * 1.5, 5000);
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 10000);
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
