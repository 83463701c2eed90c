"""The web page at ``GET /``: draw on a canvas or upload an image, see input | output side by
side, and which model made the output (its commit, version, provenance and metrics).

One self-contained HTML document (inline CSS and JavaScript, no CDN, nothing fetched but this
server's own API), kept here as a string so that a plain ``pip install`` ships it without
package-data rules. In the spirit of affinelayer/pix2pix-tensorflow's interactive demo.
"""
from __future__ import annotations

import html
import json

_PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pix2pix &middot; __TITLE__</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em;
         color: #222; background: #fafafa; }
  header { display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
  h1 { margin: 0; font-size: 1.5em; }
  #model-line { color: #555; font-family: ui-monospace, monospace; }
  .panes { display: flex; gap: 1.5em; flex-wrap: wrap; margin: 1em 0; }
  .pane { flex: 1 1 300px; background: #fff; border: 1px solid #ddd; border-radius: 6px;
          padding: .8em; }
  .pane h2 { margin: 0 0 .5em; font-size: 1.1em; }
  .view { width: 100%; max-width: 420px; aspect-ratio: 1; background: #eee; display: flex;
          align-items: center; justify-content: center; border: 1px solid #ccc; }
  .view img { width: 100%; height: 100%; object-fit: contain; }
  canvas { touch-action: none; cursor: crosshair; background: #fff; width: 100%; height: 100%; }
  .tools { display: flex; gap: .4em; flex-wrap: wrap; align-items: center; margin: .5em 0; }
  .swatch { width: 1.6em; height: 1.6em; border: 2px solid #999; border-radius: 4px;
            padding: 0; cursor: pointer; }
  .swatch.on { border-color: #000; outline: 2px solid #09f; }
  button.act { padding: .3em .8em; }
  #status { min-height: 1.4em; color: #555; }
  #status.error { color: #b00; }
  #made-by { font-family: ui-monospace, monospace; color: #333; }
  table { border-collapse: collapse; }
  td, th { text-align: left; padding: .15em .8em .15em 0; vertical-align: top; }
  th { color: #555; font-weight: normal; }
  pre { background: #fff; border: 1px solid #ddd; padding: .6em; overflow: auto;
        max-height: 18em; }
</style>
</head>
<body>
<header>
  <h1>pix2pix</h1>
  <span id="model-line">model __TITLE__: loading&hellip;</span>
</header>

<div class="panes">
  <section class="pane" id="draw-pane">
    <h2>Draw</h2>
    <div class="tools" id="draw-tools">
      <span id="palette"></span>
      <label>pen <input type="range" id="pen" min="1" max="40" value="4"></label>
      <button class="act" id="fill" type="button" title="fill the canvas with the colour">fill</button>
      <button class="act" id="clear" type="button">clear</button>
      <button class="act" id="translate" type="button">translate</button>
    </div>
    <div class="view"><canvas id="canvas" width="256" height="256"></canvas></div>
  </section>
  <section class="pane" id="input-pane">
    <h2>Input</h2>
    <div class="tools">
      <label>or upload an image <input type="file" id="file" accept="image/*"></label>
    </div>
    <div class="view"><img id="input" alt="the input sent" hidden></div>
  </section>
  <section class="pane" id="output-pane">
    <h2>Output</h2>
    <div class="tools"><span id="status" role="status">draw or upload an image</span></div>
    <div class="view"><img id="output" alt="translated output" hidden></div>
    <p id="made-by"></p>
  </section>
</div>

<section class="pane" id="model">
  <h2>Which model answers</h2>
  <table id="model-table"><tbody></tbody></table>
  <h3>Metrics</h3>
  <div id="metrics">unknown</div>
  <h3>Provenance</h3>
  <pre id="provenance">unknown</pre>
</section>

<script>
"use strict";
const NAME = __NAME_JSON__;
const COLOURS = ["#000000", "#ffffff", "#0000aa", "#ff0000", "#00aa00", "#ffaa00",
                 "#00ffff", "#aa00ff", "#ff55aa", "#888888"];
const $ = id => document.getElementById(id);
const canvas = $("canvas"), ctx = canvas.getContext("2d");
let info = null, colour = COLOURS[0], results = 0, sent = 0, lastVersion = null, sized = false;

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function show(value) {
  if (value === undefined || value === null || value === "unknown") return "unknown";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function row(tbody, key, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th"), td = document.createElement("td");
  th.textContent = key; td.textContent = show(value);
  tr.append(th, td); tbody.append(tr);
}

function renderInfo(i) {
  info = i;
  $("model-line").textContent = `model ${i.name}: version ${i.version}, commit ${i.commit}` +
    (i.repo !== "unknown" ? ` (${i.repo}${i.branch !== "unknown" ? "@" + i.branch : ""})` : "");
  const tbody = $("model-table").tBodies[0];
  tbody.replaceChildren();
  const o = typeof i.options === "object" ? i.options : {};
  const m = o.model || {}, d = o.data || {}, t = o.train || {};
  row(tbody, "commit", i.commit);
  row(tbody, "repo", i.repo);
  row(tbody, "branch", i.branch);
  row(tbody, "version", i.version);
  row(tbody, "loaded", i.loaded_at);
  row(tbody, "model size", `${i.size} x ${i.size}`);
  row(tbody, "generator", m.generator ? `${m.generator}, ngf ${m.ngf}, ${m.norm} norm` : "unknown");
  row(tbody, "direction", d.direction || "unknown");
  row(tbody, "weights", o.weights || "unknown");
  const length = t.max_steps ? `${t.max_steps} steps` : t.max_epochs ? `${t.max_epochs} epochs` : null;
  row(tbody, "training", length ? `${length}, seed ${t.seed ?? "-"}` : "unknown");
  const metrics = $("metrics");
  metrics.replaceChildren();
  if (i.metrics && typeof i.metrics === "object") {
    const table = document.createElement("table"), body = document.createElement("tbody");
    const flat = i.metrics.mean && typeof i.metrics.mean === "object" ? i.metrics.mean : i.metrics;
    for (const [k, v] of Object.entries(flat)) {
      row(body, k, typeof v === "number" ? Number(v.toPrecision(4)) : v);
    }
    table.append(body); metrics.append(table);
  } else {
    metrics.textContent = show(i.metrics);
  }
  $("provenance").textContent = show(i.provenance);
  if (!sized && i.size) {  // the canvas draws at the model's own resolution
    sized = true; canvas.width = canvas.height = i.size; clearCanvas("#ffffff");
  }
}

async function loadInfo() {
  try {
    const r = await fetch(`/v1/models/${encodeURIComponent(NAME)}/info`);
    if (!r.ok) throw new Error((await r.json()).error);
    renderInfo(await r.json());
  } catch (e) {
    $("model-line").textContent = `model ${NAME}: ${e.message}; retrying`;
    setTimeout(loadInfo, 1000);
  }
}

function setImage(img, blob) {
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob); img.hidden = false;
}

async function translate(blob, label) {
  const seq = ++sent;  // a slow answer to an older input must not replace a newer one
  setImage($("input"), blob);
  setStatus(`translating ${label}…`);
  let r;
  try {
    r = await fetch("/predict", {method: "POST", body: blob,
                                 headers: {"Content-Type": blob.type || "application/octet-stream"}});
  } catch (e) {
    setStatus(`error: ${e.message}`, true); return;
  }
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error; } catch (e) { /* not JSON */ }
    setStatus(`error ${r.status}: ${msg}`, true); return;
  }
  const version = r.headers.get("X-Model-Version"), commit = r.headers.get("X-Model-Commit");
  const png = await r.blob();
  if (seq !== sent) return;
  const out = $("output");
  out.onload = () => {
    results += 1;
    out.dataset.results = String(results);
    out.dataset.version = version; out.dataset.commit = commit;
    setStatus(`${label}: ${out.naturalWidth} x ${out.naturalHeight}`);
  };
  setImage(out, png);
  $("made-by").textContent = `made by ${NAME} version ${version}, commit ${commit}`;
  if (version !== lastVersion) { lastVersion = version; loadInfo(); }
}

function clearCanvas(fill) {
  ctx.fillStyle = fill; ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function translateCanvas() {
  canvas.toBlob(blob => translate(blob, "drawing"), "image/png");
}

for (const c of COLOURS) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "swatch" + (c === colour ? " on" : "");
  b.style.background = c; b.title = c; b.dataset.colour = c;
  b.onclick = () => {
    colour = c;
    for (const s of document.querySelectorAll(".swatch")) s.classList.toggle("on", s === b);
  };
  $("palette").append(b);
}

let drawing = null;
function point(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}
canvas.addEventListener("pointerdown", e => {
  drawing = point(e); canvas.setPointerCapture(e.pointerId);
  ctx.fillStyle = colour; ctx.beginPath();
  ctx.arc(drawing[0], drawing[1], $("pen").value / 2, 0, 2 * Math.PI); ctx.fill();
});
canvas.addEventListener("pointermove", e => {
  if (!drawing) return;
  const p = point(e);
  ctx.strokeStyle = colour; ctx.lineWidth = $("pen").value; ctx.lineCap = "round";
  ctx.beginPath(); ctx.moveTo(drawing[0], drawing[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  drawing = p;
});
for (const ev of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(ev, () => { if (drawing) { drawing = null; translateCanvas(); } });
}
$("clear").onclick = () => clearCanvas("#ffffff");
$("fill").onclick = () => clearCanvas(colour);
$("translate").onclick = translateCanvas;
$("file").onchange = () => {
  const f = $("file").files[0];
  if (f) translate(f, f.name);
};

clearCanvas("#ffffff");
loadInfo();
</script>
</body>
</html>
"""


def render(model_name: str) -> str:
    """The page for ``model_name`` (escaped for HTML and for the script)."""
    return (_PAGE.replace("__TITLE__", html.escape(model_name))
            .replace("__NAME_JSON__", json.dumps(model_name).replace("<", "\\u003c")))
