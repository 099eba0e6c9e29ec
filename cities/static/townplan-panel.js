// "Plan de ville" panel: pick a commune, paper and layout, download the PDF.
// Include with <script src="/townplans/panel.js" defer></script>. In the map viewer it
// registers itself with fondplan.registerPanel; on any other page it adds a floating box.
(function () {
  "use strict";
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function select(id, values) {
    return el("select", { id: id }, values.map(function (v) {
      return el("option", { value: v[0] }, [v[1]]);
    }));
  }
  function base() {
    return (window.fondplan && window.fondplan.base) || "";
  }
  function render(container) {
    var communes = el("select", { id: "townplan-commune", "aria-label": "Commune" }, []);
    var paper = el("select", { id: "townplan-paper" }, []);
    var orientation = select("townplan-orientation", [["best", "Au mieux"], ["portrait", "Portrait"], ["landscape", "Paysage"]]);
    var layout = select("townplan-layout", [["index-side", "Index à côté"], ["index-below", "Index dessous"], ["index-pages", "Index sur pages séparées"]]);
    var link = el("a", { id: "townplan-download", href: "#", "aria-disabled": "true" }, ["Télécharger le PDF"]);
    var status = el("p", { id: "townplan-status" }, ["Chargement des communes…"]);
    [el("label", {}, ["Commune ", communes]), el("br"),
     el("label", {}, ["Papier ", paper]), " ", orientation, el("br"),
     el("label", {}, ["Index ", layout]), el("br"),
     link, status].forEach(function (n) { container.appendChild(typeof n === "string" ? document.createTextNode(n) : n); });
    function update() {
      var name = communes.value;
      link.setAttribute("aria-disabled", name ? "false" : "true");
      var size = paper.value ? "paper=" + paper.value + "&" : "";
      link.href = name ? base() + "/townplans/" + encodeURIComponent(name) + ".pdf?" + size +
        "orientation=" + orientation.value + "&layout=" + layout.value : "#";
      link.setAttribute("download", name ? "plan-" + name + ".pdf" : "");
    }
    [communes, paper, orientation, layout].forEach(function (s) { s.addEventListener("change", update); });
    // The paper sizes come from the server (cities/paper.py), the one place they are defined.
    fetch(base() + "/townplans/papers.json").then(function (r) { return r.json(); })
      .then(function (answer) {
        answer.papers.forEach(function (p) {
          paper.appendChild(el("option", { value: p.name }, [p.name]));
        });
        paper.value = answer.default;
        update();
      })
      .catch(function () { paper.disabled = true; });
    fetch(base() + "/townplans/communes.json").then(function (r) { return r.ok ? r.json() : []; })
      .then(function (list) {
        var usable = list.filter(function (c) { return c.complete; });
        usable.forEach(function (c) {
          communes.appendChild(el("option", { value: c.insee || c.name }, [c.name]));
        });
        status.textContent = usable.length ? usable.length + " communes" : "Aucune commune chargée";
        update();
      })
      .catch(function () { status.textContent = "Communes indisponibles"; });
  }
  if (window.fondplan && typeof window.fondplan.registerPanel === "function") {
    window.fondplan.registerPanel({ id: "townplan", title: "Plan de ville", render: render });
    return;
  }
  function floating() {
    var body = el("div", {}, []);
    var panel = el("details", { id: "townplan-panel", style:
      "position:absolute;top:10px;left:10px;z-index:10;background:#fff;padding:6px 10px;" +
      "font:13px sans-serif;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3)" }, [
      el("summary", {}, ["Plan de ville"]), body,
    ]);
    render(body);
    document.body.appendChild(panel);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", floating);
  else floating();
})();
