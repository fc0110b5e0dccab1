// Drives the WASM demo page in headless Chromium (playwright-core, Debian's chromium) and
// prints what it got as one JSON line.
//
//   REMOTEMEDIA_PLAYWRIGHT=<.../node_modules/playwright-core> \
//     node run-page.cjs URL run MANIFEST WAV      # remotemediaDemo.run(): every output
//     node run-page.cjs URL mic MIC.wav           # the page's controls, microphone, live monitor
"use strict";

const { chromium } = require(process.env.REMOTEMEDIA_PLAYWRIGHT || "playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [url, mode, ...rest] = process.argv.slice(2);

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rm-chromium-"));
  const args = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ];
  if (mode === "mic") {
    args.push("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${path.resolve(rest[0])}`);
  }
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.REMOTEMEDIA_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
  });
  const errors = [];
  let result = { ok: false };
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
    page.on("pageerror", (e) => { errors.push(String(e)); process.stderr.write(`[page error] ${e}\n`); });
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
    await page.goto(url);
    await page.waitForFunction(() => window.remotemediaDemo, null, { timeout: 20000 });
    await page.evaluate(() => window.remotemediaDemo.ready);
    if (mode === "run") {
      const [manifestUrl, wavUrl] = rest;
      const started = Date.now();
      const outputs = await page.evaluate(
        ({ manifestUrl, wavUrl }) => window.remotemediaDemo.run({ manifestUrl, wavUrl }),
        { manifestUrl, wavUrl },
      );
      const progress = await page.evaluate(() => document.getElementById("progress").textContent);
      result = { ok: true, outputs, progress, ms: Date.now() - started };
    } else if (mode === "mic") {
      await page.check("input[name=source][value=mic]");
      await page.check("input[name=pipeline][value='pipelines/live-monitor.yaml']");
      await page.click("#start");
      const live = await page
        .waitForFunction(() => Number(document.getElementById("count").textContent) > 400 &&
          document.getElementById("log").textContent.includes("speech starts"), null, { timeout: 60000, polling: 100 })
        .then(() => true, () => false);
      const seen = await page.evaluate(() => ({
        count: Number(document.getElementById("count").textContent),
        level: document.getElementById("level").textContent,
        health: document.getElementById("health").textContent,
        vad: document.getElementById("vad-state").textContent,
        log: document.getElementById("log").textContent,
        status: document.getElementById("status").textContent,
      }));
      await page.click("#stop");
      await page.waitForFunction(() => ["finished", "failed"].includes(document.getElementById("status").textContent), null, { timeout: 20000 });
      const status = await page.evaluate(() => document.getElementById("status").textContent);
      result = { ok: live, ...seen, finalStatus: status };
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
  } catch (e) {
    result = { ok: false, error: String(e) };
  } finally {
    result.errors = errors;
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + "\n");
})();
