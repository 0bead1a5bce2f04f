// Shared by the upload and batch pages: the check a file gets before it is sent (the server checks again),
// a drop zone that highlights while files are dragged over it, and the upload request itself with its progress
// and the server's answer (a detection, or an error in the one shape {"error": {code, message, field}}).
window.detectorUploads = (function () {
  "use strict";
  var allowed = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif"];
  var videos = ["video/mp4", "video/quicktime", "video/webm", "video/x-matroska"];

  function isVideo(file) {
    return videos.indexOf(file.type) >= 0 || /\.(mp4|m4v|mov|webm|mkv)$/i.test(file.name);
  }

  // Why the form's limits refuse this file, or "" where they do not.
  function problemWith(file, form) {
    if (isVideo(file)) {
      if (file.size > parseInt(form.dataset.maxVideoBytes, 10)) return "The video is larger than " + form.dataset.maxVideoMb + " MB.";
      return "";
    }
    if (file.size > parseInt(form.dataset.maxBytes, 10)) return "The file is larger than " + form.dataset.maxMb + " MB.";
    if (file.type && allowed.indexOf(file.type) < 0) return "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video.";
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

  // POST one file; resolves to {ok: true, detection} on 201, else {ok: false, status, code, message}. It never rejects.
  // The CSRF token goes in a header, so the server can refuse an oversized or over-the-rate upload unread.
  function send(url, file, token, on) {
    return new Promise(function (resolve) {
      var data = new FormData();
      data.append("image", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable && on.progress) on.progress(Math.round(100 * ev.loaded / ev.total));
      });
      xhr.upload.addEventListener("load", function () { if (on.sent) on.sent(); });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
        if (xhr.status === 201 && body.url) { resolve({ok: true, detection: body}); return; }
        var message = body.error && body.error.message;
        resolve({ok: false, status: xhr.status, code: body.error && body.error.code,
                 message: message || "The upload failed (" + xhr.status + "). Please try again."});
      });
      xhr.addEventListener("error", function () {
        resolve({ok: false, message: "The upload failed: the connection was interrupted."});
      });
      xhr.send(data);
    });
  }

  return {problemWith: problemWith, isVideo: isVideo, dropzone: dropzone, send: send};
})();
