/*
 * The deploy and rollback panel: clocks that count on, and copy buttons.
 *
 * A clock <span class="clock" data-clock-from="ISO time"> was rendered with the page as
 * hours:minutes "as of" a time; this keeps it current (checking every second, so the
 * minute turns on time) and hides the "as of". A copy button <button data-copy="ID" hidden> is shown, and
 * copies the text of the element with that id; it marks itself data-copied with the
 * text it copied. Both work on content a live update brings, by looking anew each
 * time. Without this script the clocks stay as rendered and the commands stay
 * selectable.
 */
(function () {
  "use strict";

  function two(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".clock[data-clock-from]").forEach(function (clock) {
      var from = Date.parse(clock.getAttribute("data-clock-from"));
      if (isNaN(from)) {
        return;
      }
      var minutes = Math.max(0, Math.floor((now - from) / 60000));
      clock.textContent = Math.floor(minutes / 60) + ":" + two(minutes % 60);
      var asOf = clock.parentNode.querySelector(".clock__asof");
      if (asOf) {
        asOf.hidden = true;
      }
    });
    document.querySelectorAll("button[data-copy][hidden]").forEach(function (button) {
      if (navigator.clipboard) {
        button.hidden = false;
      }
    });
  }

  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = source.textContent;
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    navigator.clipboard.writeText(text).then(
      function () {
        button.setAttribute("data-copied", text);
        button.textContent = button.getAttribute("data-label-copied");
      },
      function () {
        button.textContent = button.getAttribute("data-label-failed");
      }
    );
    window.setTimeout(function () {
      button.textContent = original;
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (button) {
      copy(button);
    }
  });
  tick();
  window.setInterval(tick, 1000);
})();
