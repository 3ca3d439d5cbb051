// DataFlux web UI: a little plain JavaScript over the REST API (/api/v1). Pages work without it
// (links and forms); it adds seeking in place, feedback, re-analysis, uploads and live status.
"use strict";

(function () {
  document.documentElement.classList.add("js");
  const meta = document.querySelector('meta[name="dataflux-token"]');
  const token = meta ? meta.content : "";

  // Every change goes to the REST API with the bearer token (cookies authenticate reads only).
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (token) opts.headers.Authorization = "Bearer " + token;
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const response = await fetch(path, opts);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return { ok: response.ok, status: response.status, body: body };
  }

  function errorText(result) {
    const err = result.body && result.body.error;
    if (err) return err.message + " (" + err.code + ")";
    return "HTTP " + result.status;
  }

  function fmtTime(seconds) {
    const tenths = Math.round(Math.max(seconds, 0) * 10);
    const minutes = Math.floor(tenths / 600);
    const rest = (tenths % 600) / 10;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest.toFixed(1);
  }

  // --- feedback ---------------------------------------------------------------------------
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-feedback]");
    if (!button) return;
    const group = button.closest(".feedback");
    const status = group.querySelector(".fb-status");
    const good = button.dataset.feedback === "true";
    group.querySelectorAll("[data-feedback]").forEach(function (b) { b.disabled = true; });
    const payload = { type: button.dataset.kind || "relevance", entity_id: button.dataset.entity, feedback: good };
    if (button.dataset.query) payload.query = button.dataset.query;
    const result = await api("/api/v1/feedback", { method: "POST", json: payload });
    group.querySelectorAll("[data-feedback]").forEach(function (b) {
      b.disabled = false;
      b.setAttribute("aria-pressed", String(result.ok && b === button));
    });
    status.textContent = result.ok ? (good ? "Thanks, noted as a good match" : "Thanks, noted as a miss") : "Not saved: " + errorText(result);
    if (result.ok) group.dataset.saved = result.body.id;
  });

  // --- the player: start time, seeking from the timeline and transcript, the playhead --------
  const player = document.getElementById("player");
  if (player) {
    const fromQuery = parseFloat(player.dataset.start);
    const hash = /(?:^#|&)t=([0-9.]+)/.exec(location.hash);
    const start = !isNaN(fromQuery) ? fromQuery : hash ? parseFloat(hash[1]) : NaN;
    if (!isNaN(start)) {
      // The media fragment (#t=) already starts there; this covers links with only #t= on the page URL.
      const apply = function () { if (Math.abs(player.currentTime - start) > 0.25) player.currentTime = start; };
      if (player.readyState >= 1) apply(); else player.addEventListener("loadedmetadata", apply, { once: true });
    }
    document.addEventListener("click", function (event) {
      const link = event.target.closest("[data-seek]");
      if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      const t = parseFloat(link.dataset.seek);
      player.currentTime = t;
      const url = new URL(location.href);
      url.searchParams.set("t", t.toFixed(2));
      url.hash = "";
      history.replaceState(null, "", url);
      const note = document.getElementById("start-note");
      if (note) note.textContent = "Jumped to " + fmtTime(t);
      player.play().catch(function () { /* autoplay may be refused; the position is set */ });
      player.scrollIntoView({ block: "nearest", behavior: "smooth" });
    });
    const bars = Array.from(document.querySelectorAll(".timebar"));
    const duration = parseFloat(player.dataset.duration || (bars[0] && bars[0].dataset.duration));
    const pieces = [];
    bars.forEach(function (bar) {
      bar.querySelectorAll(".timebar-seg").forEach(function (seg) {
        const s = parseFloat(seg.dataset.start), e = parseFloat(seg.dataset.end);
        if (duration > 0) {
          seg.style.left = (100 * s / duration) + "%";
          seg.style.width = Math.max(0.5, 100 * (e - s) / duration) + "%";
        }
        pieces.push(seg);
      });
    });
    const heads = Array.from(document.querySelectorAll("[data-playhead]"));
    const timed = Array.from(document.querySelectorAll(".seg[data-start]")).filter(function (el) { return el.dataset.start !== ""; });
    const lines = Array.from(document.querySelectorAll(".lines li")).filter(function (li) { return li.querySelector("[data-seek]"); });
    player.addEventListener("timeupdate", function () {
      const t = player.currentTime;
      if (duration > 0) heads.forEach(function (h) { h.style.left = Math.min(100, 100 * t / duration) + "%"; });
      timed.forEach(function (el) {
        const on = t >= parseFloat(el.dataset.start) && t < parseFloat(el.dataset.end || el.dataset.start);
        el.classList.toggle("active", on);
      });
      pieces.forEach(function (seg) {
        seg.classList.toggle("active", t >= parseFloat(seg.dataset.start) && t < parseFloat(seg.dataset.end));
      });
      let current = null;
      lines.forEach(function (li) { if (parseFloat(li.querySelector("[data-seek]").dataset.seek) <= t + 0.05) current = li; });
      lines.forEach(function (li) { li.classList.toggle("active", li === current); });
    });
  }

  // --- re-analyse -------------------------------------------------------------------------
  document.querySelectorAll("form.reanalyse").forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const status = form.querySelector(".form-status");
      const button = form.querySelector("button");
      button.disabled = true;
      status.textContent = "Requesting…";
      const result = await api("/api/v1/assets/" + form.dataset.asset + "/analyze", {
        method: "POST", json: { force: form.elements.force.checked },
      });
      button.disabled = false;
      status.textContent = result.ok
        ? "Re-analysis requested; the pipeline picks it up shortly."
        : "Not requested: " + errorText(result);
    });
  });

  // --- live status of queued and processing files ------------------------------------------
  const STEPS = ["uploaded", "queued", "processing", "searchable"];

  function stepIndex(status) {
    return { uploading: 0, queued: 1, processing: 2, completed: 3, failed: 3 }[status];
  }

  async function poll(assetId, onUpdate) {
    let delay = 700;
    for (;;) {
      const result = await api("/api/v1/assets/" + assetId);
      if (result.ok) {
        onUpdate(result.body);
        if (result.body.status === "completed" || result.body.status === "failed") return result.body;
      } else if (result.status === 404 || result.status === 401 || result.status === 403) {
        onUpdate(null, result);
        return null;
      }
      await new Promise(function (r) { setTimeout(r, delay); });
      delay = Math.min(delay * 1.3, 3000);
    }
  }

  document.querySelectorAll("[data-poll-asset]").forEach(function (el) {
    poll(el.dataset.pollAsset, function (asset) {
      if (!asset) return;
      const badge = el.querySelector("[data-status-badge]");
      if (badge) {
        badge.textContent = asset.status;
        badge.className = "status status-" + asset.status;
      }
      const text = el.querySelector("[data-status-text]");
      if (text) text.textContent = asset.status;
      if (el.hasAttribute("data-reload-when-done") && (asset.status === "completed" || asset.status === "failed")) {
        location.reload();
      }
    });
  });

  // --- upload: drag and drop or choose, each file's progress until it is searchable ----------
  const form = document.getElementById("upload-form");
  if (form) {
    const drop = document.getElementById("drop");
    const input = document.getElementById("file-input");
    const list = document.getElementById("uploads");
    const queue = [];
    let running = 0;

    function item(file) {
      const li = document.createElement("li");
      li.className = "up";
      li.innerHTML =
        '<span class="up-name"></span><span class="status status-uploading" data-up-status>uploading</span>' +
        '<div class="up-steps">' + STEPS.map(function () { return '<span class="up-step"><span></span></span>'; }).join("") + "</div>" +
        '<div class="up-labels">' + STEPS.map(function (s) { return "<span>" + s + "</span>"; }).join("") + "</div>" +
        '<span class="up-detail"></span>';
      li.querySelector(".up-name").textContent = file.name;
      li.dataset.filename = file.name;
      list.appendChild(li);
      return li;
    }

    function show(li, status, detail, progress) {
      const badge = li.querySelector("[data-up-status]");
      badge.textContent = status === "completed" ? "searchable" : status;
      badge.className = "status status-" + status;
      li.dataset.status = status;
      li.classList.toggle("failed", status === "failed");
      li.classList.toggle("duplicate", status === "duplicate");
      const at = status === "duplicate" ? 3 : stepIndex(status);
      li.querySelectorAll(".up-step").forEach(function (step, i) {
        step.classList.toggle("done", i < at || (i === at && (status === "completed" || status === "failed" || status === "duplicate")));
        const final = status === "completed" || status === "failed" || status === "duplicate";
        step.classList.toggle("live", i === at && !final && !(status === "uploading" && progress !== undefined));
        const fill = step.querySelector("span");
        fill.style.width = i === 0 && status === "uploading" && progress !== undefined ? Math.round(progress * 100) + "%" : "";
      });
      const box = li.querySelector(".up-detail");
      box.textContent = "";
      if (typeof detail === "string") box.textContent = detail;
      else if (detail) box.appendChild(detail);
    }

    function link(href, text, before, after) {
      const span = document.createElement("span");
      span.appendChild(document.createTextNode(before || ""));
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      span.appendChild(a);
      span.appendChild(document.createTextNode(after || ""));
      return span;
    }

    function send(file, li) {
      return new Promise(function (resolve) {
        const data = new FormData();
        data.append("file", file, file.name);
        const context = form.elements.context.value.trim();
        if (context) data.append("context", context);
        const collection = form.elements.collection_id.value;
        if (collection) data.append("collection_id", collection);
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/api/v1/assets");
        xhr.setRequestHeader("Accept", "application/json");
        if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) show(li, "uploading", "Uploading " + Math.round((100 * e.loaded) / e.total) + " %", e.loaded / e.total);
        });
        xhr.addEventListener("load", function () {
          let body = null;
          try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
          resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, body: body });
        });
        xhr.addEventListener("error", function () { resolve({ ok: false, status: 0, body: null }); });
        xhr.send(data);
      });
    }

    function follow(li, id) {
      // Polling is not part of the upload slot: the next file goes up while this one processes.
      poll(id, function (asset, failure) {
        if (!asset) { show(li, "failed", "Status unavailable: " + errorText(failure)); return; }
        if (asset.status === "completed") {
          const n = asset.segment_count || (asset.segments || []).length;
          show(li, "completed", link("/assets/" + id, "Open", "Searchable: " + n + " segment" + (n === 1 ? "" : "s") + ". ", ""));
        } else if (asset.status === "failed") {
          show(li, "failed", (asset.reason_code || "failed") + ": " + (asset.reason_message || "no message"));
        } else {
          show(li, asset.status, asset.status === "queued" ? "Waiting for the pipeline…" : "Analysing shots, sound and text…");
        }
      });
    }

    async function upload(entry) {
      const file = entry.file, li = entry.li;
      show(li, "uploading", "Uploading…", 0);
      const result = await send(file, li);
      if (result.status === 409 && result.body && result.body.error && result.body.error.existing_id) {
        const existing = result.body.error.existing_id;
        const known = await api("/api/v1/assets/" + existing);
        const name = known.ok ? known.body.filename : existing;
        li.dataset.existing = existing;
        show(li, "duplicate", link("/assets/" + existing, name, "Already in the library as ", known.ok ? " (" + known.body.status + ")." : "."));
        return;
      }
      if (!result.ok) {
        show(li, "failed", result.status === 0 ? "The upload did not reach the server." : "Refused: " + errorText(result));
        return;
      }
      li.dataset.asset = result.body.id;
      show(li, result.body.status || "queued", "Uploaded; waiting for the pipeline…");
      follow(li, result.body.id);
    }

    function pump() {
      // Two transfers at a time: the bytes of one file go up while the next one starts.
      while (running < 2 && queue.length) {
        running += 1;
        upload(queue.shift()).finally(function () { running -= 1; pump(); });
      }
    }

    function add(files) {
      Array.from(files).forEach(function (f) {
        const li = item(f);
        show(li, "uploading", "Waiting to upload…", 0);
        queue.push({ file: f, li: li });
      });
      pump();
    }

    input.addEventListener("change", function () { add(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (name) {
      drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) { if (e.dataTransfer && e.dataTransfer.files.length) add(e.dataTransfer.files); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
  }

  // --- small things -----------------------------------------------------------------------
  document.querySelectorAll("[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
