// The front page's engine panel refreshes itself: every data-refresh-seconds it fetches the page again and
// swaps in the new panel, so counts, failing tables, the queue and the charts stay current without a reload.
// It waits while the tab is hidden and keeps the old panel when a fetch fails. A static file: the pages'
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  const panel = document.getElementById("fdm-engine-panel");
  if (!panel) {
    return;
  }
  const seconds = parseInt(panel.dataset.refreshSeconds, 10) || 30;

  async function refresh() {
    if (document.hidden) {
      return;
    }
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) {
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("fdm-engine-panel");
      const current = document.getElementById("fdm-engine-panel");
      // Swapped only when something changed: an unchanged panel keeps its nodes (focus, hover, selection).
      if (fresh && current && fresh.innerHTML !== current.innerHTML) {
        current.replaceChildren(...fresh.childNodes);
      }
      const stamp = document.getElementById("fdm-refreshed-at");
      if (stamp) {
        stamp.textContent = new Date().toTimeString().slice(0, 8);
      }
    } catch (error) {
      // A network blip: the panel shows its last state until the next try.
    }
  }

  window.fdmRefreshPanel = refresh; // for the page's tests: one refresh now
  window.setInterval(refresh, seconds * 1000);
})();
