// Eyepic "For you": the shopper's recommendations, each with its reason.
// The shopper is the one in localStorage "eyepic.session" ({"user_id", "token"}, made by
// POST /api/v1/session); without one the page shows the cold-start list and says it is not
// personal yet. The section's data-state (loading|ready|error) and data-personal let tests wait.
"use strict";

(function () {
  const section = document.getElementById("for-you");
  if (!section) return;
  const SESSION_KEY = "eyepic.session";
  const GUEST = "guest"; // no session yet: any unknown id gets the cold start
  const urlTemplate = document.body.dataset.recommendationsUrl;
  const k = Number(section.dataset.k) || 12;
  const note = document.getElementById("for-you-note");
  const grid = document.getElementById("for-you-items");
  let seq = 0;

  function session() {
    try {
      const value = JSON.parse(window.localStorage.getItem(SESSION_KEY) || "null");
      return value && typeof value.user_id === "string" && value.user_id ? value : null;
    } catch (err) {
      return null; // unreadable or blocked storage: a guest
    }
  }

  function text(tag, className, value) {
    const node = document.createElement(tag);
    node.className = className;
    node.textContent = value;
    return node;
  }

  function card(item) {
    const node = document.createElement("article");
    node.className = "result recommendation";
    node.dataset.id = item.id;
    node.dataset.type = item.type;
    node.dataset.color = item.color;
    if (item.cluster !== null && item.cluster !== undefined) node.dataset.cluster = String(item.cluster);
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = item.image_url;
    img.alt = item.title || item.type;
    thumb.append(img);
    const bodyNode = document.createElement("div");
    bodyNode.className = "result-body";
    bodyNode.append(text("h3", "title", item.title || item.type), text("p", "attrs", `${item.type} · ${item.color}`),
      text("p", "reason", item.reason));
    node.append(thumb, bodyNode);
    return node;
  }

  async function load() {
    const mine = ++seq;
    const current = session();
    section.dataset.state = "loading";
    const url = `${urlTemplate.replace("__USER__", encodeURIComponent(current ? current.user_id : GUEST))}?k=${k}`;
    try {
      let response;
      try {
        response = await fetch(url, { headers: { Accept: "application/json" } });
      } catch (err) {
        throw { detail: "Can't reach Eyepic; recommendations will come back when it can." };
      }
      const data = await response.json();
      if (!response.ok) throw data;
      if (mine !== seq) return;
      section.dataset.personal = String(Boolean(data.personal));
      note.hidden = false;
      note.classList.toggle("cold-start", !data.personal);
      note.textContent = data.personal ? "Picked from what you liked and disliked."
        : `Not personal yet: ${data.note.replace(/^not personal yet:\s*/i, "")}`;
      grid.replaceChildren(...data.items.map(card));
      section.dataset.state = "ready";
    } catch (problem) {
      if (mine !== seq) return;
      note.hidden = false;
      note.textContent = (problem && problem.detail) || "Recommendations are not available right now.";
      section.dataset.state = "error";
    }
  }

  // Another tab signs in or resets the taste; the like/dislike buttons may dispatch this event.
  window.addEventListener("storage", (event) => { if (event.key === SESSION_KEY) load(); });
  document.addEventListener("eyepic:taste-changed", load);
  load();
})();
