// Progressive enhancement of the upload form: drag-and-drop, preview, size check
// before sending, and a progress state while the file uploads and is analysed.
// Without JavaScript the form posts normally.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var zone = document.getElementById("dropzone");
  var preview = document.getElementById("preview");
  var errors = document.getElementById("image-errors");
  var progress = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var text = document.getElementById("progress-text");
  var submit = document.getElementById("submit");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  function check(file) {
    return file ? window.detectorUploads.problemWith(file, form) : "Choose an image or a video first.";
  }

  function isHeic(file) {
    return /hei[cf]/i.test(file.type) || /\.hei[cf]$/i.test(file.name);
  }

  function show(file) {
    var problem = check(file);
    errors.textContent = problem;
    input.setAttribute("aria-invalid", problem ? "true" : "false");
    if (!problem && file && (window.detectorUploads.isVideo(file) || isHeic(file))) {
      // a video, or a HEIC photo (which browsers cannot show): checked on the server, shown on the result page
      preview.hidden = true;
      preview.removeAttribute("src");
      errors.textContent = "";
    } else if (!problem && file) {
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
    } else {
      preview.hidden = true;
    }
  }

  // A file that claims to be an image but is not one shows a sentence, never a broken picture.
  preview.addEventListener("error", function () {
    if (!preview.getAttribute("src")) return;
    preview.hidden = true;
    preview.removeAttribute("src");
    errors.textContent = "This file is not an image, or it is damaged: choose a JPEG, PNG, WebP, HEIC or AVIF photo, or a video.";
    input.setAttribute("aria-invalid", "true");
  });

  input.addEventListener("change", function () { show(input.files[0]); });
  window.detectorUploads.dropzone(zone, function (files) {
    if (files.length > 1) { errors.textContent = "Upload one file at a time; to check several, use Check many."; return; }
    input.files = files;
    show(input.files[0]);
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var problem = check(input.files[0]);
    if (problem) { errors.textContent = problem; input.focus(); return; }
    progress.hidden = false;
    bar.value = 0;
    text.textContent = "Uploading…";
    submit.disabled = true;
    errors.textContent = "";
    window.detectorUploads.send(form.action || window.location.href, input.files[0], token, {
      progress: function (percent) { bar.value = percent; },
      sent: function () {
        bar.removeAttribute("value");
        text.textContent = window.detectorUploads.isVideo(input.files[0]) ? "Checking the video…" : "Analysing faces…";
      }
    }).then(function (result) {
      if (result.ok) { window.location.assign(result.detection.url); return; }
      finish(result.message);
    });
  });

  function finish(message) {
    progress.hidden = true;
    submit.disabled = false;
    errors.textContent = message;
  }
})();
