// Runs and runners: status, tags, leases (who holds a run, which attempt), current
// runs per runner, stop and remove. Refreshed when the feed reports a change. Both
// come a page at a time from the API, filtered by the server (kept in the URL).
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

  /// A list read a page at a time: the filter `fields` of `form` (read from and kept in
  /// the URL), the cursor trail, `fetch(query)` answering a page with `next_cursor`,
  /// and `render(page, filtered, later)` drawing it into `box`. A newer request wins
  /// over an older one still on its way; typing is debounced, a select applies at once.
  /// Returns `load` (the current page again).
  function pagedList(form, box, fields, fetch, render) {
    const params = new URLSearchParams(location.search);
    for (const [k, el] of Object.entries(fields)) el.value = params.get(k) || "";
    const pg = AOF.cursorPages();
    let seq = 0;
    const filters = () => {
      const q = new URLSearchParams();
      for (const [k, el] of Object.entries(fields)) if (el.value.trim()) q.set(k, el.value.trim());
      return q;
    };
    async function load() {
      const mine = ++seq;
      const q = filters();
      history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
      const filtered = q.toString() !== "";
      q.set("limit", String(PER_PAGE));
      if (pg.cursor) q.set("cursor", pg.cursor);
      let out;
      try {
        out = await fetch(q);
      } catch (e) { return mine === seq && AOF.fail(box, e); }
      if (mine !== seq) return;
      pg.next = out.next_cursor || null;
      render(out, filtered, pg.cursor !== null);
      AOF.pager(pg, load, 0, true);
    }
    const first = () => { pg.cursor = null; pg.trail.length = 0; load(); };
    let debounce = null;
    form.addEventListener("input", (e) => {
      clearTimeout(debounce);
      debounce = setTimeout(first, e.target.tagName === "SELECT" ? 0 : 300);
    });
    form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(debounce); first(); });
    return load;
  }

  AOF.page("runs", async () => {
    async function stop(r) {
      try { await api("POST", `/runs/${enc(r.run_id)}/stop`, {}); await load(); } catch (e) { AOF.banner(e.message); }
    }
    const box = $("runs");
    const load = pagedList($("run-filters"), box, { status: $("r-status") }, (q) => api("GET", "/runs?" + q), (out, filtered, later) => {
      if (!out.runs.length) {
        const status = $("r-status").value;
        return replace(box, later ? AOF.empty("No more runs.") : AOF.empty(filtered ? `No ${status} runs.` : "No runs yet. Runs appear when a session starts or resumes.", AOF.link("/ui/sessions/new", "Start a session")));
      }
      replace(box, AOF.table("Runs", ["Run", "Session", "Agent", "Type", "Status", "Lease", "Created", "Error", ""],
        out.runs.map((r) => h("tr", { "data-run": r.run_id },
          h("td", { class: "id" }, r.run_id),
          h("td", { class: "id" }, AOF.sessionLink(r.session_id)),
          h("td", {}, r.agent_name || "—"),
          h("td", {}, r.type === "resume_session" ? "resume" : "start"),
          h("td", {}, AOF.badge(r.status)),
          h("td", {}, r.runner_id ? [h("span", { class: "mono" }, r.runner_id), h("br"), h("span", { class: "muted" }, `attempt ${r.attempt}`)] : h("span", { class: "muted" }, "—")),
          h("td", {}, AOF.time(r.created_at)),
          h("td", {}, r.error ? h("span", { class: "err" }, r.error) : ""),
          h("td", {}, ["pending", ...LIVE].includes(r.status) && r.status !== "stopping"
            ? h("button", { class: "btn danger", type: "button", "aria-label": "Stop run " + r.run_id, onclick: () => stop(r) }, "Stop") : "")))));
    });
    await liveReload(load);
  });

  /// Every live run (claimed, running, stopping): a runner's current work. They are
  /// bounded by the fleet's capacity, read 500 a page.
  async function liveRuns() {
    const all = [];
    for (const s of LIVE) {
      let cursor = null;
      do {
        const q = new URLSearchParams({ status: s, limit: "500" });
        if (cursor) q.set("cursor", cursor);
        const out = await api("GET", "/runs?" + q);
        all.push(...out.runs);
        cursor = out.next_cursor || null;
      } while (cursor);
    }
    return all;
  }

  AOF.page("runners", async () => {
    async function remove(r) {
      if (!(await AOF.confirm("Remove this runner?", `${r.runner_id} is deregistered; its running work fails.`, "Remove"))) return;
      // The coordinator tells the runner at its next poll; until then it is listed.
      try {
        const out = await api("DELETE", `/runners/${enc(r.runner_id)}`);
        AOF.banner(`${r.runner_id}: ${(out && out.message) || "removal requested"}.`);
        await load();
      } catch (e) { AOF.banner(e.message); }
    }
    const fields = { status: $("n-status"), q: $("n-q") };
    const fetch = async (q) => {
      const [page, runs] = await Promise.all([api("GET", "/runners?" + q), liveRuns()]);
      return { ...page, runs };
    };
    const box = $("runners");
    const load = pagedList($("runner-filters"), box, fields, fetch, (out, filtered, later) => {
      if (!out.runners.length) {
        return replace(box, later ? AOF.empty("No more runners.") : filtered ? AOF.empty("No runner matches these filters. Clear a filter to see more.")
          : AOF.empty("No runners are registered. Start one with `aof runner --url <coordinator>` (or use `aof up`)."));
      }
      const current = (id) => out.runs.filter((r) => r.runner_id === id);
      replace(box, AOF.table("Runners", ["Runner", "Host", "Profile", "Tags", "Status", "Last heartbeat", "Current runs", ""],
        out.runners.map((r) => h("tr", { "data-runner": r.runner_id },
          h("td", { class: "id" }, r.runner_id),
          h("td", {}, r.hostname),
          h("td", {}, r.executor_profile),
          h("td", {}, AOF.tags(r.tags)),
          h("td", {}, AOF.badge(r.status)),
          h("td", {}, AOF.time(r.last_heartbeat)),
          h("td", {}, current(r.runner_id).length ? current(r.runner_id).map((run) => h("div", {}, AOF.sessionLink(run.session_id), " ", AOF.badge(run.status))) : h("span", { class: "muted" }, "idle")),
          h("td", {}, h("button", { class: "btn danger", type: "button", "aria-label": "Remove runner " + r.runner_id, onclick: () => remove(r) }, "Remove"))))));
    });
    await liveReload(load);
  });
})();
