// reid-pipeline console: live tiles, camera stats, event feed, drag-and-drop and box drawing for photo search.
// Plain JavaScript, no library, no network access beyond this server.
"use strict";

const TILE_MIN_INTERVAL_MS = 200;  // at most 5 tile updates per second per camera (one long-poll request each)

function fmtAge(v) { return v === null || v === undefined ? "-" : v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(1) + " s"; }

function startTile(img) {
  const cam = img.dataset.cam;
  let last = null, url = null;
  async function step() {
    const t0 = performance.now();
    let wait = TILE_MIN_INTERVAL_MS;
    try {
      const after = last === null ? "" : `?after=${last}`;  // the server answers when a newer frame exists
      const r = await fetch(`/api/cameras/${encodeURIComponent(cam)}/frame.jpg${after}`, {cache: "no-store"});
      if (r.status === 200) {
        const idx = r.headers.get("X-Frame-Index");
        const blob = await r.blob();
        if (idx !== last) {
          last = idx;
          const next = URL.createObjectURL(blob);
          img.src = next;
          if (url) URL.revokeObjectURL(url);
          url = next;
          img.dataset.updates = String(Number(img.dataset.updates || 0) + 1);
          img.dataset.frame = idx;
        }
      } else {
        wait = 1000;
      }
    } catch (e) {
      wait = 2000;  // the run ended or the network went away: retry slowly
    }
    setTimeout(step, Math.max(0, wait - (performance.now() - t0)));
  }
  step();
}

function startStats() {
  const tiles = document.querySelectorAll(".tile[data-cam]");
  if (!tiles.length || !document.querySelector("img.live-tile")) return;
  async function poll() {
    try {
      const r = await fetch("/api/cameras", {cache: "no-store"});
      if (r.ok) {
        for (const c of await r.json()) {
          const tile = document.querySelector(`.tile[data-cam="${CSS.escape(c.cam_id)}"]`);
          if (!tile || !c.health) continue;
          const set = (f, v) => { const el = tile.querySelector(`[data-field="${f}"]`); if (el) el.textContent = v; };
          set("fps", c.health.fps.toFixed(1));
          set("frames", c.health.frames);
          set("drops", c.health.drops);
          set("reconnect_attempts", c.health.reconnect_attempts);
          set("last_frame_age_s", fmtAge(c.health.last_frame_age_s));
          set("labels", c.frame && c.frame.labels.length ? c.frame.labels.join(" ") : "none");
          const st = tile.querySelector('[data-field="state"]');
          if (st) { st.textContent = c.health.state; st.className = "state " + c.health.state; }
        }
      }
    } catch (e) { /* retried on the next tick */ }
    setTimeout(poll, 1000);
  }
  poll();
}

function startEvents() {
  const body = document.getElementById("event-rows");
  if (!body || !window.EventSource) return;
  const state = document.getElementById("feed-state");
  const es = new EventSource(`/api/events/stream?after=${body.dataset.last || 0}`);
  es.onopen = () => { state.textContent = "feed connected"; state.className = "state streaming"; };
  es.onerror = () => { state.textContent = "reconnecting…"; state.className = "state reconnecting"; };
  // ids already on the page: a reconnecting EventSource resumes after Last-Event-ID, and any event that still
  // arrives twice (e.g. a console restarted with another stream position) is shown once
  const shown = new Set(Array.from(body.querySelectorAll("tr[data-event-id]"), tr => tr.dataset.eventId));
  const add = (msg) => {
    const e = JSON.parse(msg.data);
    const key = String(e.event_id);
    if (shown.has(key)) return;
    shown.add(key);
    const tr = document.createElement("tr");
    tr.className = "fresh ev-" + e.kind;
    tr.dataset.eventId = key;
    const cells = [e.event_id, e.kind, null, e.cam_id, e.t > 1e9 ? new Date(e.t * 1000).toLocaleString() : e.t.toFixed(1) + " s",
                   e.kind === "handover" ? `from ${e.payload.from_cam}, transit ${e.payload.transit_s} s` : ""];
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      if (i === 2) { const a = document.createElement("a"); a.href = `/identities/${e.global_id}`; a.textContent = `ID ${e.global_id}`; td.appendChild(a); }
      else td.textContent = v;
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    const none = document.getElementById("no-events"); if (none) none.remove();
    while (body.children.length > 200) { shown.delete(body.lastChild.dataset.eventId); body.removeChild(body.lastChild); }
  };
  for (const kind of ["appear", "handover", "leave", "merge", "split", "message"]) es.addEventListener(kind, add);
}

function startSearch() {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("image"), drop = document.getElementById("drop");
  const preview = document.getElementById("preview"), canvas = document.getElementById("canvas");
  const boxField = document.getElementById("box"), ctx = canvas.getContext("2d");
  let img = null, scale = 1, start = null, box = null;
  function draw() {
    if (!img) return;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (box) { ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2; ctx.strokeRect(box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale); }
  }
  function load(file) {
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      img = new Image();
      img.onload = () => {
        scale = Math.min(640 / img.width, 360 / img.height);  // small crops are shown enlarged
        canvas.width = Math.round(img.width * scale); canvas.height = Math.round(img.height * scale);
        box = null; boxField.value = ""; preview.hidden = false; draw();
      };
      img.src = reader.result;
    };
    reader.readAsDataURL(file);
  }
  input.addEventListener("change", () => load(input.files[0]));
  ["dragenter", "dragover"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", e => {
    if (!e.dataTransfer.files.length) return;
    const dt = new DataTransfer(); dt.items.add(e.dataTransfer.files[0]); input.files = dt.files; load(input.files[0]);
  });
  const pos = e => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width / scale, (e.clientY - r.top) * canvas.height / r.height / scale]; };
  canvas.addEventListener("mousedown", e => { start = pos(e); });
  canvas.addEventListener("mousemove", e => {
    if (!start) return;
    const p = pos(e);
    box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.abs(p[0] - start[0]), Math.abs(p[1] - start[1])].map(Math.round);
    draw();
  });
  window.addEventListener("mouseup", () => {
    if (!start) return;
    start = null;
    boxField.value = box && box[2] > 3 && box[3] > 3 ? box.join(",") : "";
    if (!boxField.value) box = null;
    draw();
  });
  document.getElementById("clear-box").addEventListener("click", () => { box = null; boxField.value = ""; draw(); });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("img.live-tile").forEach(startTile);
  startStats();
  startEvents();
  startSearch();
});
