// The console's map: the station's own data on a blank background (no tile
// server is reachable from an intranet). Shops are clustered with
// Supercluster when zoomed out and drawn with their zones when zoomed in;
// open cases and rectification items are coloured by status; the heat layer
// sums the period's reports. Every text is set as text, never as HTML.
(function () {
  "use strict";
  var el = document.getElementById("map");
  var status = document.getElementById("map-status");
  if (!el || !window.L) { return; }
  var started = performance.now();
  var map = L.map(el, { preferCanvas: true, zoomSnap: 1, maxZoom: 20 });
  var canvas = L.canvas({ padding: 0.3 });
  var clusterLayer = L.layerGroup().addTo(map);
  var zoneLayer = L.layerGroup().addTo(map);
  var caseLayer = L.layerGroup();
  var itemLayer = L.layerGroup();
  var colours = { reported: "#b5121b", accepted: "#b5121b", dispatched: "#bf8700",
    in_progress: "#bf8700", awaiting_verification: "#8250df" };
  var index = null;
  var shopsDrawn = 0;

  function text(tag, value) {
    var node = document.createElement(tag);
    node.textContent = value;
    return node;
  }

  function link(href, label) {
    var a = text("a", label);
    a.href = href;
    return a;
  }

  function popup(title, href, label) {
    var box = document.createElement("div");
    box.appendChild(text("b", title));
    box.appendChild(document.createElement("br"));
    box.appendChild(link(href, label));
    return box;
  }

  function drawClusters() {
    if (!index) { return; }
    var b = map.getBounds();
    var zoom = map.getZoom();
    var found = index.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], zoom);
    clusterLayer.clearLayers();
    found.forEach(function (f) {
      var lon = f.geometry.coordinates[0], lat = f.geometry.coordinates[1];
      if (f.properties.cluster) {
        var n = f.properties.point_count;
        var m = L.marker([lat, lon], { icon: L.divIcon({
          className: "shop-cluster",
          html: "",
          iconSize: [34, 34] }) });
        m.on("add", function () {
          var node = m.getElement();
          if (node) {
            node.textContent = String(n);
            node.style.cssText += ";background:rgba(9,105,218,.75);color:#fff;border-radius:50%;" +
              "display:flex;align-items:center;justify-content:center;font-size:12px;font-weight:bold";
          }
        });
        m.on("click", function () {
          map.setView([lat, lon], Math.min(index.getClusterExpansionZoom(f.properties.cluster_id), 20));
        });
        clusterLayer.addLayer(m);
      } else {
        var p = f.properties;
        var dot = L.circleMarker([lat, lon], { renderer: canvas, radius: 5, color: "#0969da",
          weight: 1, fillOpacity: 0.8, className: "shop" });
        dot.bindPopup(function () { return popup(p.name, "/console/shop?id=" + encodeURIComponent(p.id), "打开商户"); });
        clusterLayer.addLayer(dot);
      }
    });
    if (zoom >= 18) { drawZones(b); } else { zoneLayer.clearLayers(); }
  }

  function drawZones(b) {
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
      var features = d.shops.map(function (s) {
        return { type: "Feature", properties: { id: s[0], name: s[1] },
          geometry: { type: "Point", coordinates: [s[3], s[2]] } };
      });
      index = new Supercluster({ radius: 60, maxZoom: 17 });
      index.load(features);
      shopsDrawn = features.length;
      d.open.forEach(function (c) {
        var m = L.circleMarker([c[4], c[5]], { renderer: canvas, radius: 7, color: "#fff", weight: 2,
          fillColor: colours[c[2]] || "#57606a", fillOpacity: 0.95 });
        m.bindPopup(function () { return popup(c[3] + " · " + c[1], "/console/case/" + encodeURIComponent(c[0]), "打开案件"); });
        caseLayer.addLayer(m);
      });
      d.items.forEach(function (i) {
        var m = L.circleMarker([i[2], i[3]], { renderer: canvas, radius: 4, color: "#fb8500",
          weight: i[4] ? 3 : 1, fillOpacity: 0.6 });
        m.bindPopup(function () { return popup(i[1], "/console/shop?id=" + encodeURIComponent(i[0]), "打开商户"); });
        itemLayer.addLayer(m);
      });
      var heat = L.heatLayer(d.heat.map(function (h) { return [h[0], h[1], 1]; }),
        { radius: 22, blur: 18, maxZoom: 17, minOpacity: 0.25 });
      var centre = (el.dataset.centre || "").split(",").map(Number);
      if (centre.length === 2 && isFinite(centre[0]) && isFinite(centre[1]) && el.dataset.centre) {
        map.setView(centre, 18);
      } else if (d.shops.length) {
        var lats = d.shops.map(function (s) { return s[2]; });
        var lons = d.shops.map(function (s) { return s[3]; });
        map.fitBounds([[Math.min.apply(null, lats), Math.min.apply(null, lons)],
          [Math.max.apply(null, lats), Math.max.apply(null, lons)]]);
      } else {
        map.setView([39.9, 116.4], 12);
      }
      heat.addTo(map);
      itemLayer.addTo(map);
      caseLayer.addTo(map);
      L.control.layers(null, { "热力": heat, "整改项": itemLayer, "案件": caseLayer, "商户": clusterLayer },
        { collapsed: false }).addTo(map);
      map.on("moveend", drawClusters);
      drawClusters();
      var ms = Math.round(performance.now() - started);
      el.dataset.shops = String(shopsDrawn);
      el.dataset.cases = String(d.open.length);
      el.dataset.heat = String(d.heat.length);
      // Since the page's navigation began: what a user waits.
      el.dataset.readyMs = String(Math.round(performance.now()));
      el.dataset.ready = "1";
      status.textContent = "商户 " + shopsDrawn + " 家，未结案件 " + d.open.length + " 件，整改项 " +
        d.items.length + " 项，时段内上报 " + d.heat.length + " 件（" + ms + " 毫秒）。";
    })
    .catch(function (e) {
      status.textContent = "地图数据载入失败：" + e.message;
      el.dataset.ready = "error";
    });
})();
