// Eyepic search page: plain JS, no build step, no network beyond this server.
// State lives in one object; every change re-renders from it. The body's
// data-state (starting|idle|loading|ready|error) and data-requests (a counter
// of finished requests) let tests wait for the page without guessing.
"use strict";

(function () {
  const body = document.body;
  const $ = (sel) => document.querySelector(sel);
  const config = {
    searchUrl: body.dataset.searchUrl,
    lookUrl: body.dataset.lookUrl,
    taxonomyUrl: body.dataset.taxonomyUrl,
    maxUpload: Number(body.dataset.maxUpload) || 10 * 1024 * 1024,
    defaultK: Number(body.dataset.defaultK) || 24,
    sessionUrl: body.dataset.sessionUrl,
    usersUrl: body.dataset.usersUrl,
  };
  // The shopper's anonymous session, shared with the "For you" view: keep this key and shape.
  const SESSION_KEY = "eyepic.session"; // JSON {"user_id": ..., "token": ...}
  const DOWNSCALE_SIDE = 1600; // the server never looks at more than this
  const MIN_BOX = 0.03; // a drawn box smaller than 3% of the photo is a slip
  const LOOK_K = 6; // items per complementary group in a "Complete the look" row

  const state = {
    taxonomy: null,
    names: { group: {}, type: {}, color: {} },
    file: null,
    garments: [], // from the last whole-photo search
    userGarment: null, // from a box the user drew
    userBox: null,
    selected: 0, // index into garments, or "user"
    filters: { group: new Set(), type: new Set(), color: new Set() },
    similar: null, // {item, items} while showing "more like this"
    looks: {}, // garment key ("0", "1"..., "user") -> its complementary groups
    seq: { main: 0, look: 0, userLook: 0 }, // newest request number per channel; older answers are dropped
    pending: 0,
    done: 0,
    drawMode: false,
    taste: { liked: new Set(), disliked: new Set() }, // item ids, as the events store has them
    tasteDone: 0, // finished taste requests (body data-taste-requests, for tests)
  };

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function bilingual(kind, name) {
    const entry = state.names[kind][name] || { en: name, ko: "" };
    const span = el("span", { class: "label" }, el("span", { class: "en", text: entry.en }));
    if (entry.ko) span.append(el("span", { class: "ko", lang: "ko", text: entry.ko }));
    return span;
  }

  function english(kind, name) {
    return (state.names[kind][name] || { en: name }).en;
  }

  function setState(name) {
    body.dataset.state = name;
  }

  // One place that talks to the API: JSON on success, a problem object otherwise.
  // A "look" request has its own channel, so a filter change does not drop it (and vice versa).
  async function call(url, options, channel = "main") {
    const seq = ++state.seq[channel];
    state.pending += 1;
    setLoading(true);
    try {
      let response;
      try {
        response = await fetch(url, options);
      } catch (err) {
        throw { title: "Can't reach Eyepic", detail: "Check your connection and try again." };
      }
      let data = null;
      const type = response.headers.get("Content-Type") || "";
      if (type.includes("json")) data = await response.json();
      if (!response.ok) {
        throw data && data.title ? data : { title: `Error ${response.status}`, detail: response.statusText };
      }
      return { data, stale: seq !== state.seq[channel] };
    } finally {
      state.pending -= 1;
      state.done += 1;
      setLoading(state.pending > 0);
      body.dataset.requests = String(state.done);
    }
  }

  function setLoading(on) {
    $("#loading").hidden = !on;
    $("#app").setAttribute("aria-busy", on ? "true" : "false");
    if (on) setState("loading");
  }

  function showError(problem) {
    const box = $("#error");
    box.replaceChildren(el("strong", { text: problem.title || "Something went wrong" }));
    if (problem.detail) box.append(el("span", { class: "detail", text: " " + problem.detail }));
    if (problem.status === 503 || problem.status === 413) {
      const hint = problem.status === 503 ? "The search model is starting; try again in a moment." : "Try a smaller photo.";
      box.append(el("span", { class: "hint", text: " " + hint }));
    }
    box.hidden = false;
    setState("error");
  }

  function clearError() {
    $("#error").hidden = true;
    $("#error").replaceChildren();
  }

  // ------------------------------------------------------------- taxonomy
  async function loadTaxonomy() {
    try {
      const { data } = await call(config.taxonomyUrl);
      state.taxonomy = data;
      for (const kind of ["group", "type", "color"]) {
        for (const row of data[kind + "s"]) state.names[kind][row.name] = row;
      }
      setState("idle");
    } catch (problem) {
      showError(problem);
    }
  }

  // ---------------------------------------------------------------- upload
  async function prepare(file) {
    // Phone photos can be large or HEIC: let the browser decode and shrink them.
    const heic = /heic|heif/i.test(file.type);
    if (file.size <= config.maxUpload / 2 && !heic) return file;
    try {
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(1, DOWNSCALE_SIDE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
      return blob || file;
    } catch (err) {
      return file; // not decodable here: let the server say why
    }
  }

  async function choose(file) {
    if (!file) return;
    clearError();
    const upload = await prepare(file);
    state.file = upload;
    state.garments = [];
    state.userGarment = null;
    state.userBox = null;
    state.selected = 0;
    state.similar = null;
    state.looks = {};
    const photo = $("#photo");
    if (photo.dataset.url) URL.revokeObjectURL(photo.dataset.url);
    photo.dataset.url = URL.createObjectURL(upload);
    photo.src = photo.dataset.url;
    $("#workspace").hidden = false;
    $("#dropzone").classList.add("compact");
    render();
    await search();
  }

  function formData(extra) {
    const form = new FormData();
    form.append("image", state.file, state.file.name || "photo.jpg");
    form.append("k", String(config.defaultK));
    for (const kind of ["group", "type", "color"]) {
      for (const value of state.filters[kind]) form.append(kind, value);
    }
    for (const [key, value] of Object.entries(extra || {})) form.append(key, value);
    return form;
  }

  // ---------------------------------------------------------------- search
  async function search() {
    if (!state.file) return;
    clearError();
    try {
      const { data, stale } = await call(config.searchUrl, { method: "POST", body: formData() });
      if (stale) return;
      state.garments = data.garments;
      state.detectorUsed = data.detector_used;
      if (state.userBox) {
        const user = await call(config.searchUrl, { method: "POST", body: formData({ box: state.userBox.join(",") }) });
        if (user.stale) return;
        state.userGarment = user.data.garments[0];
      }
      if (state.selected !== "user" && !(state.selected < state.garments.length)) state.selected = 0;
      setState("ready");
      render();
      if (!Object.keys(state.looks).some((key) => key !== "user")) loadLooks();
    } catch (problem) {
      if (problem instanceof Error) throw problem;
      if (!state.garments.length) {
        // nothing to show for this upload (e.g. not a photo): back to the upload view
        state.file = null;
        $("#workspace").hidden = true;
        $("#dropzone").classList.remove("compact");
      }
      showError(problem);
      render();
    }
  }

  async function searchBox(box) {
    state.userBox = box;
    state.selected = "user";
    state.similar = null;
    clearError();
    try {
      const { data, stale } = await call(config.searchUrl, { method: "POST", body: formData({ box: box.join(",") }) });
      if (stale) return;
      state.userGarment = data.garments[0];
      delete state.looks.user;
      setState("ready");
      render();
      loadLooks({ box: box.join(",") }, "user");
    } catch (problem) {
      if (problem instanceof Error) throw problem;
      state.userBox = null;
      state.selected = 0;
      showError(problem);
      render();
    }
  }

  async function moreLike(item) {
    clearError();
    const params = new URLSearchParams({ k: String(config.defaultK) });
    for (const kind of ["group", "type", "color"]) {
      for (const value of state.filters[kind]) params.append(kind, value);
    }
    try {
      const { data, stale } = await call(`${item.similar_url}?${params}`);
      if (stale) return;
      state.similar = data;
      setState("ready");
      render();
      $("#results-title").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (problem) {
      if (problem instanceof Error) throw problem;
      showError(problem);
    }
  }

  // "Complete the look" for every garment of the photo in one request (or for the user's box).
  // A failure only leaves the rows out: the search results stay.
  async function loadLooks(extra, key) {
    if (!state.file || !config.lookUrl) return;
    const form = new FormData();
    form.append("image", state.file, state.file.name || "photo.jpg");
    form.append("k", String(LOOK_K));
    const shopper = storedSession(); // the look is personalised for this shopper once the taste profile is wired
    if (shopper && shopper.user_id) form.append("user", shopper.user_id);
    for (const [name, value] of Object.entries(extra || {})) form.append(name, value);
    const file = state.file;
    try {
      const { data } = await call(config.lookUrl, { method: "POST", body: form }, key === "user" ? "userLook" : "look");
      if (file !== state.file) return;
      for (const g of data.garments) state.looks[key || String(g.index)] = g.groups;
    } catch (problem) {
      if (problem instanceof Error) throw problem;
    }
    if (state.pending === 0 && body.dataset.state !== "error") setState("ready");
    renderLook();
  }

  function rerun() {
    if (state.similar) return moreLike(state.similar.item);
    return search();
  }

  // ---------------------------------------------------------------- render
  function current() {
    return state.selected === "user" ? state.userGarment : state.garments[state.selected];
  }

  function render() {
    renderBoxes();
    renderGarments();
    renderChips();
    renderResults();
    renderLook();
  }

  function describe(g) {
    return `${english("type", g.type)} (${english("group", g.group)}, ${english("color", g.color)})`;
  }

  function boxButton(g, key, extraClass) {
    const [x0, y0, x1, y1] = g.box;
    const button = el(
      "button",
      {
        type: "button",
        class: `garment-box ${extraClass || ""}${key === String(state.selected) ? " selected" : ""}${g.detected || key === "user" ? "" : " whole"}`,
        "data-index": key,
        "aria-label": `Show results for the ${describe(g)}`,
        "aria-pressed": key === String(state.selected) ? "true" : "false",
        style: { left: `${x0 * 100}%`, top: `${y0 * 100}%`, width: `${(x1 - x0) * 100}%`, height: `${(y1 - y0) * 100}%` },
      },
      el("span", { class: "box-label", text: english("type", g.type) }),
    );
    return button;
  }

  function renderBoxes() {
    const layer = $("#boxes");
    layer.replaceChildren();
    state.garments.forEach((g, i) => layer.append(boxButton(g, String(i))));
    if (state.userGarment) layer.append(boxButton(state.userGarment, "user", "user"));
    const note = $("#photo-note");
    if (!state.garments.length) note.textContent = "";
    else if (state.drawMode) note.textContent = "Drag over the garment you mean.";
    else if (state.detectorUsed) note.textContent = `${state.garments.length} garment${state.garments.length > 1 ? "s" : ""} found. Tap one to see its matches.`;
    else note.textContent = "Searching the whole photo. Draw a box to pick one garment.";
  }

  function renderGarments() {
    const list = $("#garments");
    list.replaceChildren();
    const entries = state.garments.map((g, i) => [String(i), g]);
    if (state.userGarment) entries.push(["user", state.userGarment]);
    for (const [key, g] of entries) {
      const color = state.names.color[g.color];
      const selected = key === String(state.selected);
      const button = el(
        "button",
        { type: "button", class: "garment-tab" + (selected ? " selected" : ""), "data-index": key, "aria-pressed": selected ? "true" : "false" },
        el("span", { class: "swatch", style: { background: color ? color.hex : "#ccc" }, "aria-hidden": "true" }),
        bilingual("type", g.type),
        el("span", { class: "sub" }, bilingual("group", g.group), document.createTextNode(" · "), bilingual("color", g.color)),
      );
      if (key === "user") button.append(el("span", { class: "tag", text: "your box" }));
      list.append(el("li", {}, button));
    }
  }

  function renderChips() {
    const tax = state.taxonomy;
    if (!tax) return;
    const g = current();
    const groupsShown = state.filters.group.size ? state.filters.group : new Set(g ? [g.group] : []);
    const rows = {
      group: tax.groups.filter((r) => r.count > 0 || state.filters.group.has(r.name)),
      type: tax.types.filter((r) => (r.count > 0 && (!groupsShown.size || groupsShown.has(r.group))) || state.filters.type.has(r.name)),
      color: tax.colors.filter((r) => r.count > 0 || state.filters.color.has(r.name)),
    };
    for (const [kind, entries] of Object.entries(rows)) {
      const row = document.querySelector(`.chip-row[data-facet="${kind}"]`);
      row.replaceChildren();
      for (const entry of entries) {
        const on = state.filters[kind].has(entry.name);
        const chip = el(
          "button",
          { type: "button", class: "chip" + (on ? " on" : ""), "data-facet": kind, "data-value": entry.name, "aria-pressed": on ? "true" : "false", title: `${entry.count} in the catalog` },
          kind === "color" ? el("span", { class: "swatch", style: { background: entry.hex }, "aria-hidden": "true" }) : null,
          bilingual(kind, entry.name),
        );
        row.append(chip);
      }
    }
  }

  function renderResults() {
    const grid = $("#results");
    const title = $("#results-title");
    let items = [];
    if (state.similar) {
      items = state.similar.items;
      title.textContent = `More like “${state.similar.item.title || english("type", state.similar.item.type)}”`;
    } else {
      const g = current();
      items = g ? g.items : [];
      title.textContent = g ? `Similar to the ${describe(g)}` : "";
    }
    $("#back").hidden = !state.similar;
    $("#empty").hidden = !(state.file && current() && items.length === 0 && body.dataset.state !== "loading");
    grid.replaceChildren(...items.filter((item) => !state.taste.disliked.has(item.id)).map(card));
  }

  function renderLook() {
    const section = $("#look");
    const key = String(state.selected);
    const groups = state.similar ? null : state.looks[key];
    const rows = (groups || []).filter((g) => g.items.length);
    section.hidden = !rows.length;
    section.dataset.garment = key;
    const g = current();
    $("#look-title").textContent = g ? `Complete the look: goes with the ${english("type", g.type)}` : "Complete the look";
    $("#look-groups").replaceChildren(
      ...rows.map((row) =>
        el(
          "div",
          { class: "look-row", "data-group": row.group },
          el("h3", {}, bilingual("group", row.group)),
          el("div", { class: "look-items" }, ...row.items.map(lookCard)),
        ),
      ),
    );
  }

  function lookCard(item) {
    const img = el("img", { src: item.image_url, alt: item.title || english("type", item.type), loading: "lazy" });
    const node = el(
      "article",
      { class: "look-card", "data-id": item.id, "data-group": item.group, "data-color": item.color },
      el("div", { class: "thumb" }, img),
      el("p", { class: "title", text: item.title || english("type", item.type) }),
      el("p", { class: "reason", text: item.reason }),
    );
    const more = el("button", { class: "more-like-this", type: "button", text: "More like this" });
    more.addEventListener("click", () => moreLike(item));
    node.append(more);
    return node;
  }

  function card(item) {
    const node = $("#result-template").content.firstElementChild.cloneNode(true);
    node.dataset.id = item.id;
    node.dataset.group = item.group;
    node.dataset.type = item.type;
    node.dataset.color = item.color;
    const img = node.querySelector("img");
    img.src = item.image_url;
    img.alt = item.title || english("type", item.type);
    node.querySelector(".title").textContent = item.title || english("type", item.type);
    node.querySelector(".attrs").replaceChildren(bilingual("type", item.type), document.createTextNode(" · "), bilingual("color", item.color));
    node.querySelector(".score").textContent = item.score !== undefined ? `${Math.round(Math.max(0, item.score) * 100)}% similar` : "";
    node.querySelector(".more-like-this").addEventListener("click", () => moreLike(item));
    const like = node.querySelector(".like");
    like.setAttribute("aria-pressed", String(state.taste.liked.has(item.id)));
    like.addEventListener("click", () => react(node, item, "like"));
    node.querySelector(".dislike").addEventListener("click", () => react(node, item, "dislike"));
    return node;
  }

  // ----------------------------------------------------------------- taste
  // Likes and dislikes go to /api/v1/users/<id>/events with the session's token; they never
  // touch the search's request counter or error box, so a failed like cannot spoil a search.
  function storedSession() {
    try {
      const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
      if (s && typeof s.user_id === "string" && typeof s.token === "string") return s;
    } catch (err) {
      // unreadable: make a new one
    }
    return null;
  }

  let pendingSession = null;
  function session() {
    const stored = storedSession();
    if (stored) return Promise.resolve(stored);
    if (!pendingSession) {
      pendingSession = tasteFetch(config.sessionUrl, { method: "POST" })
        .then((data) => {
          const s = { user_id: data.user_id, token: data.token };
          localStorage.setItem(SESSION_KEY, JSON.stringify(s));
          return s;
        })
        .finally(() => { pendingSession = null; });
    }
    return pendingSession;
  }

  async function tasteFetch(url, options) {
    try {
      let response;
      try {
        response = await fetch(url, options);
      } catch (err) {
        throw { title: "Can't reach Eyepic", detail: "Check your connection and try again." };
      }
      const type = response.headers.get("Content-Type") || "";
      const data = type.includes("json") ? await response.json() : null;
      if (!response.ok) throw data && data.title ? data : { title: `Error ${response.status}`, status: response.status };
      return data;
    } finally {
      state.tasteDone += 1;
      body.dataset.tasteRequests = String(state.tasteDone);
    }
  }

  // One write for the session's user; a token the server no longer knows (403) gets a new session once.
  async function asShopper(method, suffix, payload) {
    for (let attempt = 0; ; attempt++) {
      const s = await session();
      const headers = { Authorization: `Bearer ${s.token}` };
      if (payload) headers["Content-Type"] = "application/json";
      try {
        return await tasteFetch(config.usersUrl + encodeURIComponent(s.user_id) + suffix,
          { method, headers, body: payload ? JSON.stringify(payload) : undefined });
      } catch (problem) {
        if (problem.status !== 403 || attempt > 0) throw problem;
        localStorage.removeItem(SESSION_KEY);
      }
    }
  }

  function tasteNote(text) {
    $("#taste-note").textContent = text;
  }

  async function react(node, item, kind) {
    const set = kind === "like" ? state.taste.liked : state.taste.disliked;
    if (set.has(item.id)) return; // already said; there is no "unlike" event
    const button = node.querySelector("." + kind);
    set.add(item.id);
    button.setAttribute("aria-pressed", "true");
    if (kind === "dislike") node.hidden = true; // gone at once; the event follows
    const payload = { kind, item_id: item.id };
    if (window.crypto && crypto.randomUUID) payload.event_id = crypto.randomUUID(); // safe to retry
    try {
      await asShopper("POST", "/events", payload);
      tasteNote(kind === "like" ? "Liked: we'll remember." : "Hidden: we'll show fewer like it.");
    } catch (problem) {
      set.delete(item.id);
      button.setAttribute("aria-pressed", "false");
      node.hidden = false;
      tasteNote(`${problem.title || "Not saved"}${problem.detail ? ": " + problem.detail : ""}`);
    }
  }

  async function resetTaste() {
    try {
      const data = await asShopper("DELETE", "");
      state.taste.liked.clear();
      state.taste.disliked.clear();
      tasteNote(`Your taste was reset (${data.forgotten} event${data.forgotten === 1 ? "" : "s"} forgotten).`);
      renderResults();
    } catch (problem) {
      tasteNote(`${problem.title || "Not reset"}${problem.detail ? ": " + problem.detail : ""}`);
    }
  }

  // A returning shopper sees what they liked (and not what they hid): latest event per item wins.
  async function loadTaste(s) {
    try {
      const data = await tasteFetch(config.usersUrl + encodeURIComponent(s.user_id) + "/events");
      for (const event of data.events) {
        if (event.kind === "like") { state.taste.liked.add(event.item_id); state.taste.disliked.delete(event.item_id); }
        if (event.kind === "dislike") { state.taste.disliked.add(event.item_id); state.taste.liked.delete(event.item_id); }
      }
      if (state.garments.length || state.similar) renderResults(); // a search that answered first
    } catch (problem) {
      // the search works without it
    }
  }

  // ---------------------------------------------------------------- events
  function select(key) {
    state.selected = key === "user" ? "user" : Number(key);
    state.similar = null;
    render();
  }

  function onChip(event) {
    const chip = event.target.closest(".chip");
    if (!chip) return;
    const set = state.filters[chip.dataset.facet];
    if (set.has(chip.dataset.value)) set.delete(chip.dataset.value);
    else set.add(chip.dataset.value);
    if (chip.dataset.facet === "group") {
      // a type outside every chosen group would make the result empty
      for (const type of [...state.filters.type]) {
        const group = (state.names.type[type] || {}).group;
        if (state.filters.group.size && !state.filters.group.has(group)) state.filters.type.delete(type);
      }
    }
    renderChips();
    rerun();
  }

  function stagePoint(event) {
    const rect = $("#photo").getBoundingClientRect();
    return [
      Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)),
      Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height)),
    ];
  }

  function setupDrawing() {
    const stage = $("#stage");
    const drawing = $("#drawing");
    let start = null;
    const toBox = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
    stage.addEventListener("pointerdown", (event) => {
      if (!state.drawMode || !state.file) return;
      event.preventDefault();
      stage.setPointerCapture(event.pointerId);
      start = stagePoint(event);
    });
    stage.addEventListener("pointermove", (event) => {
      if (!start) return;
      const [x0, y0, x1, y1] = toBox(start, stagePoint(event));
      Object.assign(drawing.style, { left: `${x0 * 100}%`, top: `${y0 * 100}%`, width: `${(x1 - x0) * 100}%`, height: `${(y1 - y0) * 100}%` });
      drawing.hidden = false;
    });
    const finish = (event) => {
      if (!start) return;
      const box = toBox(start, stagePoint(event)).map((v) => Number(v.toFixed(4)));
      start = null;
      drawing.hidden = true;
      setDrawMode(false);
      if (box[2] - box[0] >= MIN_BOX && box[3] - box[1] >= MIN_BOX) searchBox(box);
    };
    stage.addEventListener("pointerup", finish);
    stage.addEventListener("pointercancel", () => {
      start = null;
      drawing.hidden = true;
    });
  }

  function setDrawMode(on) {
    state.drawMode = on;
    $("#draw").setAttribute("aria-pressed", on ? "true" : "false");
    $("#stage").classList.toggle("drawing-mode", on);
    renderBoxes();
  }

  function setupDrop() {
    const zone = document.documentElement;
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      $("#dropzone").classList.add("over");
    });
    zone.addEventListener("dragleave", (event) => {
      if (event.target === zone || !event.relatedTarget) $("#dropzone").classList.remove("over");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      $("#dropzone").classList.remove("over");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) choose(file);
    });
  }

  function init() {
    for (const id of ["#file", "#camera"]) {
      $(id).addEventListener("change", (event) => {
        choose(event.target.files[0]);
        event.target.value = ""; // choosing the same photo again still fires
      });
    }
    $("#boxes").addEventListener("click", (event) => {
      const box = event.target.closest(".garment-box");
      if (box && !state.drawMode) select(box.dataset.index);
    });
    $("#garments").addEventListener("click", (event) => {
      const tab = event.target.closest(".garment-tab");
      if (tab) select(tab.dataset.index);
    });
    $("#filters").addEventListener("click", onChip);
    $("#back").addEventListener("click", () => {
      state.similar = null;
      render();
    });
    $("#draw").addEventListener("click", () => setDrawMode(!state.drawMode));
    $("#reset-taste").addEventListener("click", resetTaste);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && state.drawMode) setDrawMode(false);
    });
    setupDrawing();
    setupDrop();
    loadTaxonomy();
    // the session is made once per browser, at the first visit, so the "For you" view finds it too
    session().then(loadTaste, () => tasteNote(""));
  }

  init();
})();
