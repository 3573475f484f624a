// Live parts of the runs list and the run page: the page is fetched again and each element marked
// data-live is replaced when its HTML changed (so a playing video is left alone when nothing new came).
// Every 2 s while something runs or waits, every 10 s otherwise, never while the tab is hidden.
(function () {
  "use strict";
  const live = () => Array.from(document.querySelectorAll("[data-live][id]"));
  if (!live().length) return;
  const active = () => document.querySelector('[data-state="running"], [data-state="queued"], [data-state="stopping"], .state.running, .state.queued, .state.stopping') !== null;
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const element of live()) {
        const replacement = fresh.getElementById(element.id);
        if (replacement && replacement.innerHTML !== element.innerHTML) {
          element.innerHTML = replacement.innerHTML;
          element.dispatchEvent(new CustomEvent("ltx2:updated", { bubbles: true }));
        }
      }
      document.dispatchEvent(new CustomEvent("ltx2:refreshed"));
    } catch (error) {
      console.warn("live update failed", error);
    } finally {
      busy = false;
      setTimeout(refresh, active() ? 2000 : 10000);
    }
  }
  setTimeout(refresh, active() ? 2000 : 10000);
})();
