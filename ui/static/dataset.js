// Dataset page: save a caption without leaving the page (the form posts normally without scripts).
(function () {
  "use strict";
  for (const form of document.querySelectorAll("form.caption")) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const note = form.querySelector(".saved");
      note.textContent = "saving…";
      const response = await window.ltx2.post(form.action, new FormData(form));
      const body = await response.json().catch(() => ({}));
      note.textContent = response.ok ? "saved " + body.saved : "not saved: " + (body.error || response.status);
      note.classList.toggle("error", !response.ok);
    });
  }
})();
