// The overview updates by itself: the station sends an event whenever its
// change feed moves (a device pushed, the sweep ran), and the figures are
// fetched again. Without JavaScript the page is the same, as of its loading.
(function () {
  "use strict";
  var box = document.getElementById("figures");
  if (!box || !window.EventSource) { return; }
  var pending = false;
  function refresh() {
    if (pending) { return; }
    pending = true;
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        pending = false;
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("figures");
        if (fresh) {
          box.replaceChildren.apply(box, Array.prototype.slice.call(fresh.childNodes));
          box.dataset.updated = String(Date.now());
        }
      })
      .catch(function () { pending = false; });
  }
  var events = new EventSource(box.dataset.events);
  events.onmessage = refresh;
})();
