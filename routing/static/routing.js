// Routing panel of the fondplan viewer: click a start and an end, compare car, bike and foot.
(function () {
  "use strict";
  const PROFILES = [
    { id: "car", label: "Car", colour: "#d6336c" },
    { id: "bike", label: "Bike", colour: "#1c7ed6" },
    { id: "foot", label: "Foot", colour: "#2b8a3e" },
  ];

  function km(metres) { return (metres / 1000).toFixed(2) + " km"; }
  function minutes(seconds) {
    const m = Math.round(seconds / 60);
    return m >= 60 ? Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min" : m + " min";
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(container, map) {
    const base = window.fondplan.base;
    const help = el("p", { id: "routing-help" }, "Click the start on the map, then the end.");
    const summary = el("table", { id: "routing-summary" });
    const steps = el("ol", { id: "routing-steps" });
    const clear = el("button", { type: "button", id: "routing-clear" }, "Clear");
    container.append(help, summary, steps, clear);
    let points = [];
    let markers = [];
    let results = {};
    let selected = "car";

    function ensureLayer() {
      if (map.getSource("routing-route")) return;
      map.addSource("routing-route", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
      map.addLayer({
        id: "routing-route", type: "line", source: "routing-route",
        paint: { "line-color": ["get", "colour"], "line-width": 5, "line-opacity": 0.8 },
      });
    }

    function draw() {
      ensureLayer();
      const features = [];
      const route = results[selected];
      if (route && route.geometry) {
        const colour = PROFILES.find((p) => p.id === selected).colour;
        features.push({ type: "Feature", geometry: route.geometry, properties: { colour } });
      }
      map.getSource("routing-route").setData({ type: "FeatureCollection", features });
      steps.replaceChildren();
      if (!route) return;
      route.legs.forEach((leg) => leg.steps.forEach((step) => {
        const m = step.maneuver;
        const what = [m.type, m.modifier].filter(Boolean).join(" ");
        const item = el("li", { "data-type": m.type }, what + (step.name ? " — " + step.name : "") +
          (step.distance ? " (" + Math.round(step.distance) + " m)" : ""));
        steps.appendChild(item);
      }));
    }

    function showSummary() {
      summary.replaceChildren();
      PROFILES.forEach((p) => {
        const route = results[p.id];
        const row = el("tr", { "data-profile": p.id, class: p.id === selected ? "selected" : "" });
        row.append(el("th", {}, p.label));
        if (route && route.error) {
          row.append(el("td", { colspan: "2", class: "error" }, route.error));
        } else if (route) {
          row.append(el("td", { class: "distance" }, km(route.distance)),
            el("td", { class: "duration" }, minutes(route.duration)));
        } else {
          row.append(el("td", { colspan: "2" }, "…"));
        }
        row.addEventListener("click", () => { selected = p.id; showSummary(); draw(); });
        summary.appendChild(row);
      });
    }

    async function compute() {
      const coords = points.map((p) => p.lng.toFixed(6) + "," + p.lat.toFixed(6)).join(";");
      results = {};
      showSummary();
      await Promise.all(PROFILES.map(async (p) => {
        const url = base + "/route/v1/" + p.id + "/" + coords +
          "?overview=full&geometries=geojson&steps=true";
        try {
          const answer = await (await fetch(url)).json();
          results[p.id] = answer.code === "Ok" ? answer.routes[0] : { error: answer.message || answer.code };
        } catch (err) {
          results[p.id] = { error: String(err) };
        }
      }));
      showSummary();
      draw();
      container.dataset.state = "done";
    }

    function reset() {
      points = [];
      markers.forEach((m) => m.remove());
      markers = [];
      results = {};
      summary.replaceChildren();
      steps.replaceChildren();
      if (map.getSource("routing-route")) {
        map.getSource("routing-route").setData({ type: "FeatureCollection", features: [] });
      }
      help.textContent = "Click the start on the map, then the end.";
      container.dataset.state = "empty";
    }

    map.on("click", (event) => {
      if (points.length >= 2) reset();
      points.push(event.lngLat);
      markers.push(new maplibregl.Marker({ color: points.length === 1 ? "#2b8a3e" : "#c92a2a" })
        .setLngLat(event.lngLat).addTo(map));
      if (points.length === 1) {
        help.textContent = "Now click the end.";
        container.dataset.state = "start";
      } else {
        help.textContent = "Route from the green marker to the red one.";
        container.dataset.state = "computing";
        compute();
      }
    });
    clear.addEventListener("click", reset);
    map.on("styledata", () => { if (Object.keys(results).length) draw(); });
    reset();
  }

  window.fondplan.registerPanel({ id: "routing", title: "Route", render });
})();
