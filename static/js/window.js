/*
 * The maintenance window panel, in the reader's own time zone and with its time left
 * counting down. The page is rendered once per release revision for everyone, in the
 * site's zone and with the time left as of that render; the browser alone knows its
 * zone and the present minute. Without JavaScript the panel reads as rendered.
 *
 * Panels are swapped in by live updates, so each pass looks for them again.
 */
(function () {
  "use strict";

  var MINUTE = 60 * 1000;

  function zoneOfReader() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function language() {
    return document.documentElement.lang || undefined;
  }

  function unit(amount, name) {
    return new Intl.NumberFormat(language(), {
      style: "unit", unit: name, unitDisplay: "long",
    }).format(amount);
  }

  function left(until) {
    var minutes = Math.max(0, Math.round((until - Date.now()) / MINUTE));
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var parts = [];
    if (days) { parts.push(unit(days, "day")); }
    if (hours) { parts.push(unit(hours, "hour")); }
    if (!days) { parts.push(unit(minutes % 60, "minute")); }
    return parts.join(" ");
  }

  function shown(iso) {
    return new Intl.DateTimeFormat(language(), {
      weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    }).format(new Date(iso));
  }

  function refresh() {
    var zone = zoneOfReader();
    document.querySelectorAll("[data-window-reader]").forEach(function (fact) {
      if (!zone) { return; }
      fact.hidden = zone === fact.dataset.windowZone;
      fact.querySelector("dt").textContent = fact.dataset.label + " (" + zone + ")";
      fact.querySelector("dd").textContent =
        shown(fact.dataset.start) + " \u2013 " + shown(fact.dataset.end);
    });
    document.querySelectorAll("[data-window-until]").forEach(function (element) {
      element.textContent = left(Date.parse(element.dataset.windowUntil));
    });
  }

  function start() {
    if (!window.Intl || !Intl.NumberFormat.prototype.formatToParts) { return; }
    refresh();
    window.setInterval(refresh, 15 * 1000);
    // A live update swaps in a new panel as the server rendered it: redo it at once. The
    // text this sets adds no element, so it does not wake the observer again.
    new MutationObserver(function (mutations) {
      var swapped = mutations.some(function (mutation) {
        return Array.prototype.some.call(mutation.addedNodes, function (node) {
          return node.id === "maintenance-window";
        });
      });
      if (swapped) { refresh(); }
    }).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
