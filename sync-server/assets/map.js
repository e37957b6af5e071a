// The console's map: the station's own data on a blank background (no tile
// server is reachable from an intranet). Shops, open cases and rectification
// items are each indexed with Supercluster and drawn as clusters when zoomed
// out, one by one (on a canvas) when zoomed in, with the shops' zones at
// street level; the heat layer sums the period's reports. Every text is set
// as text, never as HTML.
(function () {
  "use strict";
  var el = document.getElementById("map");
  var status = document.getElementById("map-status");
  if (!el || !window.L) { return; }
  var started = performance.now();
  var map = L.map(el, { preferCanvas: true, zoomSnap: 1, maxZoom: 20 });
  var canvas = L.canvas({ padding: 0.3 });
  var zoneLayer = L.layerGroup().addTo(map);
  var colours = { reported: "#b5121b", accepted: "#b5121b", dispatched: "#bf8700",
    in_progress: "#bf8700", awaiting_verification: "#8250df" };

  function text(tag, value) {
    var node = document.createElement(tag);
    node.textContent = value;
    return node;
  }

  function popup(title, href, label) {
    var box = document.createElement("div");
    box.appendChild(text("b", title));
    box.appendChild(document.createElement("br"));
    var a = text("a", label);
    a.href = href;
    box.appendChild(a);
    return box;
  }

  // A layer of points, clustered by Supercluster: `points` are
  // [lat, lon, properties]; `dot(properties, latlng)` draws one point.
  function clustered(points, colour, className, dot) {
    var index = new Supercluster({ radius: 60, maxZoom: 17 });
    index.load(points.map(function (p) {
      return { type: "Feature", properties: p[2], geometry: { type: "Point", coordinates: [p[1], p[0]] } };
    }));
    var layer = L.layerGroup();
    layer.redraw = function () {
      layer.clearLayers();
      if (!map.hasLayer(layer)) { return; }
      var b = map.getBounds();
      index.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], map.getZoom())
        .forEach(function (f) {
          var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
          if (!f.properties.cluster) { layer.addLayer(dot(f.properties, ll)); return; }
          var n = f.properties.point_count;
          var size = n < 100 ? 30 : n < 1000 ? 36 : 44;
          var m = L.marker(ll, { icon: L.divIcon({ className: className, html: "", iconSize: [size, size] }) });
          m.on("add", function () {
            var node = m.getElement();
            if (!node) { return; }
            node.textContent = String(n);
            node.style.cssText += ";background:" + colour + ";color:#fff;border-radius:50%;display:flex;" +
              "align-items:center;justify-content:center;font-size:12px;font-weight:bold";
          });
          m.on("click", function () {
            map.setView(ll, Math.min(index.getClusterExpansionZoom(f.properties.cluster_id), 20));
          });
          layer.addLayer(m);
        });
    };
    layer.on("add", function () { setTimeout(layer.redraw, 0); });
    return layer;
  }

  function drawZones() {
    if (map.getZoom() < 18) { zoneLayer.clearLayers(); return; }
    var b = map.getBounds();
    var bbox = [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()].join(",");
    fetch("/console/map/zones.json?bbox=" + encodeURIComponent(bbox), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (zones) {
        zoneLayer.clearLayers();
        zones.forEach(function (z) {
          zoneLayer.addLayer(L.polygon(z[1], { renderer: canvas, color: "#0969da", weight: 1, fillOpacity: 0.08 }));
        });
      });
  }

  fetch(el.dataset.src, { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    })
    .then(function (d) {
      var shops = clustered(d.shops.map(function (s) { return [s[2], s[3], { id: s[0], name: s[1] }]; }),
        "rgba(9,105,218,.75)", "shop-cluster", function (p, ll) {
          var dot = L.circleMarker(ll, { renderer: canvas, radius: 5, color: "#0969da", weight: 1, fillOpacity: 0.8 });
          dot.bindPopup(function () { return popup(p.name, "/console/shop?id=" + encodeURIComponent(p.id), "打开商户"); });
          return dot;
        });
      var cases = clustered(d.open.map(function (c) { return [c[4], c[5], { key: c[0], category: c[1], status: c[2], label: c[3] }]; }),
        "rgba(181,18,27,.8)", "case-cluster", function (p, ll) {
          var m = L.circleMarker(ll, { renderer: canvas, radius: 7, color: "#fff", weight: 2,
            fillColor: colours[p.status] || "#57606a", fillOpacity: 0.95 });
          m.bindPopup(function () { return popup(p.label + " · " + p.category, "/console/case/" + encodeURIComponent(p.key), "打开案件"); });
          return m;
        });
      var items = clustered(d.items.map(function (i) { return [i[2], i[3], { shop: i[0], item: i[1], overdue: i[4] }]; }),
        "rgba(251,133,0,.85)", "item-cluster", function (p, ll) {
          var m = L.circleMarker(ll, { renderer: canvas, radius: 4, color: "#fb8500", weight: p.overdue ? 3 : 1, fillOpacity: 0.6 });
          m.bindPopup(function () { return popup(p.item, "/console/shop?id=" + encodeURIComponent(p.shop), "打开商户"); });
          return m;
        });
      var heat = L.heatLayer(d.heat.map(function (h) { return [h[0], h[1], 1]; }),
        { radius: 22, blur: 18, maxZoom: 17, minOpacity: 0.25 });
      var centre = (el.dataset.centre || "").split(",").map(Number);
      if (el.dataset.centre && centre.length === 2 && isFinite(centre[0]) && isFinite(centre[1])) {
        map.setView(centre, 18);
      } else if (d.shops.length) {
        var s = 90, w = 180, n = -90, e = -180;
        d.shops.forEach(function (p) {
          if (p[2] < s) { s = p[2]; } if (p[2] > n) { n = p[2]; }
          if (p[3] < w) { w = p[3]; } if (p[3] > e) { e = p[3]; }
        });
        map.fitBounds([[s, w], [n, e]]);
      } else {
        map.setView([39.9, 116.4], 12);
      }
      heat.addTo(map);
      shops.addTo(map);
      items.addTo(map);
      cases.addTo(map);
      L.control.layers(null, { "热力": heat, "整改项": items, "案件": cases, "商户": shops },
        { collapsed: false }).addTo(map);
      map.on("moveend", function () { shops.redraw(); cases.redraw(); items.redraw(); drawZones(); });
      shops.redraw(); cases.redraw(); items.redraw(); drawZones();
      var ms = Math.round(performance.now() - started);
      el.dataset.shops = String(d.shops.length);
      el.dataset.cases = String(d.open.length);
      el.dataset.heat = String(d.heat.length);
      // Since the page's navigation began: what a user waits.
      el.dataset.readyMs = String(Math.round(performance.now()));
      el.dataset.ready = "1";
      status.textContent = "商户 " + d.shops.length + " 家，未结案件 " + d.open.length + " 件，整改项 " +
        d.items.length + " 项，时段内上报 " + d.heat.length + " 件（" + ms + " 毫秒）。";
    })
    .catch(function (e) {
      status.textContent = "地图数据载入失败：" + e.message;
      el.dataset.ready = "error";
    });
})();
