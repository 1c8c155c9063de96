// Updates the progress of a running import from its JSON endpoint, and
// reloads the page for the summary once the import has ended. Without this
// script the page's Refresh link shows the same numbers.
(function () {
  "use strict";

  const section = document.getElementById("import-progress");
  if (!section) {
    return;
  }
  const url = section.dataset.progressUrl;
  const pollMilliseconds = Number(section.dataset.pollMilliseconds) || 1500;
  const numbers = new Intl.NumberFormat();

  function show(id, text) {
    const element = document.getElementById(id);
    if (element) {
      element.textContent = text;
    }
  }

  function update(progress) {
    document.getElementById("progress-bar").value = progress.percent;
    show("progress-percent", progress.percent + "%");
    show("progress-bytes", progress.bytes_text);
    show("progress-records", numbers.format(progress.records_done));
    show("progress-patients", numbers.format(progress.patients_done));
    show("import-status", progress.status_label);
    if (progress.status === "running") {
      show(
        "progress-note",
        "The numbers update while the import runs. You can leave this page; the import goes on."
      );
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (progress) {
        update(progress);
        if (progress.done) {
          window.location.reload();
        } else {
          window.setTimeout(poll, pollMilliseconds);
        }
      })
      .catch(function () {
        show(
          "progress-note",
          "The progress could not be loaded. Reload the page; if you were logged out, log in again."
        );
      });
  }

  window.setTimeout(poll, pollMilliseconds);
})();
