// Overview: runners online/stale, sessions by status, runs per minute over the last
// 15 minutes, and recent activity, kept live from the feed. Nothing here lists the whole
// fleet: counts come from GET /stats, runs per minute from the newest page of runs, the
// first activity from the newest page of sessions, and the feed has no init frame.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const MINUTES = 15;
  const ACTIVITY = 20;
  const STATUSES = ["pending", "running", "waiting_approval", "idle", "stopping", "finished", "failed", "stopped"];
  /// Runs read for the per-minute bars: a busier fleet shows "500+" in its window.
  const RUNS_PAGE = 500;

  const stat = (n, label) => h("div", { class: "stat" }, h("b", {}, String(n)), h("span", {}, label));

  AOF.page("overview", async () => {
    let fleetTimer = null;

    async function fleet() {
      let runners, runs, stats;
      try {
        [runners, runs, stats] = await Promise.all([api("GET", "/runners"), api("GET", `/runs?limit=${RUNS_PAGE}`), api("GET", "/stats")]);
      } catch (e) { AOF.fail($("ov-runners"), e); return; }
      renderSessions(stats.sessions_by_status);
      runners = runners.runners;
      const online = runners.filter((r) => r.status === "online").length;
      replace($("ov-runners"), runners.length
        ? [stat(online, "online"), stat(runners.length - online, "stale"), h("p", { class: "muted" }, AOF.link("/ui/runners", "See runners"))]
        : [AOF.empty("No runners. Start one with `aof runner --url …`, or use `aof up`.")]);
      // Runs created per minute, oldest minute first.
      const now = Date.now();
      const buckets = new Array(MINUTES).fill(0);
      for (const r of runs.runs) {
        const age = Math.floor((now - Date.parse(r.created_at)) / 60000);
        if (age >= 0 && age < MINUTES) buckets[MINUTES - 1 - age]++;
      }
      const max = Math.max(1, ...buckets);
      const last = buckets[MINUTES - 1];
      // A full page that is all inside the window: there were more than it holds.
      const more = runs.next_cursor && runs.runs.length && now - Date.parse(runs.runs[runs.runs.length - 1].created_at) < MINUTES * 60000 ? "+" : "";
      replace($("ov-rpm"),
        h("div", { class: "stat-list" }, stat(last, "in the last minute"), stat(buckets.reduce((a, b) => a + b, 0) + more, `in ${MINUTES} min`)),
        h("div", { class: "bars", role: "img", "aria-label": `Runs per minute, last ${MINUTES} minutes: ${buckets.join(", ")}` },
          buckets.map((n) => h("div", { style: null, "data-n": String(n), title: `${n} runs` }))));
      // Heights go through CSSOM, which the no-inline-style policy allows.
      [...$("ov-rpm").querySelectorAll(".bars div")].forEach((d, i) => { d.style.height = `${(buckets[i] / max) * 100}%`; });
    }
    function kickFleet() {
      if (fleetTimer) return;
      fleetTimer = setTimeout(async () => { fleetTimer = null; await fleet(); }, 1500);
    }

    function renderSessions(byStatus) {
      const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
      Object.assign(counts, byStatus);
      const box = $("ov-sessions");
      if (!Object.values(counts).some((n) => n > 0)) return replace(box, AOF.empty("No sessions yet.", AOF.link("/ui/sessions/new", "Start one")));
      replace(box, Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) =>
        h("a", { class: "stat", href: "/ui/sessions?status=" + encodeURIComponent(s) }, h("b", {}, String(n)), h("span", {}, s))));
    }

    function activity(kind, data, id) {
      let what, sid;
      if (kind === "event" && data.data) {
        sid = data.data.session_id;
        what = data.data.event_type === "message" ? `${data.data.role || "message"} message` : data.data.event_type.replace(/_/g, " ");
      } else if (data.session) {
        sid = data.session.session_id;
        what = kind === "session_created" ? "session created" : `session ${data.session.status}`;
      } else return;
      const list = $("ov-activity");
      list.prepend(h("li", { "data-id": String(id) }, AOF.time(new Date().toISOString()), h("span", {}, what), AOF.sessionLink(sid)));
      while (list.children.length > ACTIVITY) list.lastElementChild.remove();
      $("ov-activity-empty").hidden = true;
    }

    /// Before anything happens live, the newest sessions stand in as recent activity.
    async function seed() {
      let newest = [];
      try { newest = (await api("GET", "/sessions?limit=10")).sessions; } catch (_) { /* activity stays empty */ }
      const list = $("ov-activity");
      if (list.children.length) return;
      for (const s of newest) {
        list.append(h("li", {}, AOF.time(s.created_at), h("span", {}, `session created · now ${s.status}`), AOF.sessionLink(s.session_id)));
      }
      $("ov-activity-empty").hidden = newest.length > 0;
    }

    new AOF.Feed({
      init: false,
      onFrame: (kind, data, id) => {
        activity(kind, data, id);
        kickFleet();
      },
    });
    setInterval(fleet, 15000);
    await Promise.all([fleet(), seed()]);
  });
})();
