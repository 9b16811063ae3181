/*
 * A refused action (403/409/422/429) comes back with its message and is swapped in; any
 * other failed request swaps nothing, so say so here, in #messages, with the text of its
 * data-failure attribute. That covers what a page asks for as well as what it sends: a
 * filter, a section opened on demand or a check's result that meets a 404, a 500 or a
 * lost connection would otherwise leave the page as it was, as if nothing had been asked.
 *
 * A file rather than an inline script, which the Content-Security-Policy would refuse.
 * Loaded with defer after htmx, so it listens before htmx sends anything.
 */
(function () {
  "use strict";

  function reportFailure(event) {
    var detail = event.detail || {};
    var status = detail.xhr ? detail.xhr.status : 0;
    if ([403, 409, 422, 429].indexOf(status) >= 0) {
      return;
    }
    var box = document.getElementById("messages");
    var line = document.createElement("p");
    line.className = "message message--error";
    line.textContent = box.dataset.failure;
    box.replaceChildren(line);
  }

  document.addEventListener("htmx:responseError", reportFailure);
  document.addEventListener("htmx:sendError", reportFailure);
})();
