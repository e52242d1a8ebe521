// The audit log (admins only): GET /audit with its filters, newest first, a page at a
// time through the API's cursor (`before` = the previous page's `next_before`).
// Filters and the cursor live in the URL, so a view can be shared or reloaded.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const LIMIT = 50;
  const TEXT = ["actor", "action", "target", "outcome"];
  const TIMES = ["since", "until"];

  /// `datetime-local` has no zone: it is the browser's local time, sent as UTC.
  const toIso = (v) => { const ms = Date.parse(v); return isNaN(ms) ? null : new Date(ms).toISOString(); };
  const toLocal = (iso) => {
    const d = new Date(Date.parse(iso));
    if (isNaN(d)) return "";
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };

  AOF.page("audit", async () => {
    const fields = Object.fromEntries([...TEXT, ...TIMES].map((k) => [k, $("f-" + k)]));
    const params = new URLSearchParams(location.search);
    for (const k of TEXT) fields[k].value = params.get(k) || "";
    for (const k of TIMES) fields[k].value = params.get(k) ? toLocal(params.get(k)) : "";
    // Cursors of the pages seen, so "Newer" can go back (the API pages one way).
    const trail = [];
    let before = params.get("before") || null;

    function query() {
      const q = new URLSearchParams();
      for (const k of TEXT) if (fields[k].value.trim()) q.set(k, fields[k].value.trim());
      for (const k of TIMES) { const iso = fields[k].value && toIso(fields[k].value); if (iso) q.set(k, iso); }
      return q;
    }

    async function load() {
      const box = $("audit"), err = $("audit-err");
      err.hidden = true;
      const q = query();
      if (before) q.set("before", before);
      history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
      q.set("limit", String(LIMIT));
      let out;
      try {
        out = await api("GET", "/audit?" + q);
      } catch (e) {
        if (e.status === 403) {
          replace($("main"), h("h1", {}, "Audit log"), h("p", { class: "note", id: "admins-only", role: "alert" }, "Admins only: the audit log is shown to admin keys. Log in with one to see it."));
          return;
        }
        err.textContent = e.message;
        err.hidden = false;
        return replace(box);
      }
      const rows = out.entries || [];
      if (!rows.length) {
        replace(box, AOF.empty(before ? "No older entries." : "No entry matches these filters."));
      } else {
        replace(box, AOF.table("Audit entries", ["When", "Actor", "Role", "Action", "Target", "Status", "Request"],
          rows.map((e) => h("tr", { "data-audit": String(e.id) },
            h("td", {}, AOF.time(e.at)),
            h("td", {}, e.actor_name || e.actor_id ? [h("span", { class: "mono" }, e.actor_name || e.actor_id), e.actor_name && e.actor_id ? [h("br"), h("span", { class: "muted mono" }, e.actor_id)] : null] : h("span", { class: "muted" }, e.actor_kind)),
            h("td", {}, e.role || "—"),
            h("td", { class: "mono" }, e.action),
            h("td", { class: "id" }, !e.target ? "—" : /^ses_/.test(e.target) ? AOF.sessionLink(e.target) : e.target),
            h("td", {}, h("span", { class: "badge " + (e.status < 400 ? "finished" : e.status === 401 || e.status === 403 ? "stopping" : "failed") }, String(e.status))),
            h("td", { class: "id" }, e.request_id)))));
      }
      replace($("pager"),
        h("button", { class: "btn", type: "button", id: "audit-newer", disabled: !before, onclick: () => { before = trail.pop() || null; load(); } }, "Newer"),
        h("button", { class: "btn", type: "button", id: "audit-older", disabled: out.next_before == null, onclick: () => { trail.push(before); before = String(out.next_before); load(); } }, "Older"));
    }

    $("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      before = null;
      trail.length = 0;
      load();
    });
    await load();
  });
})();
