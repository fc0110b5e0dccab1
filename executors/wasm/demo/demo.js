// The demo page: runs a manifest on the bundled speech or the microphone with the
// remotemedia WASM engine and shows its outputs live. `window.remotemediaDemo.run(...)`
// is the same run without the page's controls (what the browser test calls).
import { init, createSession } from "./pkg/index.js";

const $ = (id) => document.getElementById(id);
const progressLines = [];

function showProgress(event) {
  progressLines.push(`${String(event.elapsedMs).padStart(6)} ms  ${event.message}`);
  $("progress").textContent = progressLines.join("\n");
}

const ready = init({ onProgress: showProgress }).then(
  () => ($("status").textContent = "ready"),
  (e) => {
    $("status").textContent = `the engine did not load: ${e.message}`;
    throw e;
  },
);

/** A WAV file's samples as float32 (PCM 8/16/24/32-bit integer or 32-bit float). */
export function parseWav(buffer) {
  const view = new DataView(buffer);
  const tag = (at) => String.fromCharCode(...new Uint8Array(buffer, at, 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a WAV file");
  let format = null;
  for (let at = 12; at + 8 <= buffer.byteLength; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "fmt ") {
      let code = view.getUint16(body, true);
      if (code === 0xfffe) code = view.getUint16(body + 24, true);
      format = {
        code,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === "data" && format) {
      const bytes = format.bits / 8;
      const count = Math.floor(Math.min(size, buffer.byteLength - body) / bytes);
      const samples = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        const p = body + i * bytes;
        if (format.code === 3 && format.bits === 32) samples[i] = view.getFloat32(p, true);
        else if (format.bits === 16) samples[i] = view.getInt16(p, true) / 32768;
        else if (format.bits === 24) samples[i] = ((view.getInt8(p + 2) << 16) | (view.getUint8(p + 1) << 8) | view.getUint8(p)) / 8388608;
        else if (format.bits === 32) samples[i] = view.getInt32(p, true) / 2147483648;
        else if (format.bits === 8) samples[i] = (view.getUint8(p) - 128) / 128;
        else throw new Error(`${format.bits}-bit samples are not supported`);
      }
      return { samples, sampleRate: format.sampleRate, channels: format.channels };
    }
    at = body + size + (size & 1);
  }
  throw new Error("the WAV file has no fmt/data chunks");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `manifestUrl` on the WAV at `wavUrl`, sent in blocks of `blockFrames`; `realTime`
 * paces the blocks like a live source. Calls `onOutput` for each output and resolves to
 * every output `{nodeId, data}` (audio summarized).
 */
async function runFile({ manifestUrl, wavUrl = "media/speech.wav", blockFrames = 1024, realTime = false, onOutput = () => {} }) {
  await ready;
  const manifest = await (await fetch(manifestUrl)).text();
  const session = await createSession(manifest, { baseUrl: new URL(manifestUrl, location.href).href });
  const wav = parseWav(await (await fetch(wavUrl)).arrayBuffer());
  const outputs = [];
  const take = (o) => {
    const kept = { nodeId: o.nodeId, data: o.data?.samples ? { frames: o.data.samples.length / o.data.channels, sampleRate: o.data.sampleRate } : o.data };
    outputs.push(kept);
    onOutput(o);
  };
  const started = performance.now();
  const frames = wav.samples.length / wav.channels;
  for (let frame = 0; frame < frames && !stopped; frame += blockFrames) {
    const end = Math.min(frame + blockFrames, frames);
    await session.send({
      samples: wav.samples.subarray(frame * wav.channels, end * wav.channels),
      sampleRate: wav.sampleRate,
      channels: wav.channels,
      timestampUs: Math.round((frame * 1e6) / wav.sampleRate),
    });
    for (let o = await session.recv(); o !== null; o = await session.recv()) take(o);
    if (realTime) {
      const due = (end / wav.sampleRate) * 1000 - (performance.now() - started);
      if (due > 0) await sleep(due);
    }
  }
  await session.close();
  for await (const o of session) take(o);
  return outputs;
}

/** Runs `manifestUrl` on the microphone until `stop()`. */
async function runMicrophone({ manifestUrl, onOutput }) {
  await ready;
  const manifest = await (await fetch(manifestUrl)).text();
  const session = await createSession(manifest, { baseUrl: new URL(manifestUrl, location.href).href });
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const context = new AudioContext();
  await context.audioWorklet.addModule("capture-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "remotemedia-capture");
  let sent = 0;
  let chain = Promise.resolve();
  capture.port.onmessage = ({ data }) => {
    const timestampUs = Math.round((sent * 1e6) / context.sampleRate);
    sent += data.length;
    chain = chain.then(async () => {
      await session.send({ samples: data, sampleRate: context.sampleRate, channels: 1, timestampUs });
      for (let o = await session.recv(); o !== null; o = await session.recv()) onOutput(o);
    });
  };
  source.connect(capture);
  await new Promise((resolve) => (stopMicrophone = resolve));
  // No block may reach the session after this: blocks already posted by the worklet
  // would otherwise be sent after close().
  capture.port.onmessage = null;
  capture.port.close();
  source.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  await context.close();
  await chain;
  await session.close();
  for await (const o of session) onOutput(o);
}

let stopped = false;
let stopMicrophone = null;
let count = 0;

function log(text, isError = false) {
  const line = document.createElement("div");
  line.textContent = text;
  if (isError) line.className = "error";
  $("log").prepend(line);
}

function show(output) {
  $("count").textContent = String(++count);
  const d = output.data;
  if (output.nodeId === "level" && d && typeof d.rms_db === "number") {
    $("level").textContent = d.rms_db.toFixed(1);
    $("level-bar").style.width = `${Math.max(0, Math.min(100, ((d.rms_db + 60) / 60) * 100))}%`;
    $("health").textContent = d.health.toFixed(2);
    $("health-bar").style.width = `${d.health * 100}%`;
  } else if (output.nodeId === "vad_events" && d) {
    $("vad-bar").style.width = `${(d.speech_probability ?? 0) * 100}%`;
    $("vad-state").textContent = d.has_speech ? "speech" : "silence";
    $("vad-state").className = d.has_speech ? "speech" : "";
    if (d.is_speech_start) log(`${d.timestamp_ms} ms: speech starts`);
    if (d.is_speech_end) log(`${d.timestamp_ms} ms: speech ends`);
  } else if (d && d.alert) {
    log(`${output.nodeId}: ${JSON.stringify(d)}`);
  }
}

function selected(name) {
  return document.querySelector(`input[name=${name}]:checked`).value;
}

$("start").onclick = async () => {
  $("start").disabled = true;
  $("stop").disabled = false;
  stopped = false;
  count = 0;
  $("status").textContent = "running";
  const manifestUrl = selected("pipeline");
  try {
    if (selected("source") === "mic") await runMicrophone({ manifestUrl, onOutput: show });
    else await runFile({ manifestUrl, realTime: true, onOutput: show });
    $("status").textContent = "finished";
  } catch (e) {
    $("status").textContent = "failed";
    log(`${e.nodeId ? `node '${e.nodeId}': ` : ""}${e.message}`, true);
  } finally {
    $("start").disabled = false;
    $("stop").disabled = true;
  }
};

$("stop").onclick = () => {
  stopped = true;
  if (stopMicrophone) stopMicrophone();
};

window.remotemediaDemo = { ready, run: runFile, parseWav };
