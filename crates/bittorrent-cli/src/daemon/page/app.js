// The daemon's built-in page: logs in when the API answers 403, polls
// sync/maindata every second and keeps one <tr data-hash> per torrent in
// #torrent-list, adds by magnet or .torrent file, stops/starts/deletes, and
// selects files. Every string from the API reaches the DOM through
// textContent, never parsed as HTML.
"use strict";

const API = "api/v2/";
const POLL_MS = 1000;

const state = {
  rid: 0,
  torrents: new Map(), // hash -> merged torrent object
  rows: new Map(), // hash -> {row, cells, filesRow}
  timer: null,
  deleting: null,
};

const $ = (id) => document.getElementById(id);

class Forbidden extends Error {}

// A request to the API: form-encoded params (or a FormData) by POST, or a
// GET. Throws Forbidden on 403.
async function api(path, params, method = "POST") {
  const init = { method, credentials: "same-origin" };
  let url = API + path;
  if (method === "GET") {
    if (params) url += "?" + new URLSearchParams(params);
  } else if (params instanceof FormData) {
    init.body = params;
  } else {
    init.body = new URLSearchParams(params || {});
  }
  const response = await fetch(url, init);
  if (response.status === 403) throw new Forbidden();
  if (!response.ok) {
    const text = await response.text();
    throw new Error(`${response.status}: ${text}`);
  }
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatBytes(n) {
  if (!(n >= 0)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function formatRate(n) {
  return n > 0 ? formatBytes(n) + "/s" : "";
}

function formatRatio(r) {
  return r < 0 ? "∞" : Number(r || 0).toFixed(2);
}

// --- Login -----------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  $("app").hidden = true;
  $("logout-button").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-user").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const answer = await api("auth/login", {
      username: $("login-user").value,
      password: $("login-pass").value,
    });
    if (String(answer).trim() === "Ok.") {
      $("login-pass").value = "";
      showApp();
    } else {
      $("login-error").textContent = "Wrong user name or password.";
    }
  } catch (err) {
    const banned = err instanceof Forbidden;
    $("login-error").textContent = banned
      ? "Too many failed logins from this address: try again later."
      : String(err.message || err);
  }
}

async function logout() {
  try {
    await api("auth/logout");
  } catch (_) {
    // Logged out either way.
  }
  resetList();
  showLogin();
}

// --- Polling -----------------------------------------------------------------

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout-button").hidden = false;
  resetList();
  startPolling();
}

function resetList() {
  state.rid = 0;
  state.torrents.clear();
  for (const entry of state.rows.values()) {
    entry.row.remove();
    if (entry.filesRow) entry.filesRow.remove();
  }
  state.rows.clear();
}

function startPolling() {
  stopPolling();
  poll();
}

function stopPolling() {
  if (state.timer !== null) clearTimeout(state.timer);
  state.timer = null;
}

async function poll() {
  try {
    const data = await api("sync/maindata", { rid: state.rid }, "GET");
    applySync(data);
  } catch (err) {
    if (err instanceof Forbidden) {
      showLogin("Your session ended: log in again.");
      return;
    }
    $("transfer").textContent = "API unreachable: " + (err.message || err);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function applySync(data) {
  if (data.full_update) state.torrents.clear();
  state.rid = data.rid || 0;
  for (const [hash, fields] of Object.entries(data.torrents || {})) {
    const old = state.torrents.get(hash) || {};
    state.torrents.set(hash, Object.assign(old, fields));
  }
  for (const hash of data.torrents_removed || []) state.torrents.delete(hash);
  if (data.server_state) renderTransfer(data.server_state);
  renderList();
}

function renderTransfer(server) {
  state.server = Object.assign(state.server || {}, server);
  const s = state.server;
  $("transfer").textContent =
    `↓ ${formatRate(s.dl_info_speed) || "0 B/s"}  ↑ ${formatRate(s.up_info_speed) || "0 B/s"}`;
}

// --- The torrent list ------------------------------------------------------------

function renderList() {
  const list = $("torrent-list");
  for (const [hash, entry] of state.rows) {
    if (!state.torrents.has(hash)) {
      entry.row.remove();
      if (entry.filesRow) entry.filesRow.remove();
      state.rows.delete(hash);
    }
  }
  const sorted = [...state.torrents.entries()].sort(
    (a, b) => (a[1].added_on || 0) - (b[1].added_on || 0) || a[0].localeCompare(b[0]),
  );
  // Nodes are moved only when out of place, so a click in progress on a
  // row is not lost to a refresh.
  let cursor = list.firstChild;
  const place = (node) => {
    if (node === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(node, cursor);
  };
  for (const [hash, torrent] of sorted) {
    let entry = state.rows.get(hash);
    if (!entry) {
      entry = makeRow(hash);
      state.rows.set(hash, entry);
    }
    place(entry.row);
    if (entry.filesRow) place(entry.filesRow);
    updateRow(entry, torrent);
  }
  $("empty").hidden = state.torrents.size > 0;
}

function makeRow(hash) {
  const row = el("tr", "torrent");
  row.dataset.hash = hash;
  const cells = {
    name: el("td", "name"),
    size: el("td", "num size"),
    progress: el("td", "progress"),
    down: el("td", "num dlspeed"),
    up: el("td", "num upspeed"),
    state: el("td", "state"),
    ratio: el("td", "num ratio"),
    actions: el("td", "actions"),
  };
  const bar = el("div", "bar");
  cells.fill = el("div", "fill");
  cells.label = el("span", "label");
  bar.append(cells.fill, cells.label);
  cells.bar = bar;
  cells.progress.appendChild(bar);

  cells.toggle = el("button", "toggle-button");
  cells.toggle.type = "button";
  cells.toggle.addEventListener("click", () => toggleRunning(hash));
  const files = el("button", "files-button", "Files");
  files.type = "button";
  files.addEventListener("click", () => toggleFiles(hash));
  const remove = el("button", "delete-button", "Delete");
  remove.type = "button";
  remove.addEventListener("click", () => askDelete(hash));
  cells.actions.append(cells.toggle, " ", files, " ", remove);

  row.append(
    cells.name, cells.size, cells.progress, cells.down, cells.up,
    cells.state, cells.ratio, cells.actions,
  );
  return { row, cells, filesRow: null };
}

function isStopped(torrent) {
  return String(torrent.state || "").startsWith("stopped") ||
    String(torrent.state || "").startsWith("paused");
}

function updateRow(entry, t) {
  const c = entry.cells;
  c.name.textContent = t.name || "";
  c.name.title = t.save_path || "";
  c.size.textContent = formatBytes(t.size);
  const progress = Math.max(0, Math.min(1, Number(t.progress) || 0));
  c.fill.style.width = (progress * 100).toFixed(1) + "%";
  c.label.textContent = (progress * 100).toFixed(1) + "%";
  c.bar.classList.toggle("complete", progress >= 1);
  c.down.textContent = formatRate(t.dlspeed);
  c.up.textContent = formatRate(t.upspeed);
  c.state.textContent = t.state || "";
  c.state.className = "state state-" + String(t.state || "unknown");
  c.ratio.textContent = formatRatio(t.ratio);
  const stopped = isStopped(t);
  c.toggle.textContent = stopped ? "Resume" : "Pause";
  c.toggle.classList.toggle("resume-button", stopped);
  c.toggle.classList.toggle("pause-button", !stopped);
  entry.row.dataset.state = t.state || "";
}

async function toggleRunning(hash) {
  const torrent = state.torrents.get(hash);
  if (!torrent) return;
  const action = isStopped(torrent) ? "torrents/start" : "torrents/stop";
  await guarded(() => api(action, { hashes: hash }));
}

// Runs an action; a 403 brings the login back, other errors are shown.
async function guarded(action) {
  try {
    return await action();
  } catch (err) {
    if (err instanceof Forbidden) showLogin("Your session ended: log in again.");
    else $("add-status").textContent = String(err.message || err);
    return undefined;
  }
}

// --- Delete -----------------------------------------------------------------

function askDelete(hash) {
  const torrent = state.torrents.get(hash);
  state.deleting = hash;
  $("delete-name").textContent = torrent ? torrent.name : hash;
  $("delete-files").checked = false;
  $("delete-dialog").showModal();
}

async function onDeleteClosed() {
  const hash = state.deleting;
  state.deleting = null;
  if (!hash || $("delete-dialog").returnValue !== "delete") return;
  await guarded(() =>
    api("torrents/delete", {
      hashes: hash,
      deleteFiles: $("delete-files").checked ? "true" : "false",
    }));
}

// --- Files ------------------------------------------------------------------

async function toggleFiles(hash) {
  const entry = state.rows.get(hash);
  if (!entry) return;
  if (entry.filesRow) {
    entry.filesRow.remove();
    entry.filesRow = null;
    return;
  }
  const filesRow = el("tr", "files");
  filesRow.dataset.filesOf = hash;
  const cell = el("td");
  cell.colSpan = 8;
  filesRow.appendChild(cell);
  entry.filesRow = filesRow;
  entry.row.after(filesRow);
  await loadFiles(hash);
}

async function loadFiles(hash) {
  const entry = state.rows.get(hash);
  if (!entry || !entry.filesRow) return;
  const files = await guarded(() => api("torrents/files", { hash }, "GET"));
  if (!Array.isArray(files) || !entry.filesRow) return;
  const cell = entry.filesRow.firstChild;
  const list = el("ul", "file-list");
  if (files.length === 0) list.appendChild(el("li", "muted", "Metadata not received yet."));
  for (const file of files) {
    const item = el("li", "file-row");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = file.priority > 0;
    box.dataset.index = String(file.index);
    box.addEventListener("change", () => setFilePriority(hash, file.index, box));
    const label = el("label");
    label.append(box, " ", el("span", "file-name", file.name));
    item.append(
      label,
      el("span", "file-size muted", formatBytes(file.size)),
      el("span", "file-progress", ((Number(file.progress) || 0) * 100).toFixed(1) + "%"),
    );
    list.appendChild(item);
  }
  cell.replaceChildren(list);
}

async function setFilePriority(hash, index, box) {
  const done = await guarded(() =>
    api("torrents/filePrio", { hash, id: String(index), priority: box.checked ? "1" : "0" }));
  if (done === undefined) box.checked = !box.checked;
  else loadFiles(hash);
}

// --- Add --------------------------------------------------------------------

async function add(event) {
  event.preventDefault();
  const urls = $("magnet-input").value.trim();
  const files = $("torrent-file").files;
  if (!urls && files.length === 0) {
    $("add-status").textContent = "Paste a magnet link or choose a .torrent file.";
    return;
  }
  const form = new FormData();
  if (urls) form.append("urls", urls);
  for (const file of files) form.append("torrents", file, file.name);
  if ($("add-stopped").checked) form.append("stopped", "true");
  $("add-status").textContent = "Adding…";
  const answer = await guarded(() => api("torrents/add", form));
  if (answer === undefined) return;
  if (String(answer).trim() === "Fails.") {
    $("add-status").textContent = "Could not add.";
    return;
  }
  $("add-status").textContent = "Added.";
  $("magnet-input").value = "";
  $("torrent-file").value = "";
}

// --- Start ------------------------------------------------------------------

async function start() {
  $("login-form").addEventListener("submit", login);
  $("add-form").addEventListener("submit", add);
  $("logout-button").addEventListener("click", logout);
  $("delete-dialog").addEventListener("close", onDeleteClosed);
  try {
    await api("app/version", null, "GET");
    showApp();
  } catch (err) {
    if (err instanceof Forbidden) showLogin();
    else showLogin("API unreachable: " + (err.message || err));
  }
}

document.addEventListener("DOMContentLoaded", start);
