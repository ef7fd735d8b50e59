// Shared by both pages: the API with the token, events, formatting.
"use strict";
const studio = window.studio = window.studio || {};
studio.token = new URLSearchParams(location.search).get("token") || "";

studio.api = async function (path, body) {
  const headers = studio.token ? {"x-studio-token": studio.token} : {};
  const options = body === undefined ? {headers} : {
    method: "POST", headers: {...headers, "content-type": "application/json"},
    body: JSON.stringify(body)};
  const response = await fetch(path, options);  // the cookie the first visit set carries the token
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = {error: text}; }
  if (!response.ok) throw new Error(data.error || `${response.status}`);
  return data;
};

// The defaults live on the server (fsrun/defaults.py); the pages hold none of their own.
studio.defaults = async function () {
  if (!studio._defaults) studio._defaults = (await studio.api("/api/info")).defaults;
  return studio._defaults;
};
studio.fillDefaults = async function (ids) {  // empty inputs get the server's defaults
  const values = await studio.defaults();
  for (const id of ids) {
    const input = document.querySelector(`#${id}`);
    if (input && input.value === "" && values[id] !== undefined && values[id] !== null) input.value = values[id];
  }
  return values;
};

studio.listen = function (handler) {
  const source = new EventSource("/api/events");
  source.onmessage = (message) => handler(JSON.parse(message.data));
  return source;
};

studio.clock = function (seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "-";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
};

studio.size = function (bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
  return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
};

studio.el = function (tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
};
