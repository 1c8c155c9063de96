// The print button of the activation letters page. Without this script the
// browser's own Print command prints the same letters.
(function () {
  "use strict";

  const button = document.getElementById("print-letters");
  if (button) {
    button.addEventListener("click", function () {
      window.print();
    });
  }
})();
