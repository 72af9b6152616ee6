// Opens a report.html in headless Chromium (Debian's, through playwright-core) and prints, as
// one JSON object, what a reader sees: the funnel, the records listed (first view and all),
// the records each reason filter leaves, a text search, two detail views, and every console
// error. tests/report/mod.rs runs it and compares with stats.json and the record files.
//
// Usage: node check-report.js REPORT_HTML [CHROMIUM]
"use strict";
const path = require("path");
const os = require("os");
const fs = require("fs");
const { chromium } = require("playwright-core");

async function main() {
  const [file, executable] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "apigen-report-"));
  // A fresh profile (the user-data dir) per run, as Playwright wants it: through a persistent context.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: executable || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { errors: [], requests: [] };
  try {
    const page = await browser.newPage();
    page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
    page.on("pageerror", (e) => out.errors.push(String(e)));
    page.on("request", (r) => { if (!r.url().startsWith("file:")) out.requests.push(r.url()); });
    const started = Date.now();
    await page.goto("file://" + path.resolve(file), { waitUntil: "load" });
    out.load_ms = Date.now() - started;

    const visible = () => page.$$eval("#records tbody tr:not([hidden])", (rows) =>
      rows.map((r) => ({ id: r.cells[0].textContent, outcome: r.dataset.outcome, reason: r.dataset.reason })));
    out.funnel = await page.$$eval("#funnel g.stage", (gs) =>
      gs.map((g) => ({ stage: g.dataset.label, count: g.querySelector("text.count").textContent })));
    out.first_view = await visible();
    out.shown = await page.textContent("#shown");

    await page.selectOption("#f-page", "0");
    out.all = await visible();

    out.reasons = {};
    const reasons = await page.$$eval("#f-reason option", (os) => os.map((o) => o.value).filter(Boolean));
    for (const reason of reasons) {
      await page.selectOption("#f-reason", reason);
      out.reasons[reason] = await visible();
    }
    await page.selectOption("#f-reason", "");

    const needle = process.env.REPORT_SEARCH || "";
    if (needle) {
      await page.fill("#f-search", needle);
      await page.waitForTimeout(400);
      out.search = await visible();
      await page.fill("#f-search", "");
      await page.waitForTimeout(400);
    }

    out.details = {};
    // Records land in the files in the order concurrent tasks finish, so each detail is
    // opened by what it must show, never by its position.
    const picks = {
      "rejected trajectory": '#records tbody tr[data-outcome="rejected trajectory"][data-reason="state_mismatch"]',
      "validated blueprint": '#records tbody tr[data-outcome="validated blueprint"]',
    };
    for (const [outcome, selector] of Object.entries(picks)) {
      const row = page.locator(selector).first();
      if ((await row.count()) === 0) continue;
      const id = await row.locator("td").first().textContent();
      await row.click();
      // A click sets the location's hash, and the page opens the record on `hashchange`, which
      // comes after the click returns: wait for this record's heading, not for any open detail
      // (the one opened before would do).
      await page.waitForFunction((id) => {
        const heading = document.querySelector("#detail:not([hidden]) h3");
        return heading !== null && heading.textContent === id;
      }, id);
      out.details[outcome] = await page.textContent("#detail");
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
