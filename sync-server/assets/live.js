// The overview updates by itself: the station sends an event with the change
// feed's head whenever it moves (a device pushed, the sweep ran), and the
// figures are fetched again. The station recomputes an area's figures at most
// every few seconds, so while the figures are older than the event, they are
// fetched again a little later. Without JavaScript the page is the same, as
// of its loading.
(function () {
  "use strict";
  var box = document.getElementById("figures");
  if (!box || !window.EventSource) { return; }
  var wanted = Number(box.dataset.head) || 0;
  var pending = false;
  var again = null;
  function refresh() {
    if (pending) { return; }
    pending = true;
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        pending = false;
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("figures");
        if (!fresh) { return; }
        box.replaceChildren.apply(box, Array.prototype.slice.call(fresh.childNodes));
        box.dataset.head = fresh.dataset.head;
        box.dataset.updated = String(Date.now());
        if ((Number(fresh.dataset.head) || 0) < wanted && again === null) {
          again = setTimeout(function () { again = null; refresh(); }, 2000);
        }
      })
      .catch(function () { pending = false; });
  }
  var events = new EventSource(box.dataset.events);
  events.onmessage = function (e) {
    wanted = Math.max(wanted, Number(e.data) || 0);
    refresh();
  };
})();
