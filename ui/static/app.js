// Shared by every page: the CSRF token for changes made from scripts.
(function () {
  "use strict";
  const meta = document.querySelector('meta[name="csrf-token"]');
  window.ltx2 = {
    csrf: meta ? meta.content : "",
    // POST a form's fields the way the form would, asking for JSON back.
    post: function (url, formData) {
      return fetch(url, {
        method: "POST",
        body: formData,
        headers: { "X-CSRF-Token": window.ltx2.csrf, "Accept": "application/json" },
        credentials: "same-origin",
      });
    },
  };
})();
