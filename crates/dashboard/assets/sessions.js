// Sessions: the filtered, paginated list (live from the feed) and the start form.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const PER_PAGE = 25;

  AOF.page("sessions", () => {
    const all = new Map();
    const form = $("filters");
    const params = new URLSearchParams(location.search);
    const fields = { status: $("f-status"), agent: $("f-agent"), parent: $("f-parent"), q: $("f-q") };
    for (const [k, el] of Object.entries(fields)) el.value = params.get(k) || "";
    let page = Math.max(1, Number(params.get("page")) || 1);
    let loaded = false;
    let queued = false;

    function matches(s) {
      const f = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value.trim().toLowerCase()]));
      if (f.status && s.status !== f.status) return false;
      if (f.agent && !(s.agent_name || "").toLowerCase().includes(f.agent)) return false;
      if (f.parent && !(s.parent_session_id || "").toLowerCase().includes(f.parent)) return false;
      if (f.q) {
        const hay = [s.session_id, s.agent_name, s.hostname, s.project_dir, s.status].join(" ").toLowerCase();
        if (!hay.includes(f.q)) return false;
      }
      return true;
    }

    function syncUrl() {
      const q = new URLSearchParams();
      for (const [k, el] of Object.entries(fields)) if (el.value.trim()) q.set(k, el.value.trim());
      if (page > 1) q.set("page", String(page));
      history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
    }

    function render() {
      queued = false;
      if (!loaded) return;
      const rows = [...all.values()].filter(matches).sort((a, b) => b.created_at.localeCompare(a.created_at));
      const pages = Math.max(1, Math.ceil(rows.length / PER_PAGE));
      page = Math.min(page, pages);
      const box = $("sessions");
      if (!all.size) {
        replace(box, AOF.empty("No sessions yet.", AOF.link("/ui/sessions/new", "Start a session")));
      } else if (!rows.length) {
        replace(box, AOF.empty("No session matches these filters. Clear a filter to see more."));
      } else {
        const shown = rows.slice((page - 1) * PER_PAGE, page * PER_PAGE);
        replace(box, AOF.table("Sessions", ["Session", "Status", "Agent", "Parent", "Created", "Host"],
          shown.map((s) => h("tr", { "data-session": s.session_id },
            h("td", { class: "id" }, AOF.sessionLink(s.session_id)),
            h("td", {}, AOF.badge(s.status)),
            h("td", {}, s.agent_name || "—"),
            h("td", { class: "id" }, s.parent_session_id ? AOF.sessionLink(s.parent_session_id) : "—"),
            h("td", {}, AOF.time(s.created_at)),
            h("td", {}, s.hostname || "—")))));
      }
      const pager = $("pager");
      replace(pager, pages > 1 ? [
        h("button", { class: "btn", type: "button", disabled: page <= 1, onclick: () => { page--; schedule(); } }, "Previous"),
        h("span", { "aria-live": "polite" }, `Page ${page} of ${pages} · ${rows.length} sessions`),
        h("button", { class: "btn", type: "button", disabled: page >= pages, onclick: () => { page++; schedule(); } }, "Next"),
      ] : rows.length ? [h("span", { class: "muted" }, `${rows.length} session${rows.length === 1 ? "" : "s"}`)] : []);
      syncUrl();
    }
    function schedule() {
      if (!queued) { queued = true; requestAnimationFrame(render); }
    }
    form.addEventListener("input", () => { page = 1; schedule(); });
    form.addEventListener("submit", (e) => e.preventDefault());

    new AOF.Feed({
      init: true,
      onFrame: (kind, data) => {
        if (kind === "init") {
          all.clear();
          for (const s of data.sessions || []) all.set(s.session_id, s);
          loaded = true;
        } else if (kind === "session_deleted") {
          const sid = (data.session && data.session.session_id) || data.session_id;
          all.delete(sid);
        } else if (data.session) {
          all.set(data.session.session_id, data.session);
        } else return;
        schedule();
      },
    });
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
