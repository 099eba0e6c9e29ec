// Steps for tests/tileserver/viewer_check.mjs: click a start and an end on the map, then read
// what the routing panel shows for each profile and whether the route line is drawn.
const START = [9.5209, 47.141];
const END = [9.5095, 47.165];

export default async function (page, report) {
  // Fit both ends in the part of the map the side panels leave free, then click them.
  const points = await page.evaluate(async ([start, end]) => {
    const map = window.fondplan.map;
    window.routingClicks = [];
    map.on("click", (event) => window.routingClicks.push([event.lngLat.lng, event.lngLat.lat]));
    const idle = new Promise((resolve) => map.once("idle", resolve));
    const south = Math.min(start[1], end[1]);
    const north = Math.max(start[1], end[1]);
    const west = Math.min(start[0], end[0]);
    const east = Math.max(start[0], end[0]);
    map.fitBounds([[west, south], [east, north]], { padding: { top: 80, bottom: 60, left: 500, right: 60 }, animate: false });
    await idle;
    const rect = map.getCanvas().getBoundingClientRect();
    return [start, end].map((c) => {
      const p = map.project(c);
      return [rect.left + p.x, rect.top + p.y];
    });
  }, [START, END]);
  // One click at a time, each seen by the map before the next: on a busy machine two quick
  // clicks can merge into a double-click zoom.
  for (const [index, [x, y]] of points.entries()) {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await page.mouse.click(x, y);
      try {
        await page.waitForFunction((n) => window.routingClicks.length > n, index, { timeout: 10000 });
        break;
      } catch (error) {
        if (attempt === 2) throw error;
      }
    }
    await page.waitForTimeout(600);
  }
  report.clicks = await page.evaluate(() => window.routingClicks);
  await page.waitForFunction(
    () => document.querySelector("#panel-routing > div")?.dataset.state === "done",
    null,
    { timeout: 60000 },
  );
  report.clicks = await page.evaluate(() => window.routingClicks);
  report.profiles = {};
  for (const profile of ["car", "bike", "foot"]) {
    await page.click(`#routing-summary tr[data-profile="${profile}"]`);
    await page.evaluate(
      () => new Promise((resolve) => {
        const map = window.fondplan.map;
        map.once("idle", resolve);
        map.triggerRepaint();
      }),
    );
    report.profiles[profile] = await page.evaluate((id) => {
      const row = document.querySelector(`#routing-summary tr[data-profile="${id}"]`);
      const map = window.fondplan.map;
      return {
        selected: row.classList.contains("selected"),
        distance: row.querySelector(".distance")?.textContent ?? null,
        duration: row.querySelector(".duration")?.textContent ?? null,
        error: row.querySelector(".error")?.textContent ?? null,
        steps: [...document.querySelectorAll("#routing-steps li")].map((li) => li.dataset.type),
        drawn: map.queryRenderedFeatures({ layers: ["routing-route"] }).length,
      };
    }, profile);
  }
}
