// "Copy" buttons: data-copy names an element whose text is copied (a secret shown once), data-copy-value an
// input whose value is (the share link).
(function () {
  "use strict";
  document.querySelectorAll("[data-copy], [data-copy-value]").forEach(function (button) {
    button.addEventListener("click", function () {
      var byText = button.hasAttribute("data-copy");
      var source = document.querySelector(button.getAttribute(byText ? "data-copy" : "data-copy-value"));
      if (!source) return;
      var text = byText ? source.textContent.trim() : source.value;
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text).then(done, function () { if (!byText) { source.select(); } });
      } else if (!byText) {
        source.select();
      }
    });
  });
})();
