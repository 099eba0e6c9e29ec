// The fondplan viewer: a full-window map, a style switcher, embed snippets, pluggable panels.
/* global maplibregl */
(function () {
  "use strict";

  const base = new URL(".", window.location.href).href.replace(/\/$/, "");
  const select = document.getElementById("style-select");
  const panels = document.getElementById("panels");

  function escapeHtml(text) {
    return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }

  function snippets(styleUrl) {
    const maplibre = [
      '<link rel="stylesheet" href="' + base + '/static/vendor/maplibre-gl/maplibre-gl.css">',
      '<script src="' + base + '/static/vendor/maplibre-gl/maplibre-gl.js"></script>',
      '<div id="map" style="height: 400px"></div>',
      "<script>",
      "  const map = new maplibregl.Map({",
      '    container: "map",',
      '    style: "' + styleUrl + '",',
      "  });",
      "  map.addControl(new maplibregl.NavigationControl());",
      "</script>",
    ].join("\n");
    const leaflet = [
      '<link rel="stylesheet" href="' + base + '/static/vendor/leaflet/leaflet.css">',
      '<link rel="stylesheet" href="' + base + '/static/vendor/maplibre-gl/maplibre-gl.css">',
      '<script src="' + base + '/static/vendor/leaflet/leaflet.js"></script>',
      '<script src="' + base + '/static/vendor/maplibre-gl/maplibre-gl.js"></script>',
      '<script src="' + base + '/static/vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.js"></script>',
      '<div id="map" style="height: 400px"></div>',
      "<script>",
      '  const map = L.map("map").setView([' + view.lat + ", " + view.lon + "], " + view.zoom + ");",
      '  L.maplibreGL({ style: "' + styleUrl + '" }).addTo(map);',
      "</script>",
    ].join("\n");
    return { maplibre, leaflet };
  }

  const view = { lat: 0, lon: 0, zoom: 2 };
  let map = null;

  function updatePanel() {
    const styleUrl = base + "/styles/" + select.value + ".json";
    const s = snippets(styleUrl);
    document.getElementById("snippet-maplibre").textContent = s.maplibre;
    document.getElementById("snippet-leaflet").textContent = s.leaflet;
    const urls = [
      ["Style", styleUrl],
      ["TileJSON", base + "/tiles/basemap.json"],
      ["Vector tiles", base + "/tiles/basemap/{z}/{x}/{y}.mvt"],
    ];
    document.getElementById("urls").innerHTML = urls
      .map(([label, url]) => "<li>" + escapeHtml(label) + ": <code>" + escapeHtml(url) + "</code></li>")
      .join("");
  }

  function trackView() {
    const c = map.getCenter();
    view.lat = Math.round(c.lat * 1e5) / 1e5;
    view.lon = Math.round(c.lng * 1e5) / 1e5;
    view.zoom = Math.round(map.getZoom());
    updatePanel();
  }

  const panelsToggle = document.getElementById("panels-toggle");

  // Folds every panel away (the map takes the window) or shows them; remembered by the browser.
  function foldPanels(folded) {
    panels.hidden = folded;
    panelsToggle.setAttribute("aria-expanded", String(!folded));
    panelsToggle.textContent = folded ? "Show panels" : "Hide panels";
    try {
      window.localStorage.setItem("fondplan.panelsFolded", String(folded));
    } catch (err) {
      // Storage may be off (private windows): the toggle still works for this page.
    }
  }

  panelsToggle.addEventListener("click", () => foldPanels(!panels.hidden));

  function storedFold() {
    try {
      return window.localStorage.getItem("fondplan.panelsFolded") === "true";
    } catch (err) {
      return false;
    }
  }

  document.getElementById("use-toggle").addEventListener("click", (event) => {
    const panel = document.getElementById("use-panel");
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) foldPanels(false);
  });

  document.querySelectorAll("button.copy").forEach((button) => {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.target).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.target));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });

  const pendingPanels = [];

  // Other services (routing, town plans) add a panel with fondplan.registerPanel(...).
  window.fondplan = {
    base,
    get map() { return map; },
    registerPanel(spec) {
      if (!map) { pendingPanels.push(spec); return; }
      const section = document.createElement("section");
      section.className = "panel";
      section.id = "panel-" + spec.id;
      const title = document.createElement("h2");
      title.textContent = spec.title;
      section.appendChild(title);
      const body = document.createElement("div");
      section.appendChild(body);
      panels.appendChild(section);
      spec.render(body, map);
    },
  };

  // The imported data's extent (TileJSON bounds, else its center), fitted into the part of the
  // window the panels leave free. A URL hash (#zoom/lat/lon) still wins: MapLibre reads it.
  function firstView(tilejson) {
    const bounds = tilejson.bounds;
    if (Array.isArray(bounds) && bounds.length === 4 && bounds[0] < bounds[2] && bounds[1] < bounds[3]) {
      const covered = panels.hidden ? 0 : panels.getBoundingClientRect().right;
      const free = window.innerWidth - covered;
      const left = covered && free > 300 ? covered + 20 : 20;
      return { bounds, fitBoundsOptions: { padding: { top: 70, bottom: 30, left, right: 20 } } };
    }
    const center = tilejson.center;
    if (Array.isArray(center) && center.length >= 2) {
      return { center: [center[0], center[1]], zoom: center.length > 2 ? center[2] : 10 };
    }
    return { center: [0, 0], zoom: 1 };
  }

  async function start() {
    const [styles, tilejson] = await Promise.all([
      fetch(base + "/styles").then((r) => r.json()),
      fetch(base + "/tiles/basemap.json").then((r) => r.json()),
    ]);
    if (!styles.length) {
      document.getElementById("map").textContent = "No style installed.";
      return;
    }
    for (const s of styles) {
      const option = document.createElement("option");
      option.value = s.id;
      option.textContent = s.name;
      select.appendChild(option);
    }
    const wanted = new URLSearchParams(window.location.search).get("style");
    const preferred = styles.find((s) => s.id === wanted) || styles.find((s) => s.id === "colour") || styles[0];
    select.value = preferred.id;
    foldPanels(storedFold());
    map = new maplibregl.Map({ container: "map", style: preferred.url, hash: true, ...firstView(tilejson) });
    map.addControl(new maplibregl.NavigationControl(), "top-right");
    map.addControl(new maplibregl.ScaleControl(), "bottom-left");
    map.on("moveend", trackView);
    map.on("load", () => { document.body.dataset.loaded = "true"; });
    select.addEventListener("change", () => {
      const chosen = styles.find((s) => s.id === select.value);
      map.setStyle(chosen.url);
      updatePanel();
    });
    trackView();
    pendingPanels.splice(0).forEach((spec) => window.fondplan.registerPanel(spec));
  }

  start().catch((err) => {
    console.error("fondplan viewer:", err);
  });
})();
