// Runs and runners: status, tags, leases (who holds a run, which attempt), current
// runs per runner, stop and remove. Refreshed when the feed reports a change. Runs come
// a page at a time from the API; runners are few and listed whole.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const enc = encodeURIComponent;
  const LIVE = ["claimed", "running", "stopping"];
  const PER_PAGE = 50;

  /// Calls `load` now and again (at most every 2 s) whenever the feed moves.
  function liveReload(load) {
    let timer = null, last = 0;
    const kick = () => {
      if (timer) return;
      const wait = Math.max(0, 2000 - (Date.now() - last));
      timer = setTimeout(async () => { timer = null; last = Date.now(); await load(); }, wait);
    };
    new AOF.Feed({ onFrame: (kind) => { if (kind !== "init") kick(); } });
    // Heartbeats change runner freshness without a feed frame.
    setInterval(kick, 15000);
    return load();
  }

  AOF.page("runs", async () => {
    // A page at a time from the API (`next_cursor`), the status filtered by the server.
    const sel = $("r-status");
    sel.value = new URLSearchParams(location.search).get("status") || "";
    const trail = [];
    let cursor = null, next = null, seq = 0;
    async function load() {
      const box = $("runs");
      const mine = ++seq;
      const q = new URLSearchParams({ limit: String(PER_PAGE) });
      if (sel.value) q.set("status", sel.value);
      if (cursor) q.set("cursor", cursor);
      let out;
      try {
        out = await api("GET", "/runs?" + q);
      } catch (e) { return mine === seq && AOF.fail(box, e); }
      if (mine !== seq) return;
      const runs = out.runs;
      next = out.next_cursor || null;
      if (!runs.length) {
        replace(box, cursor ? AOF.empty("No more runs.") : AOF.empty(sel.value ? `No ${sel.value} runs.` : "No runs yet. Runs appear when a session starts or resumes.", AOF.link("/ui/sessions/new", "Start a session")));
      } else {
        replace(box, AOF.table("Runs", ["Run", "Session", "Agent", "Type", "Status", "Lease", "Created", "Error", ""],
          runs.map((r) => h("tr", { "data-run": r.run_id },
            h("td", { class: "id" }, r.run_id),
            h("td", { class: "id" }, AOF.sessionLink(r.session_id)),
            h("td", {}, r.agent_name || "—"),
            h("td", {}, r.type === "resume_session" ? "resume" : "start"),
            h("td", {}, AOF.badge(r.status)),
            h("td", {}, r.runner_id ? [h("span", { class: "mono" }, r.runner_id), h("br"), h("span", { class: "muted" }, `attempt ${r.attempt}`)] : h("span", { class: "muted" }, "—")),
            h("td", {}, AOF.time(r.created_at)),
            h("td", {}, r.error ? h("span", { class: "err" }, r.error) : ""),
            h("td", {}, ["pending", ...LIVE].includes(r.status) && r.status !== "stopping"
              ? h("button", { class: "btn danger", type: "button", "aria-label": "Stop run " + r.run_id, onclick: async () => {
                try { await api("POST", `/runs/${enc(r.run_id)}/stop`, {}); await load(); } catch (e) { AOF.banner(e.message); }
              } }, "Stop") : "")))));
      }
      AOF.keepFocus(() => replace($("pager"), trail.length || next ? [
        h("button", { class: "btn", type: "button", id: "page-prev", disabled: !trail.length, onclick: () => { cursor = trail.pop() || null; load(); } }, "Previous"),
        h("span", { id: "page-no" }, `Page ${trail.length + 1}`),
        h("button", { class: "btn", type: "button", id: "page-next", disabled: !next, onclick: () => { trail.push(cursor); cursor = next; load(); } }, "Next"),
      ] : []), AOF.otherPager);
    }
    sel.addEventListener("change", () => {
      cursor = null;
      trail.length = 0;
      history.replaceState(null, "", location.pathname + (sel.value ? "?status=" + enc(sel.value) : ""));
      load();
    });
    await liveReload(load);
  });

  AOF.page("runners", async () => {
    async function load() {
      const box = $("runners");
      let runners, runs;
      try {
        // Runners are few (all listed); of the runs only the live ones, a page per status.
        const live = LIVE.map((s) => api("GET", `/runs?status=${s}&limit=500`));
        [runners, ...runs] = await Promise.all([api("GET", "/runners"), ...live]);
        runners = runners.runners;
        runs = runs.flatMap((r) => r.runs);
      } catch (e) { return AOF.fail(box, e); }
      if (!runners.length) {
        return replace(box, AOF.empty("No runners are registered. Start one with `aof runner --url <coordinator>` (or use `aof up`)."));
      }
      const current = (id) => runs.filter((r) => r.runner_id === id && LIVE.includes(r.status));
      replace(box, AOF.table("Runners", ["Runner", "Host", "Profile", "Tags", "Status", "Last heartbeat", "Current runs", ""],
        runners.map((r) => h("tr", { "data-runner": r.runner_id },
          h("td", { class: "id" }, r.runner_id),
          h("td", {}, r.hostname),
          h("td", {}, r.executor_profile),
          h("td", {}, AOF.tags(r.tags)),
          h("td", {}, AOF.badge(r.status)),
          h("td", {}, AOF.time(r.last_heartbeat)),
          h("td", {}, current(r.runner_id).length ? current(r.runner_id).map((run) => h("div", {}, AOF.sessionLink(run.session_id), " ", AOF.badge(run.status))) : h("span", { class: "muted" }, "idle")),
          h("td", {}, h("button", { class: "btn danger", type: "button", "aria-label": "Remove runner " + r.runner_id, onclick: async () => {
            if (!(await AOF.confirm("Remove this runner?", `${r.runner_id} is deregistered; its running work fails.`, "Remove"))) return;
            // The coordinator tells the runner at its next poll; until then it is listed.
            try {
              const out = await api("DELETE", `/runners/${enc(r.runner_id)}`);
              AOF.banner(`${r.runner_id}: ${(out && out.message) || "removal requested"}.`);
              await load();
            } catch (e) { AOF.banner(e.message); }
          } }, "Remove"))))));
    }
    await liveReload(load);
  });
})();
