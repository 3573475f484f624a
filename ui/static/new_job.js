// New-job page: a check can take seconds the first time (the dry run loads the model code), so say so;
// once a field changes after a check, the Queue button waits for a new check of what is shown.
(function () {
  "use strict";
  const form = document.getElementById("job-form");
  if (!form) return;
  const queue = document.getElementById("queue");
  form.addEventListener("submit", function (event) {
    const button = event.submitter;
    if (button) {
      button.textContent = button.value === "queue" ? "Queueing…" : "Checking…";
      setTimeout(() => { button.disabled = true; }, 0);
    }
  });
  if (!queue) return;
  form.addEventListener("input", function (event) {
    if (event.target.name === "alongside") return;
    queue.disabled = true;
    queue.title = "The values changed since the check: check again";
  });
})();
