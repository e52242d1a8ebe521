// Folds a session's raw events into what a person reads: a conversation. Streaming
// `message_delta`s grow one assistant row that becomes the stored message when it
// arrives; `usage`, `result` and the run's end fold into one card per run; a
// `pre_tool` and its `post_tool` share a row. Everything else is one row per event.
// The raw view (one row per event, nothing folded) is the same class with `raw` set.
"use strict";

(function () {
  const ENDS = ["run_completed", "run_failed", "run_stopped"];

  /// The tool call id a pre_tool names (model_api `tool_call`, Claude `tool_use`) or a
  /// post_tool answers (`tool_call_id`, `tool_use_id`); null when the executor gave none.
  function callId(ev, post) {
    for (const b of Array.isArray(ev.content) ? ev.content : []) {
      if (!b || typeof b !== "object") continue;
      const id = post ? b.tool_call_id || b.tool_use_id : b.id;
      if (typeof id === "string" && id) return id;
    }
    return null;
  }

  /// One item: a row of the timeline. `evs` are the events it stands for (the first one
  /// gives the row its id and seq); `kind` picks the renderer.
  function item(kind, ev, extra) {
    return Object.assign({ key: kind + ":" + ev.id, kind, evs: [ev], ev }, extra || {});
  }

  AOF.Fold = class {
    constructor(raw) {
      this.raw = !!raw;
      this.items = [];
      this.runs = new Map(); // run key → { key, run_id, start, usage, result, end, card, stream, tools }
      this.order = []; // run keys in the order they began
      this.cur = null;
      this.live = 0;
    }

    /// The run an event belongs to. Stored events carry `run_id`; live frames do not,
    /// so they belong to the run begun last (a live `run_start` begins a new one).
    runOf(ev) {
      let key = ev.run_id || null;
      if (ev.event_type === "run_start" && !key) key = "live-" + ++this.live;
      if (!key) key = this.cur || "none";
      this.cur = key;
      let r = this.runs.get(key);
      if (!r) {
        r = { key, run_id: ev.run_id || null, start: null, usage: null, result: null, end: null, card: null, stream: null, tools: [], lastText: null };
        this.runs.set(key, r);
        this.order.push(key);
      }
      if (ev.run_id && !r.run_id) r.run_id = ev.run_id;
      return r;
    }

    /// Takes one event; answers the items it created (`fresh`) or changed (`changed`).
    add(ev) {
      const out = { fresh: [], changed: [] };
      const push = (it) => { this.items.push(it); out.fresh.push(it); return it; };
      const touch = (it) => { if (!out.changed.includes(it)) out.changed.push(it); };
      const t = ev.event_type;
      const r = this.runOf(ev);
      if (t === "run_start") r.start = ev;
      if (t === "usage") r.usage = ev;
      if (t === "result") r.result = ev;
      if (ENDS.includes(t)) r.end = ev;
      if (this.raw) {
        push(item("event", ev));
        return out;
      }
      if (t === "message_delta") {
        const s = r.stream;
        const text = textOf(ev);
        if (s) {
          s.evs.push(ev);
          s.text += text;
          touch(s);
        } else {
          r.stream = push(item("stream", ev, { text, run: r }));
        }
      } else if (t === "message" && r.stream && (ev.role || "assistant") === "assistant") {
        // The full message replaces the text streamed so far, in the same row.
        const s = r.stream;
        r.stream = null;
        s.kind = "event";
        s.ev = ev;
        s.evs.push(ev);
        touch(s);
      } else if (t === "usage" || t === "result" || ENDS.includes(t)) {
        if (t !== "usage" || r.card) this.card(r, ev, push, touch);
        if (ENDS.includes(t) && r.stream) {
          r.stream.done = true; // the run ended mid-stream: the text stays, marked
          touch(r.stream);
          r.stream = null;
        }
      } else if (t === "pre_tool") {
        r.tools.push(push(item("tool", ev, { pre: ev, post: null })));
      } else if (t === "post_tool") {
        const id = callId(ev, true);
        let i = id ? r.tools.findIndex((x) => callId(x.pre, false) === id) : -1;
        // No ids: the oldest open call of the same tool.
        if (i < 0 && !id) i = r.tools.findIndex((x) => !ev.tool_name || x.pre.tool_name === ev.tool_name);
        if (i >= 0) {
          const it = r.tools.splice(i, 1)[0];
          it.post = ev;
          it.evs.push(ev);
          touch(it);
        } else {
          push(item("tool", ev, { pre: null, post: ev }));
        }
      } else {
        push(item("event", ev));
      }
      if (t === "message" && (ev.role || "assistant") === "assistant") r.lastText = textOf(ev);
      return out;
    }

    /// The run's card: made by its result or its end (usage alone makes none, or a
    /// card would sit mid-run), then kept current.
    card(r, ev, push, touch) {
      if (r.card) {
        r.card.evs.push(ev);
        touch(r.card);
      } else {
        r.card = push(item("card", ev, { run: r }));
      }
    }

    /// Numbers of one run: tokens in/out, cost, duration (seconds); null when unknown.
    static usage(r) {
      const u = (r.usage && r.usage.result_data && r.usage.result_data.usage) || null;
      const d = (r.result && r.result.result_data) || {};
      const ru = d.usage && typeof d.usage === "object" ? d.usage : {};
      const num = (...vs) => { for (const v of vs) if (typeof v === "number" && isFinite(v)) return v; return null; };
      const out = {
        input: num(u && u.input_tokens, ru.input_tokens, ru.prompt_tokens),
        output: num(u && u.output_tokens, ru.output_tokens, ru.completion_tokens),
        cost: num(u && u.cost_usd, d.total_cost_usd, d.cost_usd),
        seconds: null,
      };
      const t0 = r.start ? Date.parse(r.start.timestamp) : NaN;
      const t1 = r.end ? Date.parse(r.end.timestamp) : NaN;
      if (!isNaN(t0) && !isNaN(t1) && t1 >= t0) out.seconds = (t1 - t0) / 1000;
      else out.seconds = num(r.usage && r.usage.result_data && r.usage.result_data.elapsed_seconds, typeof d.duration_ms === "number" ? d.duration_ms / 1000 : null);
      return out;
    }

    /// Sums over every run of the session.
    totals() {
      const t = { runs: 0, input: null, output: null, cost: null, seconds: null };
      const add = (k, v) => { if (v != null) t[k] = (t[k] || 0) + v; };
      for (const key of this.order) {
        const r = this.runs.get(key);
        if (!r.start && !r.end && !r.result && !r.usage) continue;
        t.runs++;
        const u = AOF.Fold.usage(r);
        add("input", u.input); add("output", u.output); add("cost", u.cost); add("seconds", u.seconds);
      }
      return t;
    }
  };

  function textOf(ev) {
    const blocks = Array.isArray(ev.content) ? ev.content : [];
    return blocks.filter((b) => b && typeof b.text === "string").map((b) => b.text).join("");
  }
  AOF.textOf = textOf;

  /// "1.2 s", "3 min 4 s".
  AOF.duration = (s) => {
    if (s == null) return "—";
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
    const m = Math.floor(s / 60);
    return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  };
})();
