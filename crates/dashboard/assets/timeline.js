// The session page: facts, a live event timeline, result and usage, the child-session
// tree, stop and follow-up. Every event of the session is kept in memory, but the DOM
// holds at most WINDOW rows (a window over them), so a session with 10,000 events
// stays responsive; "Show earlier events" moves the window back.
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
  function textOf(ev) {
    const blocks = Array.isArray(ev.content) ? ev.content : [];
    return blocks.filter((b) => b && typeof b.text === "string").map((b) => b.text).join("");
  }
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
      const ev = page.events.find((e) => e.event_type === REQUESTED && idOf(e) === a.approval_id);
      if (ev) {
        const fresh = row(ev, page);
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

  /// One row of the timeline.
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
    const cls = "ev" + (isError(ev) ? " error" : t === "result" ? " result" : tool ? " tool" : "");
    const label = t === "message" ? (ev.role || "message") : t === "pre_tool" ? "tool call" : t === "post_tool" ? "tool result" : t.replace(/_/g, " ");
    const body = [];
    if (t === "message") {
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
    return h("li", { class: cls, "data-id": String(ev.id), "data-seq": String(ev.seq) },
      h("div", { class: "ev-head" }, h("span", { class: "mono" }, "#" + ev.seq), h("span", { class: "ev-type" }, label),
        AOF.time(ev.timestamp),
        // Live frames carry no run id; show it where a run begins, when known.
        t === "run_start" && ev.run_id ? h("span", { class: "mono" }, ev.run_id) : null),
      body);
  }

  AOF.page("session", async (id) => {
    const list = $("timeline");
    const events = [];
    let end = 0; // the window is events[max(0, end - WINDOW) .. end)
    let session = null;
    let lastId = null;
    const page = { list, events };
    const draw = (ev) => row(ev, page);
    /// Approval events keep `decided` and the nav count current.
    function note(ev) {
      if (ev.event_type === RESOLVED) settle(resolvedOf(ev), page);
      else if (ev.event_type === REQUESTED) AOF.approvalsChanged && AOF.approvalsChanged();
    }

    function following() { return end === events.length; }

    function renderWindow() {
      const start = Math.max(0, end - WINDOW);
      replace(list, events.slice(start, end).map(draw));
      syncPager();
    }
    function syncPager() {
      const start = Math.max(0, end - WINDOW);
      $("tl-older").hidden = start === 0;
      $("tl-range").textContent = events.length ? `Showing ${start + 1}–${end} of ${events.length}` : "";
      const newer = events.length - end;
      $("tl-newer").hidden = newer === 0;
      $("tl-latest").textContent = newer ? `Jump to latest (${newer} newer)` : "Jump to latest";
      $("tl-empty").hidden = events.length > 0;
    }
    $("tl-earlier").addEventListener("click", () => {
      end = Math.max(Math.min(WINDOW, events.length), end - STEP);
      renderWindow();
    });
    $("tl-latest").addEventListener("click", () => {
      end = events.length;
      renderWindow();
      list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "nearest" });
    });

    function push(ev) {
      const tail = following();
      events.push(ev);
      lastId = ev.id;
      if (ev.event_type === "result") renderResult(ev);
      if (tail) {
        end = events.length;
        list.append(draw(ev));
        while (list.children.length > WINDOW) list.firstElementChild.remove();
      }
      syncPager();
      note(ev);
    }

    function renderResult(ev) {
      const box = $("result");
      const data = ev.result_data || {};
      const usage = data.usage || null;
      const cost = data.total_cost_usd ?? data.cost_usd ?? null;
      const facts = [];
      if (cost != null) facts.push(["Cost", "$" + Number(cost).toFixed(4)]);
      for (const k of ["num_turns", "duration_ms"]) if (data[k] != null) facts.push([k.replace("_", " "), String(data[k])]);
      if (usage && typeof usage === "object") for (const [k, v] of Object.entries(usage)) if (typeof v !== "object") facts.push([k.replace(/_/g, " "), String(v)]);
      replace(box,
        ev.result_text ? h("p", { class: "ev-body" }, ev.result_text) : h("p", { class: "muted" }, "(no text)"),
        facts.length ? h("dl", { class: "facts", "aria-label": "Usage" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])) : null);
    }

    function renderSession(s) {
      session = s;
      $("session-title").textContent = "Session " + s.session_id;
      const parent = s.parent_session_id ? AOF.sessionLink(s.parent_session_id) : h("span", { class: "muted" }, "—");
      const agent = s.agent_name ? AOF.link("/ui/agents/" + encodeURIComponent(s.agent_name), s.agent_name) : h("span", { class: "muted" }, "—");
      replace($("session-facts"),
        h("dt", {}, "Status"), h("dd", { id: "session-status" }, AOF.badge(s.status)),
        h("dt", {}, "Agent"), h("dd", {}, agent),
        h("dt", {}, "Created"), h("dd", {}, AOF.time(s.created_at)),
        h("dt", {}, "Parent"), h("dd", {}, parent),
        h("dt", {}, "Host"), h("dd", {}, s.hostname || "—"));
      $("stop").hidden = !ACTIVE.includes(s.status) || s.status === "stopping";
      $("followup").hidden = !RESUMABLE.includes(s.status);
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
    // Every stored event, a page at a time; the window shows the newest.
    for (;;) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (lastId != null) q.set("after", String(lastId));
      const page = (await api("GET", `/sessions/${encodeURIComponent(id)}/events?${q}`)).events;
      for (const e of page) {
        events.push(Object.assign({}, e));
        lastId = e.id;
        if (e.event_type === "result") renderResult(e);
        if (e.event_type === RESOLVED) decided.set(idOf(e), resolvedOf(e));
      }
      if (page.length < PAGE) break;
    }
    end = events.length;
    await AOF.meReady; // a viewer's approval rows have no buttons
    renderWindow();

    // Live from the last stored event on: the feed resumes after it, so nothing is
    // missed between the fetch and the subscription, and nothing is shown twice.
    new AOF.Feed({
      sessionId: id,
      lastId: lastId ?? 0,
      onState: AOF.liveState($("live")),
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
