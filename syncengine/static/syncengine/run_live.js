// A queued or running run's page follows the run without a reload: every 2 seconds it asks the run's live/ URL
// for its status, stage, rows so far, rate and new log lines, and stops when the run has ended. A static file,
// since the pages' Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  const INTERVAL_MS = 2000;
  const live = document.getElementById("fdm-live");
  if (!live) {
    return;
  }
  let shown = parseInt(live.dataset.logCount, 10) || 0;

  function setText(id, text) {
    const element = document.getElementById(id);
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function appendLog(entries) {
    const table = document.getElementById("fdm-log");
    if (!table || entries.length === 0) {
      return;
    }
    const body = table.tBodies[0];
    for (const entry of entries) {
      const row = body.insertRow();
      row.className = "fdm-level-" + entry.level;
      for (const [text, css] of [[entry.ts, "fdm-ts"], [entry.level, ""], [entry.message, ""], [entry.fields, ""]]) {
        const cell = row.insertCell();
        cell.textContent = text;
        if (css) {
          cell.className = css;
        }
      }
    }
    table.hidden = false;
    const empty = document.getElementById("fdm-log-empty");
    if (empty) {
      empty.remove();
    }
  }

  function show(state) {
    setText("fdm-summary", state.summary);
    setText("fdm-live-status", state.status_label);
    setText("fdm-live-stage", state.stage);
    setText("fdm-live-rows", state.rows);
    setText("fdm-live-rate", state.rate);
    setText("fdm-live-elapsed", state.elapsed);
    const badge = document.querySelector(".field-status_badge .readonly strong");
    if (badge) {
      badge.textContent = state.status_label;
      badge.style.color = state.status_colour;
    }
    const summary = document.getElementById("fdm-summary");
    if (summary) {
      summary.className = "fdm-summary fdm-run-" + state.status;
    }
    appendLog(state.log);
    shown = state.log_count;
  }

  function finish() {
    live.dataset.state = "ended";
    const cancel = document.getElementById("fdm-cancel");
    if (cancel) {
      cancel.remove();
    }
    const note = document.getElementById("fdm-live-note");
    if (note) {
      note.textContent = "The run has ended. ";
      const link = document.createElement("a");
      link.href = window.location.pathname;
      link.textContent = "Show all its results";
      note.appendChild(link);
    }
  }

  async function poll() {
    try {
      const response = await fetch(live.dataset.url + "?after=" + shown, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const state = await response.json();
      show(state);
      live.dataset.state = "live";
      if (state.terminal) {
        finish();
        return;
      }
    } catch (error) {
      live.dataset.state = "unreachable";
      setText("fdm-live-note", "Could not reach the server (" + error.message + "); trying again.");
    }
    window.setTimeout(poll, INTERVAL_MS);
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
