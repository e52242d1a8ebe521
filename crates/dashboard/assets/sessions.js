// Sessions: the list a page at a time from the API with server-side filters (live
// updates for the rows shown) and the start form.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const PER_PAGE = 50;

  AOF.page("sessions", () => {
    // A page at a time from the API (keyset: `next_cursor`), filtered by the server;
    // the feed only updates the rows on screen and counts new matching sessions.
    const form = $("filters");
    const params = new URLSearchParams(location.search);
    const fields = { status: $("f-status"), agent: $("f-agent"), parent: $("f-parent"), q: $("f-q") };
    for (const [k, el] of Object.entries(fields)) el.value = params.get(k) || "";
    const pg = AOF.cursorPages();
    pg.cursor = params.get("cursor") || null;
    let shown = new Map();
    let fresh = 0;
    let seq = 0;

    function filters() {
      const q = new URLSearchParams();
      for (const [k, el] of Object.entries(fields)) if (el.value.trim()) q.set(k, el.value.trim());
      return q;
    }
    /// What the server's filter would say of a session the feed announced (for the count).
    function matches(s) {
      const f = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value.trim()]));
      if (f.status && s.status !== f.status) return false;
      if (f.agent && s.agent_name !== f.agent) return false;
      if (f.parent && s.parent_session_id !== f.parent) return false;
      if (f.q) {
        const hay = [s.session_id, s.agent_name, s.hostname, s.project_dir].join(" ").toLowerCase();
        if (!hay.includes(f.q.toLowerCase())) return false;
      }
      return true;
    }

    function row(s) {
      return h("tr", { "data-session": s.session_id },
        h("td", { class: "id" }, AOF.sessionLink(s.session_id)),
        h("td", {}, AOF.badge(s.status)),
        h("td", {}, s.agent_name || "—"),
        h("td", { class: "id" }, s.parent_session_id ? AOF.sessionLink(s.parent_session_id) : "—"),
        h("td", {}, AOF.time(s.created_at)),
        h("td", {}, s.hostname || "—"));
    }

    function renderNew() {
      const box = $("new-sessions");
      box.hidden = fresh === 0;
      replace(box, fresh ? h("button", { class: "btn", type: "button", id: "show-new", onclick: () => first() },
        `${fresh} new session${fresh === 1 ? "" : "s"} — show`) : []);
    }

    function render(sessions, filtered) {
      const box = $("sessions");
      if (!sessions.length) {
        replace(box, filtered || pg.cursor ? AOF.empty(pg.cursor ? "No more sessions." : "No session matches these filters. Clear a filter to see more.")
          : AOF.empty("No sessions yet.", AOF.link("/ui/sessions/new", "Start a session")));
      } else {
        replace(box, AOF.table("Sessions", ["Session", "Status", "Agent", "Parent", "Created", "Host"], sessions.map(row)));
      }
      AOF.pager(pg, load, sessions.length);
      renderNew();
      if (!performance.getEntriesByName("aof:sessions-rows").length && sessions.length) performance.mark("aof:sessions-rows");
    }

    async function load() {
      const mine = ++seq;
      const q = filters();
      if (pg.cursor) q.set("cursor", pg.cursor);
      history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
      q.set("limit", String(PER_PAGE));
      let out;
      try {
        out = await api("GET", "/sessions?" + q);
      } catch (e) {
        if (mine === seq) AOF.fail($("sessions"), e);
        return;
      }
      if (!feed) follow(out.feed_head);
      if (mine !== seq) return; // a newer filter or page was asked for meanwhile
      pg.next = out.next_cursor || null;
      shown = new Map(out.sessions.map((s) => [s.session_id, s]));
      if (!pg.cursor) fresh = 0;
      render(out.sessions, filters().toString() !== "");
    }
    function first() { pg.cursor = null; pg.trail.length = 0; fresh = 0; load(); }

    let debounce = null;
    form.addEventListener("input", (e) => {
      clearTimeout(debounce);
      // Typing is debounced (one request per pause); a select applies at once.
      debounce = setTimeout(first, e.target.tagName === "SELECT" ? 0 : 300);
    });
    form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(debounce); first(); });

    // No init frame: the page comes from GET /sessions, and the feed starts where that
    // read did (`feed_head`), so a change made meanwhile is replayed, not missed.
    let feed = null;
    const follow = (head) => { feed = new AOF.Feed({
      init: false,
      lastId: head,
      onFrame: (kind, data) => {
        const s = data && data.session;
        if (kind === "session_deleted") {
          const sid = (s && s.session_id) || data.session_id;
          const tr = shown.has(sid) && document.querySelector(`tr[data-session="${CSS.escape(sid)}"]`);
          if (tr) tr.classList.add("gone");
          return;
        }
        if (!s) return;
        if (shown.has(s.session_id)) {
          shown.set(s.session_id, s);
          const tr = document.querySelector(`tr[data-session="${CSS.escape(s.session_id)}"]`);
          if (tr) tr.replaceWith(row(s));
        } else if ((kind === "session_created" || fields.status.value) && matches(s)) {
          fresh++;
          renderNew();
        }
      },
    }); };
    load().then(() => { if (!feed) follow(null); });
  });

  AOF.page("session-new", async () => {
    const sel = $("agent"), prompt = $("prompt");
    const want = new URLSearchParams(location.search).get("agent") || "";
    let agents = [];
    try {
      agents = await api("GET", "/agents");
    } catch (e) {
      AOF.fieldError(sel, $("agent-err"), "Cannot load agents: " + e.message);
    }
    const active = agents.filter((a) => a.status === "active");
    replace(sel,
      h("option", { value: "" }, active.length ? "Choose an agent…" : "No agents: runs use the runner's default executor"),
      active.map((a) => h("option", { value: a.name, selected: a.name === want }, a.name + (a.description ? " — " + a.description : ""))));
    if (want && !active.some((a) => a.name === want)) {
      sel.append(h("option", { value: want, selected: true }, want));
    }
    prompt.focus();
    $("start-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      for (const id of ["agent-err", "prompt-err", "form-err"]) $(id).hidden = true;
      prompt.removeAttribute("aria-invalid");
      if (!prompt.value.trim()) return AOF.fieldError(prompt, $("prompt-err"), "Write a prompt for the agent.");
      const body = { type: "start_session", parameters: { prompt: prompt.value } };
      if (sel.value) body.agent_name = sel.value;
      const btn = $("start");
      btn.disabled = true;
      try {
        const out = await api("POST", "/runs", body);
        location.assign("/ui/sessions/" + encodeURIComponent(out.session_id));
      } catch (e) {
        btn.disabled = false;
        const target = /agent/i.test(e.message) ? [sel, $("agent-err")] : /param|prompt/i.test(e.message) ? [prompt, $("prompt-err")] : null;
        if (target) AOF.fieldError(target[0], target[1], e.message);
        else { $("form-err").textContent = e.message; $("form-err").hidden = false; }
      }
    });
  });
})();
