// Reload the page when the fleet's reports change (the server's /api/generation moves).
(function () {
  "use strict";
  var shown = document.body.getAttribute("data-generation");
  var every = 3000;
  function look() {
    fetch("/api/generation", {cache: "no-store"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.generation !== shown) {
          window.location.reload();
        }
      })
      .catch(function () { /* the server is restarting: try again later */ })
      .finally(function () { window.setTimeout(look, every); });
  }
  window.setTimeout(look, every);
})();
