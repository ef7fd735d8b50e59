// The library page: every video and its state, the queue with live progress, training.
"use strict";
const el = studio.el;
const selected = new Set();
let jobsById = {};

function axisTags(axes) {  // the other axes' files: VIDEO.roll.funscript, its truth
  return Object.entries(axes).map(([axis, state]) => el("span", {
    class: `tag axis ${state.script.kind}`, title: `${axis}: ${state.script.kind === "none" ? "no script" : state.script.kind}` +
      (state.truth ? ", truth" : "")}, `${axis}${state.script.kind === "none" ? "" : " ✓"}${state.truth ? " (truth)" : ""}`));
}
function scriptTag(script) {
  if (script.kind === "fsrun") {
    const stride = script.options && script.options.stride;
    return el("span", {class: "tag fsrun", title: JSON.stringify(script.options)},
              `fsrun: ${script.model || "?"}${stride ? `, stride ${stride}` : ""}`);
  }
  if (script.kind === "creator") return el("span", {class: "tag creator"}, "creator's script");
  return el("span", {class: "tag"}, "no script");
}

function jobCell(job) {
  if (!job) return "";
  const p = job.progress;
  if (job.status === "running" && p) {
    const share = p.total ? Math.min(1, p.frames / p.total) : 0;
    return el("span", {}, el("span", {class: "bar"}, el("div", {style: `width:${share * 100}%`})),
              ` ${p.frames}${p.total ? "/" + p.total : ""} frames, ${p.rate} frames/s, ETA ${studio.clock(p.eta_s)}`);
  }
  return job.status;
}

async function loadLibrary() {
  const data = await studio.api("/api/library");
  const body = document.querySelector("#videos tbody");
  body.replaceChildren();
  for (const row of data.videos) {
    if (row.problem) {  // listed, never blanking the page: what is wrong with this entry
      body.append(el("tr", {"data-video": row.video, class: "problem"},
        el("td", {}, ""), el("td", {}, row.video),
        el("td", {colspan: 6, class: "error"}, row.problem)));
      continue;
    }
    const viewer = `/viewer?video=${encodeURIComponent(row.video)}`;
    body.append(el("tr", {"data-video": row.video},
      el("td", {}, el("input", {type: "checkbox", class: "pick", checked: selected.has(row.video),
        onchange: (e) => { e.target.checked ? selected.add(row.video) : selected.delete(row.video); update(); }})),
      el("td", {}, row.video),
      el("td", {class: "num"}, row.duration_s === null ? "..." : studio.clock(row.duration_s)),
      el("td", {class: "num"}, studio.size(row.bytes)),
      el("td", {class: "script"}, scriptTag(row.script), ...axisTags(row.axes || {})),
      el("td", {}, row.truth ? el("span", {class: "tag truth"}, "truth") : ""),
      el("td", {class: "job"}, jobCell(row.job)),
      el("td", {}, el("a", {href: viewer, class: "open"}, "open"))));
  }
  document.querySelector("#count").textContent =
    `${data.videos.length} videos (listed in ${(data.seconds * 1000).toFixed(0)} ms)`;
  update();
}

function update() {
  document.querySelector("#queue").disabled = selected.size === 0;
}

let jobOrder = [];  // the queue's order, as the server keeps it
function jobRow(job) {
  const active = job.status === "queued" || job.status === "running";
  const buttons = [];
  if (active) buttons.push(el("button", {class: "cancel", onclick: (e) => {
    e.target.disabled = true;  // one press is enough: the row says when it took effect
    studio.api(`/api/jobs/${job.id}/cancel`, {});
  }}, job.status === "running" ? "Cancel" : "Remove"));
  if (job.status === "queued") {
    buttons.push(el("button", {class: "up", title: "earlier", onclick: () => studio.api(`/api/jobs/${job.id}/move`, {direction: "up"})}, "\u2191"));
    buttons.push(el("button", {class: "down", title: "later", onclick: () => studio.api(`/api/jobs/${job.id}/move`, {direction: "down"})}, "\u2193"));
  }
  return el("tr", {"data-job": job.id, "data-status": job.status},
    el("td", {}, job.video),
    el("td", {class: "status"}, el("span", {class: `tag ${job.status === "failed" ? "failed" : ""}`}, job.status)),
    el("td", {class: "progress"}, job.status === "running" ? jobCell(job) : ""),
    el("td", {class: `detail ${job.status === "failed" ? "error" : "note"}`}, job.detail || ""),
    el("td", {class: "buttons"}, ...buttons));
}
function renderJobs() {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...jobOrder.filter((id) => jobsById[id]).map((id) => jobRow(jobsById[id])));
}
// Progress changes one cell of one row; the row, and the Cancel button in it, stay in place.
function showProgress(job) {
  const row = document.querySelector(`#jobs tr[data-job="${CSS.escape(job.id)}"]`);
  if (!row || row.dataset.status !== job.status) { renderJobs(); return; }
  row.querySelector("td.progress").replaceChildren(job.status === "running" ? jobCell(job) : "");
  row.querySelector("td.detail").textContent = job.detail || "";
}

async function loadJobs() {
  const data = await studio.api("/api/jobs");
  jobsById = Object.fromEntries(data.jobs.map((job) => [job.id, job]));
  jobOrder = data.jobs.map((job) => job.id);
  document.querySelector("#pause").textContent = data.paused ? "Resume the queue" : "Pause the queue";
  document.querySelector("#pause").dataset.paused = data.paused ? "1" : "";
  document.querySelector("#queue-state").textContent = data.paused ? "paused: the running job finishes, no new one starts" : "";
  renderJobs();
}

document.querySelector("#queue").addEventListener("click", async () => {
  const options = {force: document.querySelector("#force").checked};
  for (const name of ["stride", "min_amplitude", "rdp_epsilon"]) {
    options[name] = Number(document.querySelector(`#${name}`).value);
  }
  await studio.api("/api/jobs", {videos: [...selected], options});
  selected.clear();
  await loadLibrary();
});
document.querySelector("#all").addEventListener("change", (e) => {
  for (const box of document.querySelectorAll("#videos input.pick")) {
    const name = box.closest("tr").dataset.video;
    box.checked = e.target.checked;
    e.target.checked ? selected.add(name) : selected.delete(name);
  }
  update();
});
document.querySelector("#pause").addEventListener("click", async (e) => {
  await studio.api("/api/jobs/pause", {paused: !e.target.dataset.paused});
  await loadJobs();
});
document.querySelector("#train-cancel").addEventListener("click", async () => {
  const answer = await studio.api("/api/train/cancel", {});
  document.querySelector("#train-status").textContent = answer.detail || answer.status;
});
document.querySelector("#clear").addEventListener("click", async () => {
  await studio.api("/api/jobs/clear", {});
  await loadJobs();
});
document.querySelector("#train").addEventListener("click", async () => {
  const answer = await studio.api("/api/train", {epochs: Number(document.querySelector("#epochs").value)});
  document.querySelector("#train-status").textContent = answer.detail || answer.status;
});

function showModels(models) {
  const pick = document.querySelector("#model-pick");
  pick.replaceChildren(...models.choices.map((c) => el("option",
    {value: c.name, disabled: !c.available, selected: c.name === models.current},
    c.name === "trained" ? `trained on this folder's labels${c.available ? "" : " (none yet)"}`
                         : `the one the studio started with (${c.path})`)));
  const current = models.choices.find((c) => c.name === models.current);
  if (current) document.querySelector("#model").textContent = current.path;
}
document.querySelector("#model-pick").addEventListener("change", async (e) => {
  showModels(await studio.api("/api/model", {model: e.target.value}));
});

studio.listen((event) => {
  if (event.type === "job") {
    const known = jobsById[event.job.id];
    jobsById[event.job.id] = event.job;
    if (!jobOrder.includes(event.job.id)) jobOrder.push(event.job.id);
    if (known && known.status === event.job.status) showProgress(event.job); else renderJobs();
    const cell = document.querySelector(`#videos tr[data-video="${CSS.escape(event.job.video)}"] td.job`);
    if (cell) cell.replaceChildren(jobCell(event.job));
  } else if (event.type === "progress" && jobsById[event.id]) {
    jobsById[event.id].progress = event.progress;
    showProgress(jobsById[event.id]);
    const job = jobsById[event.id];
    const cell = document.querySelector(`#videos tr[data-video="${CSS.escape(job.video)}"] td.job`);
    if (cell) cell.replaceChildren(jobCell(job));
  } else if (event.type === "library" || event.type === "queue") {
    loadLibrary();
    loadJobs();
  } else if (event.type === "train") {
    const log = document.querySelector("#train-log");
    if (event.line) log.textContent = (log.textContent + event.line + "\n").split("\n").slice(-30).join("\n");
    if (event.status) document.querySelector("#train-status").textContent =
      event.status === "done" ? `done: ${event.package}; pick it below to use it` : event.status;
    if (event.status === "done") studio.api("/api/model").then(showModels);
  } else if (event.type === "model") {
    showModels(event);
  }
});

(async () => {
  const info = await studio.api("/api/info");
  await studio.fillDefaults(["stride", "min_amplitude", "rdp_epsilon", "epochs"]);
  document.querySelector("#folder").textContent = info.folder;
  document.querySelector("#model").textContent = info.model;
  showModels(await studio.api("/api/model"));
  const train = await studio.api("/api/train");
  if (train.missing) {
    document.querySelector("#train").disabled = true;
    document.querySelector("#train-status").textContent = train.missing;
  }
  await loadLibrary();
  await loadJobs();
})();
