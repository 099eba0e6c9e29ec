// Counts the distinct street names a style draws, as a person would see them in the viewer.
// Usage: node street_names.mjs URL VIEWS_JSON STYLE [STYLE ...]
// VIEWS_JSON: [{"name": "...", "zoom": 16, "lat": 47.75, "lon": 7.33}, ...]
// Street label layers: the style's symbol layers on `street_labels` that draw a name.
// Prints {style: {view name: {count, names, layers}}} as JSON.
import { reportFromChromium } from "../chromium.mjs";

const [url, viewsJson, ...styles] = process.argv.slice(2);
const views = JSON.parse(viewsJson);
const report = { counts: {}, consoleErrors: [] };
await reportFromChromium(report, ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"], async (browser) => {
  for (const style of styles) {
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    page.on("console", (msg) => {
      if (msg.type() === "error") report.consoleErrors.push(msg.text());
    });
    const first = views[0];
    await page.goto(`${url}/?style=${style}#${first.zoom}/${first.lat}/${first.lon}`, { waitUntil: "load" });
    await page.waitForFunction(() => document.body.dataset.loaded === "true", null, { timeout: 60000 });
    report.counts[style] = {};
    for (const view of views) {
      report.counts[style][view.name] = await page.evaluate(
        (v) =>
          new Promise((resolve) => {
            const map = window.fondplan.map;
            const count = () => {
              const layers = map
                .getStyle()
                .layers.filter(
                  (l) =>
                    l.type === "symbol" &&
                    l["source-layer"] === "street_labels" &&
                    JSON.stringify(l.layout?.["text-field"] ?? "").includes("name"),
                )
                .map((l) => l.id);
              const names = new Set(
                map
                  .queryRenderedFeatures({ layers })
                  .map((f) => f.properties.name_fr || f.properties.name)
                  .filter(Boolean),
              );
              resolve({ count: names.size, names: [...names].sort(), layers });
            };
            map.jumpTo({ center: [v.lon, v.lat], zoom: v.zoom });
            // Symbols fade in after placement: count once the map has settled.
            map.once("idle", () => setTimeout(count, 400));
            map.triggerRepaint();
          }),
        view,
      );
    }
    await page.close();
  }
});
