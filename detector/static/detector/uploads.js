// Shared by the upload and batch pages: the check a file gets before it is sent (the server checks again),
// and a drop zone that highlights while files are dragged over it.
window.detectorUploads = (function () {
  "use strict";
  var allowed = ["image/jpeg", "image/png", "image/webp"];

  // Why the form's limits refuse this file, or "" where they do not.
  function problemWith(file, form) {
    if (file.size > parseInt(form.dataset.maxBytes, 10)) return "The file is larger than " + form.dataset.maxMb + " MB.";
    if (file.type && allowed.indexOf(file.type) < 0) return "This is not a JPEG, PNG or WebP image.";
    return "";
  }

  function dropzone(zone, onDrop) {
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("dragover"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("dragover"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer.files.length) onDrop(e.dataTransfer.files);
    });
  }

  return {problemWith: problemWith, dropzone: dropzone};
})();
