// Progressive enhancement only: search, filters, sign-in and indexing all work with JavaScript off.
// Served from 'self' under a CSP with no inline script; it never writes HTML from data (textContent only).
"use strict";

(function () {
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function resultLinks() {
    return Array.prototype.slice.call(document.querySelectorAll(".groups a.open"));
  }

  // "/" focuses the query box; ArrowDown/ArrowUp move between results; Enter opens the focused one (a link).
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var box = document.getElementById("q");
    if (event.key === "/" && box && !typing(event.target)) {
      event.preventDefault();
      box.focus();
      box.select();
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    if (typing(event.target) && event.target !== box) return;
    var links = resultLinks();
    if (links.length === 0) return;
    event.preventDefault();
    var at = links.indexOf(document.activeElement);
    var next = event.key === "ArrowDown" ? Math.min(at + 1, links.length - 1) : at - 1;
    if (next < 0) {
      if (box) box.focus();
      return;
    }
    links[next].focus();
  });

  // The collection page follows a running index operation through its progress events.
  function follow(panel) {
    var source = new EventSource(panel.getAttribute("data-events"));
    function set(id, value) {
      var element = document.getElementById(id);
      if (element) element.textContent = String(value);
    }
    function show(operation) {
      set("operation-status", operation.status);
      set("op-processed", operation.files_processed);
      set("op-total", operation.files_total);
      set("op-failed", operation.files_failed);
      set("op-chunks", operation.chunks);
      var bar = document.getElementById("operation-bar");
      if (bar) {
        bar.max = Math.max(operation.files_total, 1);
        bar.value = operation.files_processed;
        bar.textContent = operation.files_processed + " of " + operation.files_total;
      }
      var error = document.getElementById("operation-error");
      if (error && operation.error) {
        error.textContent = operation.error;
        error.hidden = false;
      }
    }
    source.addEventListener("progress", function (event) {
      show(JSON.parse(event.data));
    });
    source.addEventListener("end", function (event) {
      source.close();
      var operation = JSON.parse(event.data);
      show(operation);
      set("phase", operation.status === "succeeded" ? "Ready" : operation.status);
      panel.setAttribute("data-active", "false");
      panel.setAttribute("data-ended", operation.status);
    });
    source.onerror = function () {
      // EventSource reconnects by itself with Last-Event-ID; a closed stream (signed out) stops here.
      if (source.readyState === EventSource.CLOSED) panel.setAttribute("data-stream", "closed");
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.querySelector("[data-operation][data-active=true]");
    if (panel && window.EventSource) follow(panel);
  });
})();
