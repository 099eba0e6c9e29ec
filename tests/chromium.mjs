// Headless Chromium for the browser tests: the system's build, quiet, without a sandbox.
import { chromium } from "playwright-core";

export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      ...extraArgs,
    ],
  });
}

// Runs `work(browser)` in a headless Chromium, then prints `report` as JSON: an error on the way
// is reported (report.error), not thrown, and the browser is closed either way.
export async function reportFromChromium(report, extraArgs, work) {
  const browser = await launchChromium(extraArgs);
  try {
    await work(browser);
  } catch (err) {
    report.error = String(err);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
}
