// The viewer: the video, its script as an editable timeline, post-processing redrawn live.
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const video = new URLSearchParams(location.search).get("video");
const view = studio.view = {
  video, data: null, actions: [], compare: null, undo: [], redo: [], selected: null,
  start: 0, span: 60000, cursor: 0, player: null, crop: null, box: null,
  edited: false,  // the person changed the points since they were loaded, redrawn or saved
  axis: "stroke",  // the axis shown (a model of several axes: stroke, roll, ...)
  stash: {},  // axis -> its drawing, points, undo and redo while another axis is shown
  pictureReady: false,  // the player (or frame) and the span are set up
};
// Speed (position units a second) -> colour, the scale funscript heatmaps use: slow strokes
// blue, then green, yellow, orange, fast ones red.
const HEAT = [[0, [0, 0, 0]], [60, [30, 144, 255]], [150, [0, 220, 110]], [250, [255, 235, 0]],
              [350, [255, 140, 0]], [450, [220, 20, 20]]];
const svg = document.querySelector("#timeline");
const PAD = {left: 34, right: 8, top: 8, bottom: 18};

function options() {
  const value = (id) => document.querySelector(`#${id}`);
  const stretch = value("stretch_percentile").value;
  return {min_amplitude: Number(value("min_amplitude").value), rdp_epsilon: Number(value("rdp_epsilon").value),
          stretch_percentile: stretch === "" ? null : Number(stretch), invert: value("invert").checked,
          offset_ms: Number(value("offset_ms").value) || 0, raw: value("raw").checked};
}
function stride() { return Number(document.querySelector("#stride").value) || view.defaults.stride; }
function cropValue() {  // null: the video's saved crop (the server picks it)
  if (view.crop === "box") return view.box ? view.box.join(",") : null;
  return view.crop;
}
function showCrop(crop) {
  const select = document.querySelector("#crop");
  if (["full", "sbs-left", "sbs-right"].includes(crop)) { select.value = crop; return; }
  select.value = "box";
  view.crop = "box";
  view.box = crop.split(",").map(Number);
}

// ---- geometry --------------------------------------------------------------------------------
function size() { const r = svg.getBoundingClientRect(); return {w: r.width, h: r.height}; }
function xOf(at) { const {w} = size(); return PAD.left + (at - view.start) / view.span * (w - PAD.left - PAD.right); }
function atOf(x) { const {w} = size(); return view.start + (x - PAD.left) / (w - PAD.left - PAD.right) * view.span; }
function yOf(pos) { const {h} = size(); return PAD.top + (100 - pos) / 100 * (h - PAD.top - PAD.bottom); }
function posOf(y) { const {h} = size(); return 100 - (y - PAD.top) / (h - PAD.top - PAD.bottom) * 100; }
function node(tag, attributes) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) n.setAttribute(k, v);
  return n;
}
function visible(points) {
  const lo = view.start - view.span * 0.05, hi = view.start + view.span * 1.05;
  return points.filter((p) => p.at >= lo && p.at <= hi);
}
function line(points, cls) {
  return node("polyline", {class: cls, points: points.map((p) => `${xOf(p.at).toFixed(1)},${yOf(p.pos).toFixed(1)}`).join(" ")});
}

// ---- drawing ---------------------------------------------------------------------------------
function draw() {
  svg.replaceChildren();
  const {w, h} = size();
  for (const pos of [0, 25, 50, 75, 100]) {
    svg.append(node("line", {class: "grid", x1: PAD.left, x2: w - PAD.right, y1: yOf(pos), y2: yOf(pos)}));
    const label = node("text", {x: 4, y: yOf(pos) + 3}); label.textContent = pos; svg.append(label);
  }
  const step = niceStep(view.span / 8);
  for (let t = Math.ceil(view.start / step) * step; t <= view.start + view.span; t += step) {
    const label = node("text", {x: Math.min(xOf(t) - 10, w - PAD.right - 24), y: h - 4}); label.textContent = studio.clock(t / 1000);
    svg.append(label);
  }
  if (view.data) {
    const raw = view.data.raw.at.map((at, i) => ({at, pos: view.data.raw.pos[i]}));
    svg.append(line(visible(raw), "raw"));
  }
  if (view.compare) svg.append(line(visible(view.compare), "compare"));
  const shown = visible(view.actions);
  svg.append(line(shown, "script"));
  for (const p of shown) {
    const i = view.actions.indexOf(p);
    svg.append(node("circle", {class: `point${view.selected === i ? " selected" : ""}`, r: 4,
                               cx: xOf(p.at), cy: yOf(p.pos), "data-index": i, "data-at": p.at, "data-pos": p.pos}));
  }
  svg.append(node("line", {class: "cursor", x1: xOf(view.cursor), x2: xOf(view.cursor), y1: PAD.top, y2: h - PAD.bottom}));
  drawHeat();
  document.querySelector("#time").textContent = `${studio.clock(view.cursor / 1000)} / ${studio.clock((view.data?.duration_ms || 0) / 1000)}`;
  document.querySelector("#stats").textContent = `${view.actions.length} points`;
}
function heatColor(speed) {
  let i = 1;
  while (i < HEAT.length - 1 && speed > HEAT[i][0]) i += 1;
  const [s0, c0] = HEAT[i - 1], [s1, c1] = HEAT[i];
  const f = Math.max(0, Math.min(1, (speed - s0) / (s1 - s0)));
  return `rgb(${c0.map((v, k) => Math.round(v + (c1[k] - v) * f)).join(",")})`;
}
function drawHeat() {  // the strip under the timeline: each stroke coloured by its speed
  const strip = document.querySelector("#heatmap");
  strip.replaceChildren();
  const points = view.actions;
  for (let i = 1; i < points.length; i += 1) {
    const a = points[i - 1], b = points[i];
    if (b.at < view.start || a.at > view.start + view.span) continue;
    const speed = Math.abs(b.pos - a.pos) / Math.max(1, b.at - a.at) * 1000;
    const x0 = Math.max(PAD.left, xOf(a.at)), x1 = xOf(b.at);
    strip.append(node("rect", {class: "heat", x: x0, width: Math.max(1, x1 - x0), y: 0, height: 14,
                               fill: heatColor(speed), "data-speed": speed.toFixed(0)}));
  }
}
function niceStep(raw) {
  const steps = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  return steps.find((s) => s >= raw) || steps[steps.length - 1];
}

// ---- edits with undo -------------------------------------------------------------------------
function remember() { view.undo.push(JSON.stringify(view.actions)); view.redo = []; view.edited = true; }
// A redraw from the model replaces the points: with unsaved edits it asks first, and the edited
// script stays one Undo away. false: the person kept the edits (the caller puts its control back).
function mayReplaceEdits(what) {
  if (!view.edited) return true;
  return window.confirm(`${what} redraws the script from the model and replaces your unsaved ` +
                        "edits. Undo brings them back. Go on?");
}
function replaceActions(actions) {
  if (view.actions.length) { view.undo.push(JSON.stringify(view.actions)); view.redo = []; }
  view.actions = actions; view.selected = null; view.edited = false;
}
// Unsaved edits on any axis: the one shown or one kept aside while another is shown.
function anyEdited() {
  return view.edited || Object.entries(view.stash).some(([axis, kept]) => axis !== view.axis && kept.edited);
}
const KEPT = ["data", "actions", "undo", "redo", "edited", "selected"];
async function switchAxis(axis) {  // each axis keeps its own points, undo and redo
  view.stash[view.axis] = Object.fromEntries(KEPT.map((k) => [k, view[k]]));
  view.axis = axis;
  const kept = view.stash[axis];
  if (kept && kept.data) {
    Object.assign(view, kept);
    showOptions(view.data);
    await showCompare();
    status(`${axis}: ${view.data.script_name}${view.edited ? " (unsaved edits)" : ""}`);
    draw();
    return;
  }
  Object.assign(view, {data: null, actions: [], undo: [], redo: [], edited: false, selected: null});
  await load();
}
window.addEventListener("beforeunload", (e) => {
  if (!anyEdited()) return;
  e.preventDefault();
  e.returnValue = "";  // the browser asks before leaving: the edits are not saved
});
function restore(from, to) {
  if (!from.length) return;
  to.push(JSON.stringify(view.actions));
  view.actions = JSON.parse(from.pop());
  view.selected = null;
  view.edited = true;
  draw();
}
function sortActions() {
  const chosen = view.selected === null ? null : view.actions[view.selected];
  view.actions.sort((a, b) => a.at - b.at);
  view.actions = view.actions.filter((p, i, all) => i === 0 || p.at !== all[i - 1].at);
  view.selected = chosen ? view.actions.indexOf(chosen) : null;
}
function clampPoint(p) { p.at = Math.max(0, Math.round(p.at)); p.pos = Math.max(0, Math.min(100, Math.round(p.pos))); }

let drag = null;
svg.addEventListener("mousedown", (e) => {
  const target = e.target;
  if (target.classList.contains("point")) {
    remember();
    view.selected = Number(target.dataset.index);
    const p = view.actions[view.selected];  // moves by the mouse's travel: a click moves nothing
    drag = {kind: "point", moved: false, x: e.clientX, y: e.clientY, at: p.at, pos: p.pos};
  } else {
    drag = {kind: "pan", x: e.clientX, start: view.start, moved: false};
  }
  draw();
});
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const rect = svg.getBoundingClientRect();
  if (drag.kind === "point") {
    const p = view.actions[view.selected];
    p.at = drag.at + (atOf(e.clientX - rect.left) - atOf(drag.x - rect.left));
    p.pos = drag.pos + (posOf(e.clientY - rect.top) - posOf(drag.y - rect.top));
    clampPoint(p);
    drag.moved = p.at !== drag.at || p.pos !== drag.pos;
  } else if (Math.abs(e.clientX - drag.x) > 3) {
    view.start = Math.max(0, drag.start - (e.clientX - drag.x) / rect.width * view.span);
    drag.moved = true;
  }
  draw();
});
window.addEventListener("mouseup", (e) => {
  if (!drag) return;
  if (drag.kind === "point") {
    if (drag.moved) sortActions(); else view.undo.pop();
  } else if (!drag.moved) {
    seek(atOf(e.clientX - svg.getBoundingClientRect().left));
  }
  drag = null;
  draw();
});
svg.addEventListener("dblclick", (e) => {
  if (e.target.classList.contains("point")) return;
  const rect = svg.getBoundingClientRect();
  remember();
  const p = {at: atOf(e.clientX - rect.left), pos: posOf(e.clientY - rect.top)};
  clampPoint(p);
  view.actions.push(p);
  view.selected = view.actions.length - 1;
  sortActions();
  draw();
});
svg.addEventListener("wheel", (e) => {
  e.preventDefault();
  const at = atOf(e.clientX - svg.getBoundingClientRect().left);
  const factor = e.deltaY > 0 ? 1.25 : 0.8;
  view.span = Math.max(1000, Math.min((view.data?.duration_ms || 60000) * 1.1, view.span * factor));
  view.start = Math.max(0, at - (at - view.start) * factor);
  draw();
}, {passive: false});
// Keys as in OpenFunscripter (listed on the page): space plays or pauses, left/right step one
// frame, shift+left/right jump to the previous/next point, up/down move the selected point (shift:
// by 10), 0-9 set a point at the cursor to 0-90 (the key on its own) and "=" to 100.
function frameMs() {
  const at = view.data ? view.data.raw.at : [];
  return at.length > 1 ? (at[at.length - 1] - at[0]) / (at.length - 1) : 1000 / 30;
}
function pointAt(at, pos) {  // set the point at the cursor (one there already moves)
  remember();
  const near = view.actions.findIndex((p) => Math.abs(p.at - at) < frameMs() / 2);
  if (near >= 0) view.actions[near].pos = pos; else view.actions.push({at: Math.round(at), pos});
  if (near < 0) view.selected = view.actions.length - 1; else view.selected = near;
  sortActions();
}
window.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const key = e.key;
  if ((key === "Delete" || key === "Backspace") && view.selected !== null) {
    remember(); view.actions.splice(view.selected, 1); view.selected = null;
  } else if ((e.ctrlKey || e.metaKey) && key === "z") { restore(view.undo, view.redo); return; }
  else if ((e.ctrlKey || e.metaKey) && key === "y") { restore(view.redo, view.undo); return; }
  else if (key === " ") {
    e.preventDefault();
    if (view.player) { if (view.player.paused) view.player.play(); else view.player.pause(); }
  } else if ((key === "ArrowLeft" || key === "ArrowRight") && e.shiftKey) {
    e.preventDefault();
    const later = key === "ArrowRight";
    const found = later ? view.actions.find((p) => p.at > view.cursor + 1)
                        : [...view.actions].reverse().find((p) => p.at < view.cursor - 1);
    if (found) { view.selected = view.actions.indexOf(found); seek(found.at); }
  } else if (key === "ArrowLeft" || key === "ArrowRight") {
    e.preventDefault();
    seek(Math.max(0, view.cursor + (key === "ArrowRight" ? 1 : -1) * frameMs()));
  } else if ((key === "ArrowUp" || key === "ArrowDown") && view.selected !== null) {
    e.preventDefault();
    remember();
    const p = view.actions[view.selected];
    p.pos = Math.max(0, Math.min(100, p.pos + (key === "ArrowUp" ? 1 : -1) * (e.shiftKey ? 10 : 1)));
  } else if (/^[0-9]$/.test(key) && !e.ctrlKey && !e.metaKey) {
    pointAt(view.cursor, Number(key) * 10);
  } else if (key === "=") {
    pointAt(view.cursor, 100);
  } else return;
  draw();
});
// Hovering the timeline shows the frame under the mouse (fetched at most ~6 times a second).
let hoverTimer = null;
svg.addEventListener("mousemove", (e) => {
  if (drag || !view.data) return;
  const at = Math.max(0, atOf(e.clientX - svg.getBoundingClientRect().left));
  const preview = document.querySelector("#hover");
  Object.assign(preview.style, {display: "block", left: `${e.clientX + 12}px`, top: `${e.clientY - 100}px`});
  clearTimeout(hoverTimer);
  hoverTimer = setTimeout(() => {
    preview.src = `/api/frame?video=${encodeURIComponent(video)}&at=${Math.round(at)}`;
    preview.dataset.at = String(Math.round(at));
  }, 150);
});
svg.addEventListener("mouseleave", () => { document.querySelector("#hover").style.display = "none"; });
document.querySelector("#undo").addEventListener("click", () => restore(view.undo, view.redo));
document.querySelector("#redo").addEventListener("click", () => restore(view.redo, view.undo));

// ---- the picture and the cursor --------------------------------------------------------------
function seek(at) {
  view.cursor = Math.max(0, at);
  if (view.player) view.player.currentTime = view.cursor / 1000;
  else showFrame();
  draw();
}
let frameTimer = null;
function showFrame() {
  clearTimeout(frameTimer);
  frameTimer = setTimeout(() => {
    const img = document.querySelector("#picture img");
    if (img) img.src = `/api/frame?video=${encodeURIComponent(video)}&at=${Math.round(view.cursor)}`;
  }, 120);
}
function follow() {
  if (view.player && !view.player.paused) {
    view.cursor = view.player.currentTime * 1000;
    if (view.cursor > view.start + view.span * 0.9 || view.cursor < view.start) view.start = Math.max(0, view.cursor - view.span * 0.1);
    draw();
  }
  requestAnimationFrame(follow);
}
function setupPicture(data) {
  const picture = document.querySelector("#picture");
  if (data.playable) {
    view.player = studio.el("video", {src: `/api/media?video=${encodeURIComponent(video)}`, controls: true, preload: "metadata"});
    view.player.addEventListener("seeked", () => { view.cursor = view.player.currentTime * 1000; draw(); });
    picture.prepend(view.player);
  } else {  // a still frame: not draggable, so a drag on it draws the crop box
    picture.prepend(studio.el("img", {alt: "frame at the cursor", draggable: "false"}));
    showFrame();
  }
  picture.addEventListener("dragstart", (e) => e.preventDefault());
  let boxStart = null;
  picture.addEventListener("mousedown", (e) => {
    if (view.crop !== "box" || view.player && e.offsetY > picture.clientHeight - 40) return;
    boxStart = [e.offsetX, e.offsetY];
  });
  picture.addEventListener("mouseup", (e) => {
    if (!boxStart) return;
    const scale = data.width / picture.querySelector("video, img").clientWidth;
    const [x0, y0] = boxStart, [x1, y1] = [e.offsetX, e.offsetY];
    const even = (v) => Math.max(2, Math.round(v * scale / 2) * 2);
    view.box = [even(Math.min(x0, x1)), even(Math.min(y0, y1)), even(Math.abs(x1 - x0)), even(Math.abs(y1 - y0))];
    const box = document.querySelector("#cropbox");
    Object.assign(box.style, {display: "block", left: `${Math.min(x0, x1)}px`, top: `${Math.min(y0, y1)}px`,
                              width: `${Math.abs(x1 - x0)}px`, height: `${Math.abs(y1 - y0)}px`});
    boxStart = null;
    load();
  });
}

// ---- server round trips ----------------------------------------------------------------------
function showAxes(axes) {  // the selector appears for a model of several axes
  const select = document.querySelector("#axis");
  select.replaceChildren(...axes.map((a) => studio.el("option", {value: a}, a)));
  select.value = view.axis;
  document.querySelector("#axis-box").hidden = axes.length < 2;
}
function status(text, error) {
  const node = document.querySelector("#status");
  node.textContent = text; node.className = error ? "error" : "note";
}
function showOptions(data) {  // the controls show what the drawing was made with
  document.querySelector("#stride").value = data.stride;
  for (const id of ["min_amplitude", "rdp_epsilon", "offset_ms"]) document.querySelector(`#${id}`).value = data.options[id];
  document.querySelector("#stretch_percentile").value = data.options.stretch_percentile ?? "";
  document.querySelector("#invert").checked = data.options.invert;
  document.querySelector("#raw").checked = data.options.raw;
}
async function load() {
  const first = !view.data;
  if (!first && !mayReplaceEdits("This change")) { showOptions(view.data); return; }
  status("loading (the first look at a video encodes it into the cache) ...");
  view.defaults = await studio.fillDefaults(["stride", "min_amplitude", "rdp_epsilon", "offset_ms"]);
  view.loading = true;
  // The first look takes the stride and options of the script fsrun wrote beside the video.
  const query = new URLSearchParams(first ? {video, axis: view.axis} : {video, axis: view.axis, stride: stride(), options: JSON.stringify(options())});
  if (cropValue()) query.set("crop", cropValue());
  try {
    const data = await studio.api(`/api/look?${query}`);
    view.data = data;
    showOptions(data);
    // Editing starts from the saved script where there is one, else from the model's track.
    replaceActions(first && data.script ? data.script.map((p) => ({...p})) : data.actions);
    if (!view.pictureReady) {
      view.span = Math.min(60000, data.duration_ms || 60000);
      setupPicture(data);
      showCrop(data.crop);
      showAxes(data.axes);
      view.pictureReady = true;
    }
    view.cropShown = data.crop;
    await showCompare();
    status(`${first && data.script ? "the saved script; " : ""}server: ${(data.seconds * 1000).toFixed(0)} ms`);
    draw();
  } catch (error) { status(error.message, true); }
  view.loading = false;
}
async function redo() {
  if (!mayReplaceEdits("This post-processing change")) { showOptions(view.data); return; }
  try {
    const data = await studio.api("/api/redo", {video, axis: view.axis, stride: stride(), crop: cropValue() || view.cropShown || "full", options: options()});
    replaceActions(data.actions);
    view.data.options = options();  // what the drawing is made with now
    status(`post-processing redone on the server in ${(data.seconds * 1000).toFixed(1)} ms`);
    await showCompare();
    draw();
  } catch (error) { status(error.message, true); }
}
async function showCompare() {
  const which = document.querySelector("#compare").value;
  view.compare = which && view.data ? view.data[which] : null;
  const agreement = document.querySelector("#agreement");
  if (!view.compare) { agreement.textContent = which ? `no ${which} file` : ""; return; }
  const result = await studio.api("/api/compare", {video, first: view.actions, second: view.compare});
  agreement.textContent = result.r === null ? result.detail : `Pearson r ${result.r.toFixed(3)}, lag ${result.lag_ms} ms`;
}
async function save(kind) {
  const exists = kind === "truth" ? view.data.truth : view.data.script;
  let replace = false;
  if (exists) {
    replace = window.confirm(`Replace the existing ${kind === "truth" ? "truth file" : "script"}?`);
    if (!replace) return;
  }
  try {
    const result = await studio.api("/api/save", {video, kind, actions: view.actions, replace, axis: view.axis});
    status(`saved ${result.saved} (${result.actions} points)` +
           (result.backup ? `; the one it replaced is kept as ${result.backup}` : ""));
    view.data[kind] = view.actions.map((p) => ({...p}));
    view.edited = false;
  } catch (error) { status(error.message, true); }
}

for (const id of ["min_amplitude", "rdp_epsilon", "stretch_percentile", "invert", "offset_ms", "raw"]) {
  document.querySelector(`#${id}`).addEventListener("change", redo);
}
document.querySelector("#stride").addEventListener("change", load);  // new raw positions: the head runs
document.querySelector("#compare").addEventListener("change", async () => { await showCompare(); draw(); });
document.querySelector("#crop").addEventListener("change", (e) => { view.crop = e.target.value; if (view.crop !== "box") load(); });
document.querySelector("#save-crop").addEventListener("click", async () => {
  const crop = cropValue() || view.cropShown || "full";
  await studio.api("/api/settings", {video, crop});
  status(`crop ${crop} kept for this video: its next runs use it`);
});
document.querySelector("#axis").addEventListener("change", (e) => switchAxis(e.target.value));
document.querySelector("#save-script").addEventListener("click", () => save("script"));
document.querySelector("#save-truth").addEventListener("click", () => save("truth"));
window.addEventListener("resize", draw);

studio.listen((event) => {
  if (event.type !== "viewer" || event.video !== video || !view.loading) return;
  const what = event.stage === "encode" ? "frames encoded" : "windows through the head";
  status(`${event.done}${event.total ? " / " + event.total : ""} ${what} ...`);
});
document.querySelector("#name").textContent = video;
load();
requestAnimationFrame(follow);
