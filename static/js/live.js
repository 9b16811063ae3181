/*
 * Live updates for the board and status pages.
 *
 * The page marks its live region with
 *   <div id="live" data-live-url="…" data-poll-url="…" data-revision="N" data-page="board">
 * and its indicator with
 *   <span id="live-indicator" data-label-live="…" data-label-reconnecting="…"
 *         data-label-polling="…" data-label-offline="…"></span>
 * The stream (Server-Sent Events) sends `update` events whose data is HTML of
 * hx-swap-oob fragments and whose id is the revision they bring the page to; each
 * fragment takes the place of the element with its DOM id. When the stream fails the
 * page polls data-poll-url every 5 s, says so, and tries the stream again now and then.
 * An action sent from the page (an htmx POST inside #live) says which revision the page
 * shows (X-Revision-Shown); its answer names the revision it brings the page to
 * (X-Revision) and is applied here in the same order as the stream's updates, so the
 * page applies each revision once.
 * Without #live, htmx or fetch this script does nothing.
 */
(function () {
  "use strict";

  var POLL_MS = 5000;
  // A stream that ended (servers end them every few minutes) usually reconnects
  // within a couple of seconds; only a longer gap is worth showing.
  var QUIET_RECONNECT_MS = 3000;
  // After this long without the stream, poll instead.
  var GIVE_UP_MS = 10000;
  // While polling, how often to try the stream again.
  var RETRY_STREAM_MS = 30000;
  var STATES = ["live", "reconnecting", "polling", "offline", "revoked"];
  // The class htmx gives new content while it settles; app.css flashes a changed row.
  var SETTLING = "htmx-settling";
  var SETTLE_MS = 20;
  // What a section loaded on demand says of its rows, for the board's filters.
  var SECTION_FLAGS = ["data-mine", "data-pending", "data-stopped"];

  function start(root) {
    var indicator = document.getElementById("live-indicator");
    var source = null;
    var pollTimer = null;
    var retryTimer = null;
    var quietTimer = null;
    var giveUpTimer = null;
    var polling = false;

    function revision() {
      return parseInt(root.getAttribute("data-revision"), 10) || 0;
    }

    function url(attribute) {
      var target = new URL(root.getAttribute(attribute), window.location.href);
      target.searchParams.set("page", root.getAttribute("data-page") || "board");
      target.searchParams.set("since", String(revision()));
      return target.toString();
    }

    function show(state) {
      root.setAttribute("data-live-state", state);
      if (!indicator) {
        return;
      }
      var label = indicator.getAttribute("data-label-" + state);
      if (label) {
        indicator.textContent = label;
      }
      STATES.forEach(function (each) {
        indicator.classList.toggle("is-" + each, each === state);
      });
      indicator.setAttribute("data-state", state);
    }

    // A row replaced by a live update must not take away what the person was typing in
    // it: open panels, typed text and focus come back on the fresh row, which carries
    // the item's new version and state.
    function rememberEdits() {
      var edits = { open: [], values: [], focused: null };
      // A section opened on demand is never replaced: only an item's own panel is.
      document.querySelectorAll("details[open]:not([data-on-demand])").forEach(function (details) {
        var row = details.closest("[id]");
        if (row) {
          edits.open.push(row.id);
        }
      });
      document.querySelectorAll("input[id], textarea[id]").forEach(function (field) {
        if (field.type !== "hidden" && field.type !== "checkbox" && field.value !== field.defaultValue) {
          edits.values.push([field.id, field.value]);
        }
      });
      // Where the focus is, by id, and the ids around it: when the update replaces the
      // focused control with one that has no id, or none at all, the focus stays in the
      // panel it was in rather than falling back to the top of the page.
      edits.around = [];
      var active = document.activeElement;
      if (active && active.id) {
        edits.focused = active.id;
      }
      for (var node = active && active.parentElement; node && node !== root; node = node.parentElement) {
        if (node.id) {
          edits.around.push(node.id);
        }
      }
      return edits;
    }

    function keepFocusNear(ids) {
      if (document.activeElement && document.activeElement !== document.body) {
        return;
      }
      for (var index = 0; index < ids.length; index += 1) {
        var near = document.getElementById(ids[index]);
        if (near) {
          if (!near.hasAttribute("tabindex")) {
            near.setAttribute("tabindex", "-1");
          }
          near.focus({ preventScroll: true });
          return;
        }
      }
    }

    function restoreEdits(edits) {
      edits.open.forEach(function (id) {
        var row = document.getElementById(id);
        var details = row && row.querySelector("details");
        if (details) {
          details.open = true;
        }
      });
      edits.values.forEach(function (pair) {
        var field = document.getElementById(pair[0]);
        if (field) {
          field.value = pair[1];
        }
      });
      var focused = edits.focused && document.getElementById(edits.focused);
      if (focused && focused !== document.activeElement) {
        focused.focus({ preventScroll: true });
      }
      // No such control any more, or one that cannot take the focus (disabled).
      keepFocusNear(edits.around);
    }

    // A section a big board loads on demand keeps its place, open or not, and the rows
    // it may have loaded (they get their own updates): only its heading and what the
    // filters know of it change.
    function updateClosedSection(section, fresh) {
      SECTION_FLAGS.forEach(function (flag) {
        section.toggleAttribute(flag, fresh.hasAttribute(flag));
      });
      var heading = fresh.querySelector("summary");
      if (heading) {
        section.querySelector("summary").replaceWith(heading);
      }
    }

    // Each fragment replaces the element with its id. Done here rather than by
    // htmx.swap, which costs twice as much per update, and on a release day every open
    // page swaps every update at once. A big board loads some sections only when
    // opened: a changed row of a section that is not on the page has nowhere to go.
    function swapIn(html) {
      var parsed = document.createElement("template");
      parsed.innerHTML = html;
      var fresh = [];
      Array.prototype.slice.call(parsed.content.children).forEach(function (fragment) {
        var current = fragment.id && document.getElementById(fragment.id);
        if (!current) {
          return;
        }
        if (current.hasAttribute("data-on-demand")) {
          updateClosedSection(current, fragment);
          return;
        }
        fragment.removeAttribute("hx-swap-oob");
        current.replaceWith(fragment);
        fresh.push(fragment);
      });
      fresh.forEach(function (element) {
        // The fresh rows' own forms and links, and the flash of a changed row.
        htmx.process(element);
        element.classList.add(SETTLING);
      });
      window.setTimeout(function () {
        fresh.forEach(function (element) {
          element.classList.remove(SETTLING);
        });
      }, SETTLE_MS);
      return fresh;
    }

    // A refused form comes back in its row (data-refused) with what was typed and why
    // beside it. When the row took the focus away with it (the button just pressed),
    // the focus goes to that field.
    function focusRefused(fresh) {
      if (document.activeElement && document.activeElement !== document.body) {
        return;
      }
      for (var index = 0; index < fresh.length; index += 1) {
        var row = fresh[index];
        var field = row.hasAttribute("data-refused") && row.querySelector('[aria-invalid="true"]');
        if (field) {
          field.focus({ preventScroll: true });
          return;
        }
      }
    }

    function swapKeepingEdits(html) {
      var edits = rememberEdits();
      focusRefused(swapIn(html));
      restoreEdits(edits);
    }

    // Whether the page took the update: one no newer than what the page shows (a poll
    // racing the stream, the stream's update for an action whose answer came first)
    // would put the same or stale fragments back.
    function apply(html, newRevision) {
      if (!(newRevision > revision())) {
        return false;
      }
      if (html) {
        swapKeepingEdits(html);
      }
      root.setAttribute("data-revision", String(newRevision));
      root.dispatchEvent(
        new CustomEvent("live:updated", { bubbles: true, detail: { revision: newRevision } })
      );
      return true;
    }

    // An action's answer: what it holds for the live region goes through apply(), like
    // a stream update; htmx swaps the rest (the message, outside #live).
    function takeAnswer(event) {
      var detail = event.detail;
      var newRevision = parseInt(detail.xhr.getResponseHeader("X-Revision"), 10);
      if (event.target !== event.currentTarget || !detail.shouldSwap || isNaN(newRevision)) {
        return;
      }
      var parsed = document.createElement("template");
      parsed.innerHTML = detail.serverResponse;
      var live = [];
      var elsewhere = [];
      var refused = [];
      Array.prototype.forEach.call(parsed.content.children, function (fragment) {
        var current = fragment.id && document.getElementById(fragment.id);
        (current && !root.contains(current) ? elsewhere : live).push(fragment.outerHTML);
        if (fragment.hasAttribute("data-refused")) {
          refused.push(fragment.outerHTML);
        }
      });
      detail.serverResponse = elsewhere.join("\n");
      if (!apply(live.join("\n"), newRevision) && detail.isError) {
        // Refused, and the page already shows its rows as they are: only a box the
        // person ticked or cleared is off; put it back. A refused form's row is the
        // same row with what was typed and why beside it.
        event.currentTarget.querySelectorAll("input[type=checkbox]").forEach(function (box) {
          box.checked = box.defaultChecked;
        });
        if (refused.length) {
          swapKeepingEdits(refused.join("\n"));
        }
      }
    }

    // The answer is heard on the form that sent the action, not the document: a stream
    // update may replace the form before its answer comes, and then the answer's events
    // reach none of the page's elements.
    var answered = new WeakSet();
    document.addEventListener("htmx:configRequest", function (event) {
      var sender = event.detail.elt;
      if (event.detail.verb === "get" || !root.contains(sender)) {
        return;
      }
      event.detail.headers["X-Revision-Shown"] = String(revision());
      if (!answered.has(sender)) {
        answered.add(sender);
        sender.addEventListener("htmx:beforeSwap", takeAnswer);
      }
    });

    function clear(timer) {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      return null;
    }

    function poll() {
      fetch(url("data-poll-url"), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      })
        .then(function (response) {
          var newRevision = parseInt(response.headers.get("X-Revision"), 10);
          // A redirect means the session ended (to the login page); anything without
          // X-Revision is not ours to swap in.
          if (response.redirected || !response.ok || isNaN(newRevision)) {
            show("offline");
            return null;
          }
          if (polling) {
            show("polling");
          }
          if (response.status === 204) {
            return null;
          }
          return response.text().then(function (html) {
            apply(html, newRevision);
          });
        })
        .catch(function () {
          show("offline");
        });
    }

    function stopPolling() {
      polling = false;
      if (pollTimer !== null) {
        window.clearInterval(pollTimer);
        pollTimer = null;
      }
      retryTimer = clear(retryTimer);
    }

    function fallBack() {
      quietTimer = clear(quietTimer);
      giveUpTimer = clear(giveUpTimer);
      if (source) {
        source.close();
        source = null;
      }
      polling = true;
      show("polling");
      poll();
      if (pollTimer === null) {
        pollTimer = window.setInterval(poll, POLL_MS);
      }
      retryTimer = clear(retryTimer);
      retryTimer = window.setTimeout(connect, RETRY_STREAM_MS);
    }

    function connect() {
      if (!window.EventSource) {
        fallBack();
        return;
      }
      if (source) {
        source.close();
      }
      var stream = new EventSource(url("data-live-url"));
      var opened = false;
      source = stream;
      giveUpTimer = clear(giveUpTimer);
      giveUpTimer = window.setTimeout(fallBack, GIVE_UP_MS);

      stream.addEventListener("revision", function () {
        if (source !== stream) {
          return;
        }
        opened = true;
        quietTimer = clear(quietTimer);
        giveUpTimer = clear(giveUpTimer);
        stopPolling();
        show("live");
      });
      stream.addEventListener("update", function (event) {
        if (source === stream) {
          apply(event.data, parseInt(event.lastEventId, 10));
        }
      });
      // Access ended (a person removed, a link revoked): no more updates, no retries.
      stream.addEventListener("revoked", function () {
        if (source !== stream) {
          return;
        }
        stream.close();
        source = null;
        stopPolling();
        quietTimer = clear(quietTimer);
        giveUpTimer = clear(giveUpTimer);
        show("revoked");
      });
      stream.addEventListener("error", function () {
        if (source !== stream) {
          return;
        }
        // CLOSED: the server refused (not a stream, 4xx/5xx); the browser will not retry.
        // A stream that never opened is no better while we poll anyway.
        if (stream.readyState === EventSource.CLOSED || !opened) {
          fallBack();
          return;
        }
        // CONNECTING: the browser reconnects by itself, sending Last-Event-ID.
        if (quietTimer === null) {
          quietTimer = window.setTimeout(function () {
            quietTimer = null;
            show("reconnecting");
          }, QUIET_RECONNECT_MS);
        }
        if (giveUpTimer === null) {
          giveUpTimer = window.setTimeout(fallBack, GIVE_UP_MS);
        }
      });
    }

    window.addEventListener("pagehide", function () {
      stopPolling();
      quietTimer = clear(quietTimer);
      giveUpTimer = clear(giveUpTimer);
      if (source) {
        source.close();
        source = null;
      }
    });
    window.addEventListener("pageshow", function (event) {
      // Back/forward cache: the page comes back without its stream.
      if (event.persisted && source === null && !polling) {
        connect();
      }
    });

    connect();
  }

  function init() {
    var root = document.getElementById("live");
    if (!root || !window.htmx || !window.fetch || !window.URL) {
      return;
    }
    if (!root.getAttribute("data-live-url") || !root.getAttribute("data-poll-url")) {
      return;
    }
    start(root);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
