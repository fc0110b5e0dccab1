// The demo page of remotemedia's WebRTC transport: captures the microphone, sends it to a
// pipeline of the server, shows what comes back. No external scripts: it works offline.
// `window.remotemedia` exposes the state (tests read it).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  status: "idle",
  messages: [],      // every data-channel message received, parsed
  texts: [],         // text outputs, in order
  levels: [],        // rms_db of AudioLevelNode outputs
  errors: [],
  rttMs: null,
  outPeak: 0,        // highest level of the returned audio seen (0..1)
  resource: null,
  pc: null,
  channel: null,
};
window.remotemedia = state;

const params = new URLSearchParams(location.hash.slice(1));
if (params.get("token")) $("token").value = params.get("token");

function headers(extra) {
  const h = Object.assign({}, extra);
  const token = $("token").value.trim();
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function setStatus(s) { state.status = s; $("status").textContent = s; }

function logEvent(text, cls) {
  const line = document.createElement("div");
  if (cls) line.className = cls;
  line.textContent = text;
  const box = $("events");
  box.appendChild(line);
  while (box.childNodes.length > 300) box.removeChild(box.firstChild);
  box.scrollTop = box.scrollHeight;
}

async function loadPipelines() {
  const r = await fetch("/pipelines", { headers: headers() });
  if (!r.ok) {
    const body = await r.text();
    state.errors.push({ status: r.status, body });
    logEvent("pipelines (" + r.status + "): " + body, "error");
    setStatus("refused");
    return;
  }
  const { pipelines } = await r.json();
  const select = $("pipeline");
  select.innerHTML = "";
  for (const p of pipelines) {
    const o = document.createElement("option");
    o.value = o.textContent = p.name;
    select.appendChild(o);
  }
  if (params.get("pipeline")) select.value = params.get("pipeline");
}

function meter(stream, bar, onLevel) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const tick = () => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    const rms = Math.sqrt(sum / data.length);
    bar.style.width = Math.min(100, rms * 300) + "%";
    if (onLevel) onLevel(rms);
    if (state.pc) requestAnimationFrame(tick);
  };
  ctx.resume().then(tick);
  return ctx;
}

function onMessage(event) {
  let m;
  try { m = JSON.parse(event.data); } catch { return; }
  state.messages.push(m);
  if (m.type === "pong") {
    state.rttMs = performance.now() - m.id;
    $("rtt").textContent = state.rttMs.toFixed(1) + " ms";
    return;
  }
  if (m.type === "output") {
    const d = m.data;
    if (d.type === "text") {
      state.texts.push(d.text);
      const p = document.createElement("p");
      p.textContent = (m.node_id ? m.node_id + ": " : "") + d.text;
      $("transcript").appendChild(p);
    } else if (d.type === "json") {
      const v = d.data;
      if (v && typeof v.rms_db === "number") {
        // AudioLevelNode: dBFS of the audio as the pipeline received it.
        $("server-level").textContent = v.rms_db.toFixed(1) + " dBFS" + (v.is_silence ? " (silence)" : "");
        state.levels.push(v.rms_db);
      } else if (v && typeof v.has_speech === "boolean") {
        $("vad").textContent = v.has_speech ? "speech" : "silence";
        $("vad").className = v.has_speech ? "speech" : "";
        if (v.is_speech_start || v.is_speech_end) logEvent(m.node_id + ": " + JSON.stringify(v), "speech");
      } else {
        logEvent(m.node_id + ": " + JSON.stringify(v));
      }
    }
    return;
  }
  if (m.type === "error") { state.errors.push(m); logEvent("error" + (m.node_id ? " in " + m.node_id : "") + ": " + m.message, "error"); return; }
  if (m.type === "end") { logEvent("session ended: " + m.message); setStatus("ended: " + m.code); return; }
  logEvent(JSON.stringify(m));
}

async function start() {
  $("start").disabled = true;
  setStatus("starting");
  const pipeline = $("pipeline").value;
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv", streams: [mic] });
  const channel = pc.createDataChannel("remotemedia");
  state.channel = channel;
  channel.onmessage = onMessage;
  channel.onopen = () => {
    setStatus("connected");
    state.pinger = setInterval(() => channel.readyState === "open" && channel.send(JSON.stringify({ type: "ping", id: performance.now() })), 1000);
  };
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    $("remote").srcObject = stream;
    meter(stream, $("out-level"), (rms) => { state.outPeak = Math.max(state.outPeak, rms); });
  };
  pc.onconnectionstatechange = () => logEvent("connection: " + pc.connectionState);
  meter(mic, $("mic-level"));
  await pc.setLocalDescription(await pc.createOffer());
  // Wait for host candidates (milliseconds; no STUN), so one request carries them all.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const t = setTimeout(resolve, 2000);
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); } };
  });
  const r = await fetch("/whip/" + encodeURIComponent(pipeline), {
    method: "POST",
    headers: headers({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  if (r.status !== 201) {
    const body = await r.text();
    state.errors.push({ status: r.status, body });
    logEvent("offer refused (" + r.status + "): " + body, "error");
    setStatus("refused");
    stop(false);
    return;
  }
  state.resource = r.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
  $("stop").disabled = false;
  $("barge").disabled = false;
}

async function stop(hangUp = true) {
  clearInterval(state.pinger);
  if (hangUp && state.resource) {
    await fetch(state.resource, { method: "DELETE", headers: headers() }).catch(() => {});
  }
  if (state.pc) state.pc.close();
  state.pc = null;
  state.resource = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("barge").disabled = true;
  if (!state.status.startsWith("ended") && state.status !== "refused") setStatus("idle");
}

$("start").onclick = () => start().catch((e) => { logEvent(String(e), "error"); state.errors.push({ message: String(e) }); setStatus("failed"); $("start").disabled = false; });
$("stop").onclick = () => stop();
$("barge").onclick = () => state.channel && state.channel.send(JSON.stringify({ type: "barge_in" }));
$("send-text").onsubmit = (e) => {
  e.preventDefault();
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "text", text: $("text").value }));
    $("text").value = "";
  }
};
$("token").onchange = loadPipelines;
state.start = start;
state.stop = stop;
loadPipelines();
