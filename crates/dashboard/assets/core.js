// AOF dashboard core: DOM helpers, the API client, relative times, the live SSE feed
// with resume, login/logout. Page scripts register with AOF.page(name, init).
// Everything is built with DOM calls (never innerHTML with data), so API text cannot
// inject markup.
"use strict";

(function () {
  // Uncaught errors are collected so the browser tests can assert there were none.
  window.__aofErrors = [];
  window.addEventListener("error", (e) => window.__aofErrors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => window.__aofErrors.push("unhandled: " + String(e.reason)));
  const origError = console.error;
  console.error = function (...args) { window.__aofErrors.push(args.map(String).join(" ")); origError.apply(console, args); };

  const AOF = (window.AOF = { pages: {}, stats: { feedOpens: 0, feedDrops: 0 } });
  /// Registers a page's init; `boot` runs the one named by <body data-page>.
  AOF.page = (name, init) => { AOF.pages[name] = init; };

  // ---- DOM -------------------------------------------------------------------------
  AOF.h = function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  };
  const h = AOF.h;
  AOF.$ = (id) => document.getElementById(id);
  AOF.replace = (el, ...kids) => { el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false)); };

  AOF.badge = (s) => h("span", { class: "badge " + (s || ""), text: s ? s.replace(/_/g, " ") : "—" });
  AOF.tags = (list) => (list && list.length ? list.map((t) => h("span", { class: "tag", text: t })) : [h("span", { class: "muted", text: "—" })]);
  AOF.empty = (text, link) => h("p", { class: "empty" }, text, link ? [" ", link] : null);
  AOF.link = (href, text, cls) => h("a", { href, class: cls }, text);
  AOF.sessionLink = (id) => h("a", { href: "/ui/sessions/" + encodeURIComponent(id), class: "mono" }, id);

  /// A table in a focusable scroll region (narrow screens scroll it sideways).
  AOF.table = (label, headers, rows) =>
    h("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" },
      h("table", {},
        h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, rows)));

  /// Runs `fn` (which rebuilds part of the page) and puts the focus back on the control
  /// with the same id, or on `fallback` if that one is now disabled: a keyboard user
  /// paging with Enter stays on the pager.
  AOF.keepFocus = (fn, fallback) => {
    const id = document.activeElement && document.activeElement.id;
    fn();
    if (!id) return;
    let el = document.getElementById(id);
    if (el && el.disabled && fallback) el = document.getElementById(fallback(id));
    if (el && !el.disabled && el !== document.activeElement) el.focus();
  };
  AOF.otherPager = (id) => (id === "page-next" ? "page-prev" : "page-next");

  /// The Previous / "Page N" / Next bar of a list paged by the API's `next_cursor`.
  /// `pg` holds `cursor` (null: the first page), `trail` (the cursors of the pages before)
  /// and `next`; `go` loads the page `pg.cursor` names. `hideSingle`: no bar when all
  /// fits on one page.
  AOF.cursorPages = () => ({ cursor: null, trail: [], next: null });
  AOF.pager = (pg, go, shown, hideSingle) => AOF.keepFocus(() => AOF.replace(AOF.$("pager"),
    hideSingle && !pg.trail.length && !pg.next ? [] : [
      h("button", { class: "btn", type: "button", id: "page-prev", disabled: !pg.trail.length, onclick: () => { pg.cursor = pg.trail.pop() || null; go(); } }, "Previous"),
      h("span", { id: "page-no", "aria-live": "polite" }, `Page ${pg.trail.length + 1}` + (shown ? ` · ${shown} shown` : "")),
      h("button", { class: "btn", type: "button", id: "page-next", disabled: !pg.next, onclick: () => { pg.trail.push(pg.cursor); pg.cursor = pg.next; go(); } }, "Next"),
    ]), AOF.otherPager);

  AOF.banner = (text) => {
    const b = AOF.$("banner");
    if (!b) return;
    b.hidden = !text;
    b.textContent = text || "";
  };

  /// A modal yes/no question; resolves true only on the confirm button.
  AOF.confirm = (title, text, yes) => new Promise((resolve) => {
    const dlg = h("dialog", { "aria-labelledby": "dlg-title" },
      h("h2", { id: "dlg-title" }, title), h("p", {}, text),
      h("form", { method: "dialog", class: "actions" },
        h("button", { class: "btn danger", value: "yes", id: "dlg-yes" }, yes),
        h("button", { class: "btn", value: "no", id: "dlg-no", autofocus: true }, "Cancel")));
    dlg.addEventListener("close", () => { resolve(dlg.returnValue === "yes"); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  });

  // ---- times -----------------------------------------------------------------------
  function rel(ms) {
    const s = Math.round((Date.now() - ms) / 1000);
    const a = Math.abs(s);
    const fmt = (n, u) => (s >= 0 ? `${n} ${u} ago` : `in ${n} ${u}`);
    if (a < 10) return "just now";
    if (a < 60) return fmt(a, "s");
    if (a < 3600) return fmt(Math.floor(a / 60), "min");
    if (a < 86400) return fmt(Math.floor(a / 3600), "h");
    return fmt(Math.floor(a / 86400), "d");
  }
  /// `<time>` showing "3 min ago", the absolute time on hover.
  AOF.time = (iso) => {
    if (!iso) return h("span", { class: "muted", text: "—" });
    const ms = Date.parse(iso);
    if (isNaN(ms)) return h("span", { text: iso });
    return h("time", { datetime: iso, title: new Date(ms).toLocaleString(), "data-ms": String(ms) }, rel(ms));
  };
  setInterval(() => {
    for (const t of document.querySelectorAll("time[data-ms]")) t.textContent = rel(Number(t.dataset.ms));
  }, 15000);

  // ---- API -------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super(AOF.detail(body) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
      this.body = body;
    }
  }
  AOF.ApiError = ApiError;

  /// The human text of an error body: `detail` string, FastAPI list, or object.
  AOF.detail = (body) => {
    if (!body) return "";
    const d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((i) => (i.loc ? i.loc.filter((x) => x !== "body").join(".") + ": " : "") + i.msg).join("; ");
    if (d && typeof d === "object") return d.message || JSON.stringify(d);
    return "";
  };

  AOF.api = async function (method, path, body) {
    const opts = { method, credentials: "same-origin", headers: { accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { detail: "Cannot reach the coordinator: " + e.message });
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = { detail: text }; }
    if (resp.status === 401 && document.body.dataset.page !== "login") {
      AOF.toLogin();
      throw new ApiError(401, json);
    }
    if (!resp.ok) throw new ApiError(resp.status, json);
    return json;
  };
  AOF.toLogin = () => {
    const next = location.pathname + location.search;
    location.assign("/ui/login?next=" + encodeURIComponent(next));
  };
  /// Shows an error in a page region instead of data.
  AOF.fail = (el, e) => AOF.replace(el, h("p", { class: "err", role: "alert", text: e.message || String(e) }));

  // ---- live feed -------------------------------------------------------------------
  const KINDS = ["init", "session_created", "session_updated", "session_deleted", "event", "run_failed", "resync"];

  /// The SSE feed, reconnecting on its own and resuming after the last frame seen
  /// (`last_event_id`), so a dropped connection loses and repeats nothing.
  /// opts: sessionId, lastId (resume after this cursor), init (want the init frame),
  /// onFrame(kind, data, id), onState(connected).
  AOF.Feed = class {
    constructor(opts) {
      this.opts = opts;
      this.lastId = opts.lastId == null ? null : Number(opts.lastId);
      this.delay = 500;
      this.open();
      // Free the connection when the page goes away (or into the back/forward cache):
      // browsers allow only six per host, and a kept page would hold its stream.
      window.addEventListener("pagehide", () => this.close());
      window.addEventListener("pageshow", (e) => { if (e.persisted) this.open(); });
    }
    url() {
      const q = new URLSearchParams();
      if (this.opts.sessionId) q.set("session_id", this.opts.sessionId);
      if (this.lastId != null) q.set("last_event_id", String(this.lastId));
      else if (!this.opts.init) q.set("include_init", "false");
      return "/sse/sessions?" + q;
    }
    open() {
      const es = (this.es = new EventSource(this.url(), { withCredentials: true }));
      es.onopen = () => {
        AOF.stats.feedOpens++;
        this.delay = 500;
        this.opts.onState && this.opts.onState(true);
      };
      for (const k of KINDS) {
        es.addEventListener(k, (m) => {
          const id = m.lastEventId ? Number(m.lastEventId) : null;
          // The init frame carries the head cursor; resuming from it skips nothing.
          if (id != null && this.lastId != null && id <= this.lastId && k !== "init") return;
          if (id != null) this.lastId = id;
          let data = null;
          try { data = JSON.parse(m.data); } catch (_) { return; }
          // Fell too far behind: reconnect from the last cursor; the store replays it.
          if (k === "resync") { this.reconnect(); return; }
          this.opts.onFrame(k, data, id);
        });
      }
      es.onerror = () => {
        // Take over from EventSource's own retry: ours always sends the last cursor.
        AOF.stats.feedDrops++;
        this.opts.onState && this.opts.onState(false);
        this.reconnect();
      };
    }
    reconnect() {
      this.es.close();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    }
    close() { clearTimeout(this.timer); this.es.close(); }
  };

  /// Live indicator text for a feed's state.
  AOF.liveState = (el) => (on) => {
    if (!el) return;
    el.classList.toggle("on", on);
    el.textContent = on ? "Live" : "Reconnecting…";
  };

  // ---- pending approvals in the nav ----------------------------------------------------
  // Polled (every page has the nav, not every page holds a feed, and a browser allows
  // only six streams per host); pages that see an approval event call AOF.approvalsChanged
  // so the count moves at once.
  const APPROVALS_POLL_MS = 5000;
  const APPROVALS_MAX = 100;
  let approvalsTimer = null;
  async function approvalsBadge() {
    clearTimeout(approvalsTimer);
    const count = AOF.$("nav-approvals-count");
    if (!count) return;
    try {
      const out = await AOF.api("GET", `/approvals?status=pending&limit=${APPROVALS_MAX}`);
      const n = (out && out.approvals ? out.approvals : []).length;
      count.hidden = n === 0;
      AOF.replace(count, n >= APPROVALS_MAX ? `${APPROVALS_MAX}+` : String(n), h("span", { class: "visually-hidden" }, " pending"));
      count.dataset.count = String(n);
    } catch (_) {
      // A coordinator without approvals (404) or a hiccup: no badge, no error.
      count.hidden = true;
    }
    if (!document.hidden) approvalsTimer = setTimeout(approvalsBadge, APPROVALS_POLL_MS);
  }
  AOF.approvalsChanged = () => approvalsBadge();
  document.addEventListener("visibilitychange", () => { if (!document.hidden) approvalsBadge(); });

  // ---- who am I, login, logout -------------------------------------------------------
  async function who() {
    const box = AOF.$("who");
    let me;
    try { me = await AOF.api("GET", "/auth/me"); } catch (_) { return; }
    AOF.me = me;
    // The audit log is for admins (auth off: everyone is one).
    const audit = AOF.$("nav-audit");
    if (audit) audit.hidden = !(me && me.role === "admin");
    if (!me || !me.auth_enabled || !box) return;
    AOF.replace(box, h("span", { text: me.role + (me.subject ? " · " + me.subject : "") }),
      h("button", { class: "btn", type: "button", id: "logout", onclick: async () => {
        try { await AOF.api("POST", "/auth/logout", {}); } finally { location.assign("/ui/login"); }
      } }, "Log out"));
  }

  function safeNext() {
    const n = new URLSearchParams(location.search).get("next") || "/ui/";
    // Only our own pages: never bounce to another origin.
    return n.startsWith("/ui/") || n === "/ui" ? n : "/ui/";
  }

  AOF.page("login", () => {
    const form = AOF.$("login-form"), key = AOF.$("key"), err = AOF.$("key-err");
    key.focus();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      key.removeAttribute("aria-invalid");
      if (!key.value.trim()) return AOF.fieldError(key, err, "Enter an API key.");
      try {
        await AOF.api("POST", "/auth/login", { key: key.value.trim() });
        location.assign(safeNext());
      } catch (e) {
        const msg = e.code === "auth_disabled" ? "Auth is off on this coordinator: no login needed." : e.status === 401 ? "That key is not valid." : e.message;
        AOF.fieldError(key, err, msg);
      }
    });
  });

  AOF.fieldError = (input, errEl, msg) => {
    input.setAttribute("aria-invalid", "true");
    errEl.textContent = msg;
    errEl.hidden = false;
    input.focus();
  };

  function boot() {
    const page = document.body.dataset.page;
    if (page !== "login" && page !== "not-found") {
      // Pages that show role-dependent controls await this (it never rejects).
      AOF.meReady = who();
      approvalsBadge();
    }
    const init = AOF.pages[page];
    if (init) {
      Promise.resolve()
        .then(() => init(document.body.dataset.arg || ""))
        .catch((e) => AOF.banner(e.message || String(e)));
    }
  }
  document.addEventListener("DOMContentLoaded", boot);
})();

