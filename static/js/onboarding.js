// Selection on the onboarding list: "Select All" and the choice to act on every
// patient matching the filters. Without this script the row checkboxes and the
// action buttons still work for the ticked rows.
(function () {
  "use strict";

  // A second click on a confirm button while the first request is on its way
  // does nothing; the server also acts only once per confirmation.
  document.querySelectorAll("form[data-submit-once]").forEach(function (once) {
    once.addEventListener("submit", function (event) {
      if (once.dataset.submitted === "true") {
        event.preventDefault();
        return;
      }
      once.dataset.submitted = "true";
    });
  });

  const form = document.getElementById("bulk-form");
  if (!form) {
    return;
  }

  const scope = document.getElementById("bulk-scope");
  const selectAll = document.getElementById("select-all");
  const bar = document.getElementById("select-bar");
  const barText = document.getElementById("select-bar-text");
  const selectMatching = document.getElementById("select-matching");
  const clearSelection = document.getElementById("clear-selection");
  const boxes = Array.from(form.querySelectorAll("input.row-select"));
  const total = Number(bar.dataset.total);

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function showPageSelected() {
    scope.value = "page";
    barText.textContent =
      "All " + plural(boxes.length, "patient") + " on this page are selected.";
    if (selectMatching) {
      selectMatching.hidden = false;
    }
    bar.hidden = false;
  }

  function showAllSelected() {
    scope.value = "all";
    barText.textContent =
      "All " + plural(total, "patient") + " matching the filters are selected.";
    if (selectMatching) {
      selectMatching.hidden = true;
    }
    bar.hidden = false;
  }

  function clear() {
    boxes.forEach(function (box) {
      box.checked = false;
    });
    scope.value = "page";
    bar.hidden = true;
  }

  if (boxes.length > 0) {
    selectAll.hidden = false;
  }

  selectAll.addEventListener("click", function () {
    boxes.forEach(function (box) {
      box.checked = true;
    });
    showPageSelected();
  });

  if (selectMatching) {
    selectMatching.addEventListener("click", showAllSelected);
  }
  clearSelection.addEventListener("click", clear);

  // Unticking a row narrows the selection back to the ticked rows.
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      if (!box.checked) {
        scope.value = "page";
        bar.hidden = true;
      }
    });
  });
})();
