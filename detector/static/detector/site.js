// On a phone the header's links fold behind a Menu button; without JavaScript they are listed in full.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var button = document.querySelector(".menu-toggle");
  var menu = document.getElementById("site-menu");
  if (!button || !menu) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var open = menu.classList.toggle("open");
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
