// Drives a plain Leaflet + Leaflet Routing Machine page in headless Chromium and reports, as
// JSON, what LRM computed from the OSRM answers: routes, formatted itinerary, errors, requests.
// Usage: node lrm_check.mjs PAGE_URL CASES_JSON
// CASES_JSON is a list of {name, service, profile, waypoints: [[lat, lng], ...], again}; the page
// reads these from its query string; with "again", the route is asked a second time (LRM then
// sends the hints it kept from the first answer), then once more as while dragging a waypoint.
import { reportFromChromium } from "../chromium.mjs";

const [pageUrl, casesJson] = process.argv.slice(2);
const cases = JSON.parse(casesJson);
const report = { cases: {} };
await reportFromChromium(report, [], async (browser) => {
  for (const c of cases) {
    const result = { console: [], requests: [], events: [] };
    report.cases[c.name] = result;
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    page.on("console", (msg) => result.console.push({ type: msg.type(), text: msg.text() }));
    page.on("pageerror", (err) => result.console.push({ type: "pageerror", text: String(err) }));
    page.on("request", (req) => result.requests.push(req.url()));
    const query = new URLSearchParams({
      service: c.service,
      profile: c.profile,
      waypoints: c.waypoints.map(([lat, lng]) => `${lat},${lng}`).join(";"),
    });
    await page.goto(`${pageUrl}?${query}`, { waitUntil: "load" });
    await page.waitForFunction(() => window.lrm.events.length >= 1, null, { timeout: 60000 });
    if (c.again) {
      await page.evaluate(() => window.lrm.control.route());
      await page.waitForFunction(() => window.lrm.events.length >= 2, null, { timeout: 60000 });
      result.dragged = await page.evaluate(() => window.lrm.dragged());
    }
    result.events = await page.evaluate(() => window.lrm.events);
    // The itinerary LRM rendered for the selected (first, not minimised) alternative.
    result.itinerary = await page.evaluate(() =>
      [...document.querySelectorAll(".leaflet-routing-alt")].map((alt) => ({
        minimized: alt.classList.contains("leaflet-routing-alt-minimized"),
        title: alt.querySelector("h2")?.textContent ?? null,
        summary: alt.querySelector("h3")?.textContent ?? null,
        rows: [...alt.querySelectorAll("tbody tr")].map((tr) => ({
          icon: tr.querySelector(".leaflet-routing-icon")?.className ?? null,
          text: tr.children[1]?.textContent ?? null,
          distance: tr.children[2]?.textContent ?? null,
        })),
      })),
    );
    result.drawnLines = await page.evaluate(() => {
      let count = 0;
      window.lrm.map.eachLayer((layer) => {
        if (layer instanceof L.Polyline && layer.getLatLngs().length > 1) count += 1;
      });
      return count;
    });
    await page.close();
  }
});
