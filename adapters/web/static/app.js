// avatarbot web chat: renders the bot's JSON messages; no framework, no build step.
"use strict";

(() => {
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const fileInput = document.getElementById("file");
  const drop = document.getElementById("drop");
  const presence = document.getElementById("presence");
  // The page's words in the user's language, from the server (a JSON data block).
  const ui = JSON.parse(document.getElementById("ui-text").textContent);

  const rendered = new Map(); // message id -> element
  const localPreviews = new Map(); // user image message id -> object URL
  let maxUpload = 20 * 1024 * 1024;
  let variants = 1;

  // ------------------------------------------------------------------ server calls

  async function post(path, body, headers = {}) {
    const isJson = !(body instanceof Blob);
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: isJson ? { "Content-Type": "application/json", ...headers } : headers,
      body: isJson ? JSON.stringify(body) : body,
    });
    const lang = response.headers.get("Content-Language");
    if (lang && lang !== document.documentElement.lang) {
      location.reload(); // /language changed it: the page's own words and direction too
      return null;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (data && Array.isArray(data.messages)) {
      data.messages.forEach(upsert);
    } else if (!response.ok) {
      localNotice(ui.failed);
    }
    return data;
  }

  function sendText(text) {
    text = text.trim();
    if (!text) return;
    post("/api/message", { text });
  }

  function sendFile(file) {
    if (!file) return;
    if (file.size > maxUpload) {
      localNotice(ui.too_big);
      return;
    }
    const preview = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    const pending = addPendingUpload(preview);
    post("/api/selfie", file, {
      "Content-Type": file.type || "application/octet-stream",
      "X-Filename": encodeURIComponent(file.name || "photo"),
    }).then((data) => {
      pending.remove();
      const sent = data && data.messages && data.messages.find((m) => m.from === "user");
      if (sent && preview) {
        localPreviews.set(sent.id, preview);
        upsert(sent);
      }
    }).catch(() => {
      pending.remove();
      localNotice(ui.upload_failed);
    });
  }

  function press(data) {
    post("/api/button", { data });
  }

  function choose(styleId) {
    post("/api/choose", { style_id: styleId, variants });
  }

  // ------------------------------------------------------------------ rendering

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function time(t) {
    const d = new Date(t * 1000);
    return d.toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  }

  function buttonsRow(buttons) {
    const row = el("div", "buttons");
    for (const b of buttons || []) {
      const btn = el("button", "chip", b.label);
      btn.type = "button";
      btn.dataset.action = b.action;
      btn.setAttribute("data-testid", `button-${b.action}`);
      btn.addEventListener("click", () => press(b.data));
      row.appendChild(btn);
    }
    return row;
  }

  function pickerBody(m) {
    const box = el("div", "picker");
    variants = m.variants || 1;
    const seg = el("div", "variants");
    seg.appendChild(el("span", "variants-label", ui.variants));
    for (const n of m.variant_choices || [1]) {
      const b = el("button", "seg" + (n === variants ? " on" : ""), String(n));
      b.type = "button";
      b.setAttribute("data-testid", `variants-${n}`);
      b.addEventListener("click", () => {
        variants = n;
        seg.querySelectorAll(".seg").forEach((x) => x.classList.toggle("on", x === b));
      });
      seg.appendChild(b);
    }
    box.appendChild(seg);
    const grid = el("div", "styles");
    for (const o of m.options || []) {
      const card = el("button", "style-card");
      card.type = "button";
      card.setAttribute("data-testid", `style-${o.style_id}`);
      card.dataset.style = o.style_id;
      if (o.preview) {
        const img = el("img");
        img.src = o.preview;
        img.alt = o.label;
        img.width = 112;
        img.height = 112;
        img.loading = "lazy";
        card.appendChild(img);
      } else {
        card.appendChild(el("div", "no-preview", o.label.split(" ")[0]));
      }
      card.appendChild(el("div", "style-label", o.label));
      card.appendChild(el("div", "style-desc", o.description));
      card.addEventListener("click", () => choose(o.style_id));
      grid.appendChild(card);
    }
    box.appendChild(grid);
    return box;
  }

  function queuedBody(m) {
    const box = el("div", "progress");
    const bar = el("div", "bar");
    const fill = el("div", "fill");
    let fraction = m.progress || 0;
    if (m.status === "queued") fraction = 0.04;
    if (m.status === "finished") fraction = 1;
    fill.style.width = `${Math.max(4, Math.round(fraction * 100))}%`;
    bar.appendChild(fill);
    box.appendChild(bar);
    box.classList.add(`is-${m.status}`);
    return box;
  }

  function avatarBody(m) {
    const box = el("div", "avatars" + (m.images.length > 1 ? " many" : ""));
    for (const image of m.images) {
      const a = el("a", "avatar-link");
      a.href = image.url;
      a.target = "_blank";
      a.rel = "noopener";
      const img = el("img", "avatar-img");
      img.src = image.url;
      img.alt = ui.avatar_alt;
      img.width = image.width;
      img.height = image.height;
      img.setAttribute("data-testid", "avatar-image");
      a.appendChild(img);
      const cell = el("figure", "avatar");
      cell.appendChild(a);
      if (image.likeness) {  // "72%" or "no face": how much it looks like the selfie
        const note = el("figcaption", "likeness", ui.likeness.replace("{score}", image.likeness));
        note.title = ui.likeness_hint;
        note.setAttribute("data-testid", "avatar-likeness");
        cell.appendChild(note);
      }
      box.appendChild(cell);
    }
    return box;
  }

  function fileBody(m) {
    const a = el("a", "file");
    a.href = m.url;
    a.download = m.filename;
    a.setAttribute("data-testid", "file-link");
    a.appendChild(el("span", "file-icon", "📥"));
    const meta = el("span", "file-meta");
    meta.appendChild(el("span", "file-name", m.filename));
    meta.appendChild(el("span", "file-size", `${Math.round(m.size / 1024)} KB · ${m.mime}`));
    a.appendChild(meta);
    return a;
  }

  function build(m) {
    const row = el("div", `msg ${m.from} kind-${m.kind}` + (m.ephemeral ? " ephemeral" : ""));
    row.dataset.id = m.id;
    row.setAttribute("data-testid", `msg-${m.from}-${m.kind}`);
    const bubble = el("div", "bubble");
    if (m.kind === "image" && m.from === "user") {
      const url = localPreviews.get(m.id);
      if (url) {
        const img = el("img", "sent-photo");
        img.src = url;
        img.alt = ui.your_photo;
        bubble.appendChild(img);
      } else {
        bubble.appendChild(el("div", "text", m.text));
      }
    } else if (m.kind !== "file") {
      bubble.appendChild(el("div", "text", m.text));
    }
    if (m.kind === "picker") bubble.appendChild(pickerBody(m));
    if (m.kind === "queued") bubble.appendChild(queuedBody(m));
    if (m.kind === "avatar") bubble.appendChild(avatarBody(m));
    if (m.kind === "file") {
      bubble.appendChild(fileBody(m));
      if (m.text && m.text !== m.filename) bubble.appendChild(el("div", "caption", m.text));
    }
    bubble.appendChild(el("div", "time", time(m.t)));
    row.appendChild(bubble);
    if (m.buttons && m.buttons.length) row.appendChild(buttonsRow(m.buttons));
    return row;
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function upsert(m) {
    const stick = nearBottom();
    const node = build(m);
    const old = rendered.get(m.id);
    if (old) {
      old.replaceWith(node);
    } else {
      log.appendChild(node);
    }
    rendered.set(m.id, node);
    if (stick || !old) scrollDown();
    node.querySelectorAll("img").forEach((img) => img.addEventListener("load", () => {
      if (stick || !old) scrollDown();
    }, { once: true }));
  }

  function localNotice(text) {
    upsert({
      id: `local-${Date.now()}-${Math.random().toString(16).slice(2)}`,
      from: "bot",
      kind: "failure",
      text,
      buttons: [],
      t: Date.now() / 1000,
    });
  }

  function addPendingUpload(preview) {
    const row = el("div", "msg user kind-image pending");
    const bubble = el("div", "bubble");
    if (preview) {
      const img = el("img", "sent-photo");
      img.src = preview;
      img.alt = ui.your_photo;
      bubble.appendChild(img);
    }
    bubble.appendChild(el("div", "time", ui.sending));
    row.appendChild(bubble);
    log.appendChild(row);
    scrollDown();
    return row;
  }

  // ------------------------------------------------------------------ live updates

  let retry = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/ws`);
    ws.addEventListener("open", () => {
      retry = 500;
      presence.textContent = ui.online;
      presence.classList.add("online");
    });
    ws.addEventListener("message", (event) => {
      try {
        const data = JSON.parse(event.data);
        if (data.type === "message") upsert(data.message);
      } catch (_) {
        /* ignore a malformed push */
      }
    });
    ws.addEventListener("close", () => {
      presence.textContent = ui.reconnecting;
      presence.classList.remove("online");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  // ------------------------------------------------------------------ wiring

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendText(input.value);
    input.value = "";
    input.focus();
  });

  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    sendFile(file);
  });

  let dragDepth = 0;
  window.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    dragDepth += 1;
    drop.hidden = false;
  });
  window.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) drop.hidden = true;
  });
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    drop.hidden = true;
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    sendFile(file);
  });

  async function start() {
    const response = await fetch("/api/history", { credentials: "same-origin" });
    const data = await response.json();
    maxUpload = data.max_upload_bytes || maxUpload;
    (data.messages || []).forEach(upsert);
    connect();
    if (!data.messages || data.messages.length === 0) sendText("/start");
    document.body.dataset.ready = "1";
    input.focus();
  }

  start();
})();
