// refvos serve: upload, type, segment. Talks to POST /api/segment (multipart).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const form = $("form"), fileInput = $("file"), exprInput = $("expression"), button = $("submit");
  const statusEl = $("status"), errorEl = $("error"), output = $("output");
  let previewUrl = null;

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.textContent = "";
    errorEl.hidden = true;
  }

  fileInput.addEventListener("change", () => {
    clearError();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    const f = fileInput.files[0];
    if (f && f.type.startsWith("image/")) {
      previewUrl = URL.createObjectURL(f);
      $("preview").src = previewUrl;
    }
  });

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }

  function boxText(box) {
    return box ? `x ${box[0]}–${box[2]}, y ${box[1]}–${box[3]}` : "empty";
  }

  function render(doc) {
    const r = doc.results[0];
    const body = $("stats").querySelector("tbody");
    body.replaceChildren();
    if (doc.kind === "image") {
      $("result").src = "data:image/png;base64," + r.overlay_png;
      $("mask").src = "data:image/png;base64," + r.mask_png;
      $("mask").parentElement.hidden = false;
      $("result-caption").textContent = `“${r.expression}”`;
      body.appendChild(row(["size", `${doc.width} × ${doc.height}`]));
      body.appendChild(row(["area", `${r.area} px (${(100 * r.area / (doc.width * doc.height)).toFixed(1)} %)`]));
      body.appendChild(row(["box", boxText(r.box)]));
      body.appendChild(row(["score", r.score.toFixed(3)]));
    } else {
      $("result").src = "data:image/gif;base64," + r.overlay_gif;
      $("mask").src = r.mask_pngs.length ? "data:image/png;base64," + r.mask_pngs[0] : "";
      $("mask").parentElement.hidden = !r.mask_pngs.length;
      $("result-caption").textContent = `“${r.expression}” (${doc.num_frames} frames)`;
      if (!previewUrl) $("preview").src = "data:image/gif;base64," + r.overlay_gif;
      const areas = r.frames.map((f) => f.area);
      body.appendChild(row(["size", `${doc.width} × ${doc.height}, ${doc.num_frames} frames`]));
      body.appendChild(row(["mean area", `${Math.round(areas.reduce((a, b) => a + b, 0) / areas.length)} px`]));
      body.appendChild(row(["first box", boxText(r.frames[0].box)]));
    }
    body.appendChild(row(["time", `${doc.elapsed_ms} ms`]));
    output.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const files = Array.from(fileInput.files);
    const expression = exprInput.value.trim();
    if (!files.length) return showError("Choose an image or a video first.");
    if (!expression) return showError("Type an expression that describes the object.");
    const data = new FormData();
    if (files.length === 1) {
      const f = files[0];
      const isVideo = f.type.startsWith("video/");
      data.append(isVideo ? "video" : "image", f, f.name);
    } else {
      for (const f of files) data.append("frames", f, f.name);
    }
    data.append("expression", expression);
    button.disabled = true;
    statusEl.textContent = "Segmenting…";
    try {
      const response = await fetch("/api/segment", { method: "POST", body: data });
      let doc;
      try { doc = await response.json(); } catch (e) { doc = { error: `server answered ${response.status}` }; }
      if (!response.ok) {
        showError(doc.error || `server answered ${response.status}`);
        statusEl.textContent = response.status === 503 ? "Busy, try again in a moment." : "";
        return;
      }
      render(doc);
      statusEl.textContent = "Done.";
    } catch (e) {
      showError(`Could not reach the server: ${e}`);
      statusEl.textContent = "";
    } finally {
      button.disabled = false;
    }
  });

  fetch("/api/info").then((r) => r.json()).then((info) => {
    const m = info.model || {};
    $("info").textContent = `model ${m.variant || "?"} · pictures scaled to ${info.max_size} px · ` +
      `up to ${Math.round(info.max_bytes / 1048576)} MiB, ${info.max_frames} frames`;
  }).catch(() => {});
})();
