// Checks the size of the chosen file before it is uploaded, so that a file
// over the limit is refused at once instead of after a long upload. The
// server checks it again.
(function () {
  "use strict";

  const form = document.getElementById("import-upload");
  if (!form) {
    return;
  }
  const input = form.querySelector("input[type=file]");
  const error = document.getElementById("file-size-error");
  const maxBytes = Number(form.dataset.maxBytes);
  const button = document.getElementById("upload-button");

  function tooLarge() {
    const file = input.files && input.files[0];
    return file && maxBytes && file.size > maxBytes ? file : null;
  }

  input.addEventListener("change", function () {
    const file = tooLarge();
    error.hidden = !file;
    error.textContent = file
      ? file.name + " is larger than " + form.dataset.maxText +
        ", the largest file this page accepts. NDJSON files can be uploaded in a .zip. " +
        "Otherwise ask the person who looks after this system to import it with the " +
        "import_patients command."
      : "";
  });

  form.addEventListener("submit", function (event) {
    if (tooLarge()) {
      event.preventDefault();
      error.hidden = false;
      return;
    }
    button.disabled = true;
    button.textContent = "Uploading…";
  });
})();
