// Steps for tests/tileserver/viewer_check.mjs: pick a commune in the "Plan de ville" panel and
// fetch the PDF its link points to, as a person clicking it would.
export default async function (page, report) {
  await page.waitForSelector("#panel-townplan #townplan-commune option", { state: "attached" });
  report.communes = await page.$$eval("#townplan-commune option", (o) => o.map((x) => x.textContent));
  const vaduz = await page.$$eval("#townplan-commune option", (o) =>
    o.find((x) => x.textContent === "Vaduz")?.value);
  await page.selectOption("#townplan-commune", vaduz);
  // The paper sizes are the server's: the default is chosen before anyone picks one.
  await page.waitForSelector("#townplan-paper option", { state: "attached" });
  report.papers = await page.$$eval("#townplan-paper option", (o) => o.map((x) => x.value));
  report.defaultPaper = await page.$eval("#townplan-paper", (s) => s.value);
  await page.selectOption("#townplan-paper", "A4");
  await page.selectOption("#townplan-layout", "index-pages");
  report.href = await page.$eval("#townplan-download", (a) => a.href);
  report.title = await page.$eval("#panel-townplan h2", (h) => h.textContent);
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 240000 }),
    page.click("#townplan-download"),
  ]);
  const failure = await download.failure();
  report.downloadFailure = failure;
  // The link answered: read status and type of the same URL through the page's own fetch.
  const answer = await page.evaluate(async (href) => {
    const r = await fetch(href);
    const bytes = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get("content-type"),
             magic: String.fromCharCode(...bytes.slice(0, 5)), size: bytes.length };
  }, report.href);
  Object.assign(report, answer);
}
