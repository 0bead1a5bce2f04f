// Batch page: each chosen or dropped file is posted on its own to the upload view (answering JSON), one after
// another, with its own progress bar and then its verdict or its error; a refused file stops no other.
// Where workers analyse (the upload answers "pending"), the next file goes up while the last is being judged.
// Without JavaScript the form posts all the files at once and the page lists what became of each.
(function () {
  "use strict";
  var form = document.getElementById("batch-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var zone = document.getElementById("dropzone");
  var errors = document.getElementById("images-errors");
  var results = document.getElementById("batch-results");
  var list = document.getElementById("batch-list");
  var summary = document.getElementById("batch-summary");
  var submit = document.getElementById("submit");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var maxFiles = parseInt(form.dataset.maxFiles, 10);
  var allowance = document.getElementById("allowance");

  // How many more files may go now (null: no limit known); taken files count, and so do an anonymous
  // visitor's refused ones (data-refusals-count).
  function left() {
    return allowance ? parseInt(allowance.dataset.left, 10) : null;
  }

  function notSent(item) {
    item.li.classList.add("not-sent");
    fail(item, "Not sent: over your limit. You can send it in " + allowance.dataset.renewsIn + ".");
  }

  function spend() {
    if (!allowance) return;
    var now = Math.max(0, left() - 1);
    allowance.dataset.left = now;
    var count = allowance.querySelector("[data-left-count]");
    if (count) count.textContent = now;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function row(file) {
    var item = {li: el("li", "batch-item"), bar: el("progress"), state: el("span", "state", "Waiting")};
    item.bar.max = 100;
    item.bar.value = 0;
    item.bar.hidden = true;
    item.li.append(el("span", "name", file.name || "(unnamed)"), item.bar, item.state);
    list.appendChild(item.li);
    return item;
  }

  function listChosen() {
    var files = Array.prototype.slice.call(input.files);
    list.textContent = "";
    summary.textContent = files.length ? files.length + " chosen." : "";
    results.hidden = !files.length;
    errors.textContent = files.length > maxFiles ? "Choose at most " + maxFiles + " files at a time." : "";
    return files.map(row);
  }

  function succeed(item, data) {
    var badge = el("a", "badge badge-" + data.style, data.label);
    badge.href = data.url;
    item.state.textContent = "";
    item.state.className = "state";
    if (data.thumbnail) {
      var thumb = el("img", "batch-thumb");
      thumb.src = data.thumbnail;
      thumb.alt = "";
      item.state.appendChild(thumb);
    }
    item.state.appendChild(badge);
    if (data.fake_text) item.state.appendChild(el("span", "muted", " " + data.fake_text + " fake"));
  }

  function fail(item, message) {
    item.state.className = "state error";
    item.state.textContent = message;
  }

  // With analysis workers the upload answers "pending" at once: follow the status until the verdict is there.
  function settle(item, data, resolve, delay) {
    if (data.status === "done") { succeed(item, data); resolve(true); return; }
    if (data.status === "failed") { fail(item, "No verdict: the image could not be analysed."); resolve(false); return; }
    item.state.textContent = data.status === "analysing" ? "Analysing faces…" : "Queued…";
    delay = Math.min((delay || 300) * 1.5, 5000);
    window.setTimeout(function () {
      fetch(data.status_url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : data; })
        .catch(function () { return data; })
        .then(function (next) { settle(item, next, resolve, delay); });
    }, delay);
  }

  function send(file, item, verdicts) {
    return new Promise(function (resolve) {
      var problem = window.detectorUploads.problemWith(file, form);
      if (problem) { fail(item, problem); resolve(false); return; }
      item.bar.hidden = false;
      item.state.textContent = "Uploading…";
      window.detectorUploads.send(form.dataset.uploadUrl, file, token, {
        progress: function (percent) { item.bar.value = percent; },
        sent: function () { item.bar.removeAttribute("value"); item.state.textContent = "Analysing faces…"; }
      }).then(function (result) {
        item.bar.hidden = true;
        if (result.ok) {
          spend();
          verdicts.push(new Promise(function (done) { settle(item, result.detection, done); }));
        } else if (result.code === "rate_limited") {
          if (allowance) allowance.dataset.left = 0;
          notSent(item);
        } else {
          if (allowance && allowance.dataset.refusalsCount === "true" && result.status < 500) spend();
          fail(item, result.message);
        }
        resolve(result.ok);
      });
    });
  }

  input.addEventListener("change", listChosen);
  window.detectorUploads.dropzone(zone, function (files) {
    input.files = files;
    listChosen();
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var files = Array.prototype.slice.call(input.files);
    if (!files.length) { errors.textContent = "Choose one or more images or videos."; input.focus(); return; }
    if (files.length > maxFiles) { errors.textContent = "Choose at most " + maxFiles + " files at a time."; return; }
    var items = listChosen();
    if (left() !== null && files.length > left()) {  // what fits goes; the rest says when it can
      errors.textContent = (left() ? "You can check " + left() + " more file" + (left() > 1 ? "s" : "") +
        " now: those go first; " : "You have used all your checks for now: ") +
        "the rest are marked “not sent” and can go in " + allowance.dataset.renewsIn + ".";
    }
    var verdicts = [];
    submit.disabled = true;
    // One upload at a time, so the server is not flooded; verdicts may still be on their way afterwards.
    files.reduce(function (previous, file, i) {
      return previous.then(function () {
        if (left() !== null && left() <= 0) { notSent(items[i]); return false; }
        return send(file, items[i], verdicts);
      });
    }, Promise.resolve()).then(function () {
      return Promise.all(verdicts);
    }).then(function (judged) {
      var checked = judged.filter(Boolean).length;
      var unsent = list.querySelectorAll(".not-sent").length;
      summary.textContent = checked + " checked, " + (files.length - checked - unsent) + " not accepted or not judged" +
        (unsent ? ", " + unsent + " not sent (over the limit)." : ".");
      submit.disabled = false;
      input.value = "";
    });
  });
})();
