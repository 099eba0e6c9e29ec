// Opens the fondplan viewer in headless Chromium and reports what a person would see, as JSON:
// console errors, failed requests, glyph/sprite/tile responses, and a screenshot of the map.
// Usage: node viewer_check.mjs URL SCREENSHOT.png [STYLE] [STEPS.mjs]
// STEPS.mjs (optional) default-exports async (page, report) => {...}, run once the map is idle;
// what it stores in report.steps is reported too.
import { reportFromChromium } from "../chromium.mjs";
import { pathToFileURL } from "node:url";

const [url, screenshot, style, steps] = process.argv.slice(2);
const report = { consoleErrors: [], consoleWarnings: [], failedRequests: [], responses: [], loaded: false, panels: null };
await reportFromChromium(report, ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"], async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on("console", (msg) => {
    if (msg.type() === "error") report.consoleErrors.push(msg.text());
    if (msg.type() === "warning") report.consoleWarnings.push(msg.text());
  });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("requestfailed", (req) => {
    report.failedRequests.push({ url: req.url(), error: req.failure()?.errorText });
  });
  page.on("response", (res) => {
    report.responses.push({ url: res.url(), status: res.status() });
    if (res.status() >= 400) report.failedRequests.push({ url: res.url(), status: res.status() });
  });
  await page.goto(url + (style ? "?style=" + style : ""), { waitUntil: "load" });
  await page.waitForFunction(() => document.body.dataset.loaded === "true", null, { timeout: 60000 });
  report.loaded = true;
  // Wait until every tile, glyph and sprite has arrived and the map has drawn them.
  await page.evaluate(
    () =>
      new Promise((resolve) => {
        const map = window.fondplan.map;
        if (map.loaded() && map.areTilesLoaded()) return resolve();
        map.once("idle", () => resolve());
      }),
  );
  await page.waitForTimeout(500);
  if (steps) {
    report.steps = {};
    await (await import(pathToFileURL(steps).href)).default(page, report.steps);
  }
  report.styleOptions = await page.$$eval("#style-select option", (opts) => opts.map((o) => o.value));
  await page.click("#use-toggle");
  report.panels = {
    maplibre: await page.textContent("#snippet-maplibre"),
    leaflet: await page.textContent("#snippet-leaflet"),
  };
  await page.click("#use-toggle");
  await page.screenshot({ path: screenshot });
});
