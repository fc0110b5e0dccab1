// Drives the server's demo page in headless Chromium (playwright-core, Debian's chromium)
// with a fake microphone playing a WAV file, and prints what the page saw as one JSON line.
//
//   REMOTEMEDIA_PLAYWRIGHT=<.../node_modules/playwright-core> \
//     node run-demo.cjs URL MIC.wav [--until transcript|audio] [--timeout-ms N]
"use strict";

const { chromium } = require(process.env.REMOTEMEDIA_PLAYWRIGHT || "playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [url, wav, ...rest] = process.argv.slice(2);
const option = (name, fallback) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : fallback;
};
const until = option("--until", "transcript");
// A data-channel message the page sends once its channel is open.
const send = option("--send", null);
const timeoutMs = Number(option("--timeout-ms", "120000"));

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rm-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.REMOTEMEDIA_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${path.resolve(wav)}`,
      // The namespace's address is not localhost: let the page use the microphone.
      `--unsafely-treat-insecure-origin-as-secure=${new URL(url).origin}`,
    ],
  });
  let result = { ok: false };
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
    page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
    await page.goto(url);
    await page.waitForFunction(() => document.querySelector("#pipeline option") || window.remotemedia.errors.length, null, { timeout: 10000 });
    const started = Date.now();
    if (await page.evaluate(() => !window.remotemedia.errors.length)) await page.click("#start");
    if (send) {
      await page.waitForFunction(() => window.remotemedia.status === "connected" || window.remotemedia.errors.length, null, { timeout: 20000 });
      await page.evaluate((m) => window.remotemedia.channel.send(m), send);
    }
    const done = await page
      .waitForFunction((until) => {
        const s = window.remotemedia;
        if (until === "end") return s.status.startsWith("ended");
        if (s.errors.length || s.status.startsWith("ended") || s.status === "refused") return true;
        const heard = s.outPeak > 0.01;
        const speech = s.messages.some((m) => m.type === "output" && m.data.type === "json" && m.data.data.is_speech_start);
        // The first utterance may be cut (capture starts anywhere in the looping file):
        // the second one is whole.
        const transcript = s.texts.length >= 2;
        return until === "audio" ? heard && s.rttMs !== null : heard && speech && transcript && s.rttMs !== null;
      }, until, { timeout: timeoutMs, polling: 100 })
      .then(() => true, () => false);
    const seen = await page.evaluate(async () => {
      const s = window.remotemedia;
      let inbound = null, outbound = null;
      if (s.pc) {
        const stats = await s.pc.getStats();
        stats.forEach((r) => {
          if (r.type === "inbound-rtp" && r.kind === "audio") inbound = { packetsReceived: r.packetsReceived, packetsLost: r.packetsLost, totalAudioEnergy: r.totalAudioEnergy, jitter: r.jitter };
          if (r.type === "outbound-rtp" && r.kind === "audio") outbound = { packetsSent: r.packetsSent };
        });
      }
      return {
        status: s.status, texts: s.texts, errors: s.errors, rttMs: s.rttMs, outPeak: s.outPeak,
        speechStarts: s.messages.filter((m) => m.type === "output" && m.data.type === "json" && m.data.data.is_speech_start).length,
        events: s.messages.filter((m) => m.type === "output" && m.node_id === "events").length,
        levels: s.levels.length,
        loudest: s.levels.length ? Math.max(...s.levels) : null,
        types: [...new Set(s.messages.map((m) => m.type))],
        inbound, outbound,
      };
    });
    // Hang up through the page (DELETE on the session's resource).
    await page.evaluate(() => window.remotemedia.stop());
    result = { ok: done, seconds: (Date.now() - started) / 1000, ...seen };
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + "\n");
})().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, crash: String(e && e.stack || e) }) + "\n");
  process.exit(1);
});
