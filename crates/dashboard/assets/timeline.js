// The session page: facts (who ran it), a live timeline that reads as a conversation
// (fold.js folds the raw events; "Show raw events" lists them all), usage totals, the
// child-session tree, stop and follow-up. Every event of the session is kept in
// memory, but the DOM holds at most WINDOW rows (a window over them), so a session
// with 10,000 events stays responsive; "Show earlier events" moves the window back.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const WINDOW = 200;
  const STEP = 100;
  const PAGE = 1000;
  const ACTIVE = ["pending", "running", "waiting_approval", "idle", "stopping"];
  const REQUESTED = "approval_requested";
  const RESOLVED = "approval_resolved";
  const RESUMABLE = ["idle", "finished", "failed", "stopped"];

  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (_) { return String(v); }
  }
  function details(label, value) {
    if (value === null || value === undefined) return null;
    return h("details", {}, h("summary", {}, label), h("pre", {}, typeof value === "string" ? value : pretty(value)));
  }
  const textOf = AOF.textOf;
  function isError(ev) {
    return !!ev.error || /fail|error/.test(ev.event_type) || (ev.exit_code != null && ev.exit_code !== 0);
  }

  // ---- approvals ---------------------------------------------------------------------
  // A request row shows the tool and its input; while nobody has decided it carries the
  // Approve / Deny form, afterwards who decided and when. `decided` (approval id → the
  // resolved approval) is filled from approval_resolved events and from our own POSTs.
  const decided = new Map();
  // Approvals whose buttons were just pressed here: disabling the pressed button drops
  // focus to <body>, so `settle` puts it on the decision instead.
  const pressed = new Set();
  const idOf = (ev) => (ev.result_data && ev.result_data.approval_id) || "";

  function decisionText(a) {
    const verdict = a.status === "approved" ? "Approved" : "Denied";
    const how = a.resolution === "timeout" ? "by its timeout" : a.resolution === "run_ended" ? "because the run ended" : "by " + (a.decided_by || "someone");
    return [h("b", {}, verdict), " " + how + " ", AOF.time(a.decided_at)];
  }

  function approvalBody(ev, page) {
    const id = idOf(ev);
    const req = ev.result_data || {};
    const body = [h("div", { class: "ev-body" }, "The agent wants to run ", h("b", { class: "mono" }, ev.tool_name || "a tool"), "."),
      h("pre", {}, pretty(ev.tool_input || {}))];
    const done = decided.get(id);
    if (done) {
      body.push(h("p", { class: "decision " + done.status, tabindex: "-1" }, decisionText(done)));
      if (done.message) body.push(h("p", { class: "ev-body muted" }, "Message: " + done.message));
      if (done.updated_input) body.push(details("Input it ran with", done.updated_input));
      return body;
    }
    const fid = "apr-" + id.replace(/[^A-Za-z0-9_-]/g, "");
    const viewer = AOF.me && AOF.me.auth_enabled && AOF.me.role === "viewer";
    body.push(h("p", { class: "hint" }, "Waiting for a person. Expires ", AOF.time(req.expires_at), req.on_timeout ? `, then ${req.on_timeout === "approve" ? "approved" : "denied"}.` : "."));
    if (viewer) {
      body.push(h("p", { class: "note" }, "An operator or admin decides this."));
      return body;
    }
    const msg = h("textarea", { id: fid + "-msg", rows: "2", "aria-describedby": fid + "-hint " + fid + "-err" });
    const err = h("p", { class: "err", id: fid + "-err", role: "alert", hidden: true });
    const decide = (decision) => async () => {
      pressed.add(id);
      for (const b of form.querySelectorAll("button")) b.disabled = true;
      err.hidden = true;
      const choice = { decision };
      if (msg.value.trim()) choice.message = msg.value.trim();
      try {
        settle(await api("POST", `/approvals/${encodeURIComponent(id)}`, choice), page);
      } catch (e) {
        if (e.status === 409) {
          // Someone (or the timeout) was first: show what they decided instead.
          try { return settle(await api("GET", `/approvals/${encodeURIComponent(id)}`), page); } catch (_) { /* shown below */ }
        }
        pressed.delete(id);
        for (const b of form.querySelectorAll("button")) b.disabled = false;
        err.textContent = e.status === 403 ? "Only an operator or admin may decide." : e.message;
        err.hidden = false;
      }
    };
    const form = h("form", { class: "approval-form", "aria-label": `Decide on ${ev.tool_name || "the tool"} call`, onsubmit: (e) => e.preventDefault() },
      h("label", { for: fid + "-msg" }, "Message (optional)"),
      msg,
      h("p", { class: "hint", id: fid + "-hint" }, "Kept with the decision; a denial's message is what the agent is told."),
      err,
      h("div", { class: "actions" },
        h("button", { class: "btn primary", type: "button", "data-decision": "approve", onclick: decide("approve") }, "Approve"),
        h("button", { class: "btn danger", type: "button", "data-decision": "deny", onclick: decide("deny") }, "Deny")));
    body.push(form);
    return body;
  }

  /// A resolution is known: redraw the request's row where it is shown, keeping focus
  /// in that row (the buttons that had it are gone).
  function settle(a, page) {
    if (!a || !a.approval_id || a.status === "pending") return;
    decided.set(a.approval_id, a);
    const li = page.list.querySelector(`li[data-approval="${CSS.escape(a.approval_id)}"]`);
    if (li) {
      const lost = !document.activeElement || document.activeElement === document.body;
      const had = li.contains(document.activeElement) || (pressed.has(a.approval_id) && lost);
      const it = page.fold.items.find((i) => i.ev.event_type === REQUESTED && idOf(i.ev) === a.approval_id);
      if (it) {
        const fresh = render(it, page);
        li.replaceWith(fresh);
        if (had) fresh.querySelector(".decision").focus();
      }
    }
    pressed.delete(a.approval_id);
    AOF.approvalsChanged && AOF.approvalsChanged();
  }

  /// The resolved event's data as an approval (the fields `settle` reads).
  function resolvedOf(ev) {
    const d = ev.result_data || {};
    return { approval_id: d.approval_id, status: d.status, resolution: d.resolution, decided_by: d.decided_by, decided_at: d.decided_at || ev.timestamp, message: d.message ?? ev.reason ?? null, updated_input: d.updated_input || null };
  }

  /// One raw event as a row (the raw view, and the folded view's plain rows).
  function row(ev, page) {
    const t = ev.event_type;
    if (t === REQUESTED || t === RESOLVED) {
      const id = idOf(ev);
      const pending = t === REQUESTED && !decided.has(id);
      const res = t === RESOLVED ? resolvedOf(ev) : null;
      return h("li", { class: "ev approval" + (pending ? " pending" : ""), "data-id": String(ev.id), "data-seq": String(ev.seq), "data-approval": t === REQUESTED ? id : null },
        h("div", { class: "ev-head" }, h("span", { class: "mono" }, "#" + ev.seq),
          h("span", { class: "ev-type" }, t === REQUESTED ? (pending ? "approval needed" : "approval requested") : "approval " + (res.status || "resolved")),
          AOF.time(ev.timestamp), h("span", { class: "mono" }, id)),
        t === REQUESTED ? approvalBody(ev, page) : [h("div", { class: "ev-body" }, h("span", { class: "mono" }, ev.tool_name || ""), " — ", decisionText(res)),
          res.message ? h("div", { class: "ev-body muted" }, res.message) : null]);
    }
    const tool = t === "pre_tool" || t === "post_tool" || !!ev.tool_name;
    const cls = "ev" + (isError(ev) ? " error" : t === "result" ? " result" : tool ? " tool" : t === "message" ? " msg " + (ev.role || "") : "");
    const label = t === "message" ? (ev.role || "message") : t === "pre_tool" ? "tool call" : t === "post_tool" ? "tool result" : t.replace(/_/g, " ");
    const body = [];
    if (t === "message" || t === "message_delta") {
      const text = textOf(ev);
      if (text) body.push(h("div", { class: "ev-body" }, text));
      const other = (ev.content || []).filter((b) => b && typeof b.text !== "string");
      if (other.length) body.push(details("Content blocks", other));
    } else if (tool) {
      if (ev.tool_name) body.push(h("div", { class: "ev-body mono" }, ev.tool_name));
      body.push(details("Input", ev.tool_input), details("Output", ev.tool_output));
    } else if (t === "result") {
      if (ev.result_text) body.push(h("div", { class: "ev-body" }, ev.result_text));
      body.push(details("Result data", ev.result_data));
    }
    if (ev.error) body.push(h("div", { class: "ev-body" }, ev.error));
    if (ev.reason && !ev.error) body.push(h("div", { class: "ev-body muted" }, ev.reason));
    if (!body.length && t !== "run_start" && t !== "run_completed") {
      const rest = {};
      for (const [k, v] of Object.entries(ev)) if (v != null && !["event_type", "session_id", "timestamp", "id", "seq", "run_id"].includes(k)) rest[k] = v;
      if (Object.keys(rest).length) body.push(details("Data", rest));
    }
    const where = t === "run_start" && page.ranBy ? page.ranBy(ev) : null;
    return h("li", { class: cls, "data-id": String(ev.id), "data-seq": String(ev.seq) },
      h("div", { class: "ev-head" }, h("span", { class: "mono" }, "#" + ev.seq), h("span", { class: "ev-type" }, t === "run_start" ? "run started" : label),
        AOF.time(ev.timestamp),
        // Live frames carry no run id; show it where a run begins, when known.
        t === "run_start" && ev.run_id ? h("span", { class: "mono" }, ev.run_id) : null,
        where ? h("span", { class: "ran-by" }, where) : null),
      body);
  }

  const head = (ev, label, ...rest) => h("div", { class: "ev-head" }, h("span", { class: "mono" }, "#" + ev.seq), h("span", { class: "ev-type" }, label), AOF.time(ev.timestamp), rest);
  const li = (it, cls, ...kids) => h("li", { class: cls, "data-id": String(it.evs[0].id), "data-seq": String(it.evs[0].seq) }, kids);

  /// Assistant text still streaming (or cut off by the run's end).
  function streamRow(it) {
    return li(it, "ev msg assistant streaming",
      head(it.evs[0], "assistant", h("span", { class: "muted" }, it.done ? "(incomplete: the run ended)" : "writing…")),
      h("div", { class: "ev-body" }, it.text));
  }

  /// A tool call and its result: name, status, duration; input and output collapsed.
  function toolRow(it) {
    const first = it.pre || it.post;
    const err = it.post && isError(it.post);
    const status = !it.post ? "running" : err ? "error" : "ok";
    const t0 = it.pre ? Date.parse(it.pre.timestamp) : NaN, t1 = it.post ? Date.parse(it.post.timestamp) : NaN;
    const took = !isNaN(t0) && !isNaN(t1) && t1 >= t0 ? AOF.duration((t1 - t0) / 1000) : null;
    return li(it, "ev tool" + (err ? " error" : ""),
      head(first, "tool", h("b", { class: "mono" }, first.tool_name || "(unnamed)"),
        h("span", { class: "badge tool-" + status }, status), took ? h("span", { class: "muted" }, took) : null),
      details("Input", first.tool_input || (it.post && it.post.tool_input)),
      it.post ? details("Output", it.post.tool_output) : null,
      err && it.post.error ? h("div", { class: "ev-body" }, it.post.error) : null);
  }

  /// The run's card: how it ended, its result (unless it only repeats the last answer),
  /// and its usage: the run's `usage`, `result` and end events folded together.
  function cardRow(it) {
    const r = it.run;
    const end = r.end;
    const how = end ? end.event_type.replace(/_/g, " ") : "run result";
    const failed = end && end.event_type === "run_failed";
    const u = AOF.Fold.usage(r);
    const facts = [["Duration", AOF.duration(u.seconds)]];
    if (u.input != null) facts.push(["Tokens in", String(u.input)]);
    if (u.output != null) facts.push(["Tokens out", String(u.output)]);
    if (u.cost != null) facts.push(["Cost", "$" + u.cost.toFixed(4)]);
    const text = r.result && r.result.result_text;
    const over = r.usage && r.usage.result_data && r.usage.result_data.exceeded;
    return li(it, "ev run-card" + (failed ? " error" : end && end.event_type === "run_completed" ? " result" : ""),
      head(it.evs[0], how, r.run_id ? h("span", { class: "mono" }, r.run_id) : null),
      text && text.trim() !== (r.lastText || "").trim() ? h("div", { class: "ev-body" }, text) : null,
      end && end.error ? h("div", { class: "ev-body" }, end.error) : null,
      over && !(end && end.error) ? h("div", { class: "ev-body" }, over) : null,
      h("dl", { class: "facts inline", "aria-label": "Run usage" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      r.result ? details("Result data", r.result.result_data) : null);
  }

  /// Any item as its row, tagged with its key so an update can find it.
  function render(it, page) {
    const el = it.kind === "stream" ? streamRow(it) : it.kind === "tool" ? toolRow(it) : it.kind === "card" ? cardRow(it) : row(it.ev, page);
    el.dataset.key = it.key;
    return el;
  }

  AOF.page("session", async (id) => {
    const list = $("timeline");
    const events = [];
    let end = 0; // the window is items[max(0, end - WINDOW) .. end)
    let session = null;
    let lastId = null;
    let connected = false;
    const rawBox = $("tl-raw");
    const params = new URLSearchParams(location.search);
    rawBox.checked = params.get("raw") === "1";
    const page = { list, events, fold: new AOF.Fold(rawBox.checked) };
    const items = () => page.fold.items;
    const draw = (it) => render(it, page);
    /// Approval events keep `decided` and the nav count current.
    function note(ev) {
      if (ev.event_type === RESOLVED) settle(resolvedOf(ev), page);
      else if (ev.event_type === REQUESTED) AOF.approvalsChanged && AOF.approvalsChanged();
    }

    function following() { return end === items().length; }

    function renderWindow() {
      const start = Math.max(0, end - WINDOW);
      replace(list, items().slice(start, end).map(draw));
      syncPager();
    }
    function syncPager() {
      const n = items().length;
      const start = Math.max(0, end - WINDOW);
      $("tl-older").hidden = start === 0;
      $("tl-range").textContent = n ? `Showing ${start + 1}–${end} of ${n}` : "";
      const newer = n - end;
      $("tl-newer").hidden = newer === 0;
      $("tl-latest").textContent = newer ? `Jump to latest (${newer} newer)` : "Jump to latest";
      $("tl-empty").hidden = events.length > 0;
    }
    $("tl-earlier").addEventListener("click", () => {
      end = Math.max(Math.min(WINDOW, items().length), end - STEP);
      renderWindow();
    });
    $("tl-latest").addEventListener("click", () => {
      end = items().length;
      renderWindow();
      list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "nearest" });
    });

    /// Folds every event again (the raw toggle), keeping the window at the newest.
    function refold() {
      page.fold = new AOF.Fold(rawBox.checked);
      for (const ev of events) page.fold.add(ev);
      end = items().length;
      renderWindow();
      renderTotals();
    }
    rawBox.addEventListener("change", () => {
      const q = new URLSearchParams(location.search);
      if (rawBox.checked) q.set("raw", "1"); else q.delete("raw");
      const qs = q.toString();
      history.replaceState(null, "", location.pathname + (qs ? "?" + qs : "") + location.hash);
      refold();
    });

    /// Redraws a changed row in place when it is in the window; keeps open details
    /// open and focus where it was (the row is rebuilt).
    function redraw(it) {
      const old = list.querySelector(`li[data-key="${CSS.escape(it.key)}"]`);
      if (!old) return;
      const fresh = draw(it);
      const opened = [...old.querySelectorAll("details")].map((d) => d.open);
      [...fresh.querySelectorAll("details")].forEach((d, i) => { if (opened[i]) d.open = true; });
      const had = old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (had) (fresh.querySelector("summary, button, a, textarea") || fresh).focus();
    }

    function push(ev) {
      const tail = following();
      events.push(ev);
      lastId = ev.id;
      const { fresh, changed } = page.fold.add(ev);
      for (const it of changed) redraw(it);
      if (tail) {
        end = items().length;
        for (const it of fresh) list.append(draw(it));
        while (list.children.length > WINDOW) list.firstElementChild.remove();
      }
      if (fresh.length || changed.length || ev.event_type === "usage") renderTotals();
      syncPager();
      note(ev);
      if (ev.event_type === "run_start") loadRuns();
    }

    /// Session totals over every run (tokens, cost, time), from the folded runs.
    function renderTotals() {
      const t = page.fold.totals();
      if (!t.runs) return replace($("totals"), h("p", { class: "muted" }, "No runs yet."));
      const facts = [["Runs", String(t.runs)], ["Duration", AOF.duration(t.seconds)]];
      if (t.input != null) facts.push(["Tokens in", String(t.input)]);
      if (t.output != null) facts.push(["Tokens out", String(t.output)]);
      if (t.cost != null) facts.push(["Cost", "$" + t.cost.toFixed(4)]);
      replace($("totals"), h("dl", { class: "facts", "aria-label": "Session totals" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    }

    // Who ran the session: its runs, the runners' hosts, the agent's executor.
    let runs = [];
    const runners = new Map();
    let agentExecutor = null;
    let runsTimer = null;
    function loadRuns() {
      clearTimeout(runsTimer);
      runsTimer = setTimeout(async () => {
        try {
          const [rl, rn] = await Promise.all([api("GET", "/runs?session_id=" + encodeURIComponent(id)), api("GET", "/runners")]);
          runs = rl.runs.sort((a, b) => a.created_at.localeCompare(b.created_at));
          for (const x of rn.runners) runners.set(x.runner_id, x);
        } catch (_) { return; /* the header keeps what it had */ }
        if (session) renderSession(session);
        for (const li of list.querySelectorAll("li[data-key]")) {
          const it = items().find((i) => i.key === li.dataset.key);
          if (it && it.ev.event_type === "run_start") redraw(it);
        }
      }, 100);
    }
    function executorOf(runner) {
      if (agentExecutor) return agentExecutor;
      if (!runner) return null;
      return runner.executor_profile || (runner.executor && runner.executor.type) || null;
    }
    const hostOf = (r) => { const x = r && r.runner_id && runners.get(r.runner_id); return x ? x.hostname : null; };
    /// "on host · executor" for a run_start row.
    page.ranBy = (ev) => {
      const r = ev.run_id ? runs.find((x) => x.run_id === ev.run_id) : runs[runs.length - 1];
      if (!r || !r.runner_id) return null;
      const runner = runners.get(r.runner_id);
      return ["on " + (runner ? runner.hostname : r.runner_id), executorOf(runner)].filter(Boolean).join(" · ");
    };

    function live() {
      const el = $("live");
      const active = session && ACTIVE.includes(session.status);
      // A finished session cannot change until someone follows up: no Live badge.
      el.hidden = !active;
      el.classList.toggle("on", !!active && connected);
      el.textContent = active ? (connected ? "Live" : "Reconnecting…") : "";
    }

    function renderSession(s) {
      session = s;
      $("session-title").textContent = "Session " + s.session_id;
      const parent = s.parent_session_id ? AOF.sessionLink(s.parent_session_id) : h("span", { class: "muted" }, "—");
      const agent = s.agent_name ? AOF.link("/ui/agents/" + encodeURIComponent(s.agent_name), s.agent_name) : h("span", { class: "muted" }, "—");
      const hosts = [...new Set([s.hostname, ...runs.map(hostOf)].filter(Boolean))];
      const execs = [...new Set(runs.map((r) => executorOf(runners.get(r.runner_id))).concat(runs.length ? [] : [s.executor_profile]).filter(Boolean))];
      replace($("session-facts"),
        h("dt", {}, "Status"), h("dd", { id: "session-status" }, AOF.badge(s.status)),
        h("dt", {}, "Agent"), h("dd", {}, agent),
        h("dt", {}, "Created"), h("dd", {}, AOF.time(s.created_at)),
        h("dt", {}, "Parent"), h("dd", {}, parent),
        h("dt", {}, "Host"), h("dd", { id: "session-host" }, hosts.length ? hosts.join(", ") : "—"),
        h("dt", {}, "Executor"), h("dd", { id: "session-executor" }, execs.length ? execs.join(", ") : "—"));
      $("stop").hidden = !ACTIVE.includes(s.status) || s.status === "stopping";
      $("followup").hidden = !RESUMABLE.includes(s.status);
      live();
    }

    // Child sessions, kept live from the global feed's session frames.
    const all = new Map();
    function renderChildren() {
      const kids = (pid) => [...all.values()].filter((s) => s.parent_session_id === pid).sort((a, b) => a.created_at.localeCompare(b.created_at));
      const tree = (pid, depth) => {
        const ks = kids(pid);
        if (!ks.length || depth > 8) return null;
        return h("ul", { class: "tree" }, ks.map((k) => h("li", {}, AOF.sessionLink(k.session_id), " ", AOF.badge(k.status), tree(k.session_id, depth + 1))));
      };
      replace($("children"), tree(id, 0) || h("p", { class: "muted" }, "None."));
    }

    $("stop").addEventListener("click", async () => {
      const b = $("stop");
      b.disabled = true;
      try {
        const out = await api("POST", `/sessions/${encodeURIComponent(id)}/stop`, {});
        AOF.banner(out && out.message ? out.message : "Stop requested.");
      } catch (e) {
        AOF.banner("Stop failed: " + e.message);
      } finally {
        b.disabled = false;
      }
    });

    $("followup").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const ta = $("followup-text"), err = $("followup-err");
      err.hidden = true;
      ta.removeAttribute("aria-invalid");
      if (!ta.value.trim()) return AOF.fieldError(ta, err, "Write a message first.");
      const btn = $("followup-send");
      btn.disabled = true;
      try {
        await api("POST", "/runs", { type: "resume_session", session_id: id, parameters: { prompt: ta.value } });
        ta.value = "";
      } catch (e) {
        AOF.fieldError(ta, err, e.message);
      } finally {
        btn.disabled = false;
      }
    });

    try {
      renderSession((await api("GET", `/sessions/${encodeURIComponent(id)}`)).session);
    } catch (e) {
      if (e.status === 404) {
        replace($("main"), h("h1", {}, "Session not found"), AOF.empty(`There is no session ${id}.`, AOF.link("/ui/sessions", "See all sessions")));
        return;
      }
      throw e;
    }
    if (session.agent_name) {
      api("GET", `/agents/${encodeURIComponent(session.agent_name)}`)
        .then((a) => { agentExecutor = (a && a.executor && a.executor.kind) || null; if (agentExecutor) renderSession(session); })
        .catch(() => {});
    }
    loadRuns();
    // Every stored event, a page at a time; the window shows the newest.
    for (;;) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (lastId != null) q.set("after", String(lastId));
      const got = (await api("GET", `/sessions/${encodeURIComponent(id)}/events?${q}`)).events;
      for (const e of got) {
        const ev = Object.assign({}, e);
        events.push(ev);
        page.fold.add(ev);
        lastId = e.id;
        if (e.event_type === RESOLVED) decided.set(idOf(e), resolvedOf(e));
      }
      if (got.length < PAGE) break;
    }
    end = items().length;
    await AOF.meReady; // a viewer's approval rows have no buttons
    renderWindow();
    renderTotals();

    // Live from the last stored event on: the feed resumes after it, so nothing is
    // missed between the fetch and the subscription, and nothing is shown twice.
    new AOF.Feed({
      sessionId: id,
      lastId: lastId ?? 0,
      onState: (on) => { connected = on; live(); },
      onFrame: (kind, data, cursor) => {
        if (kind === "event" && data.data) {
          if (lastId != null && cursor <= lastId) return;
          const prev = events.length ? events[events.length - 1].seq : 0;
          push(Object.assign({}, data.data, { id: cursor, seq: prev + 1 }));
        } else if ((kind === "session_updated" || kind === "session_created") && data.session && data.session.session_id === id) {
          renderSession(data.session);
        } else if (kind === "session_deleted") {
          AOF.banner("This session was deleted.");
        }
      },
    });
    new AOF.Feed({
      init: true,
      onFrame: (kind, data) => {
        if (kind === "init") {
          all.clear();
          for (const s of data.sessions || []) all.set(s.session_id, s);
        } else if (data.session) {
          if (kind === "session_deleted") all.delete(data.session.session_id);
          else all.set(data.session.session_id, data.session);
        } else return;
        renderChildren();
      },
    });
  });
})();
