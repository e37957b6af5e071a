// A patrol's track (red) and the lanes it passed (blue, labelled with their
// coverage) from the station's GeoJSON; no tiles.
(function () {
  "use strict";
  var el = document.getElementById("patrol-map");
  if (!el || !window.L) { return; }
  var map = L.map(el, { preferCanvas: true, maxZoom: 20 });
  fetch(el.dataset.src, { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(function (gj) {
      var layer = L.geoJSON(gj, {
        style: function (f) {
          return f.properties.kind === "patrol"
            ? { color: "#b5121b", weight: 4 }
            : { color: "#0969da", weight: 6, opacity: 0.5 };
        },
        onEachFeature: function (f, l) {
          if (f.properties.kind === "lane") {
            l.bindTooltip(f.properties.name + " " + Math.round(f.properties.covered * 100) + "%");
          }
        }
      }).addTo(map);
      var b = layer.getBounds();
      if (b.isValid()) { map.fitBounds(b.pad(0.2)); } else { map.setView([39.9, 116.4], 15); }
      el.dataset.ready = "1";
      el.dataset.features = String(gj.features.length);
    })
    .catch(function () { el.dataset.ready = "error"; });
})();
