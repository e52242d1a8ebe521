// Agents: list, view, create/edit form with errors next to their field, enable/disable,
// delete with confirmation.
"use strict";

(function () {
  const { h, $, api, replace } = AOF;
  const enc = encodeURIComponent;

  async function setStatus(a, done) {
    const status = a.status === "active" ? "inactive" : "active";
    try {
      await api("PATCH", `/agents/${enc(a.name)}/status`, { status });
      done();
    } catch (e) { AOF.banner(e.message); }
  }
  async function remove(a, done) {
    if (!(await AOF.confirm(`Delete ${a.name}?`, "The agent's folder is removed. Sessions that used it stay.", "Delete"))) return;
    try {
      await api("DELETE", `/agents/${enc(a.name)}`);
      done();
    } catch (e) { AOF.banner(e.message); }
  }
  const toggleLabel = (a) => (a.status === "active" ? "Disable" : "Enable");
  const stateBadge = (a) => AOF.badge(a.status === "active" ? "active" : "inactive");

  AOF.page("agents", async () => {
    const box = $("agents");
    async function load() {
      let agents;
      try { agents = await api("GET", "/agents"); } catch (e) { return AOF.fail(box, e); }
      if (!agents.length) {
        return replace(box, AOF.empty("No agents yet. Create one here, or put agent folders in place with `aof agents apply DIR`.", AOF.link("/ui/agents/new", "Create an agent")));
      }
      replace(box, AOF.table("Agents", ["Name", "Description", "Tags", "State", "Actions"], agents.map((a) =>
        h("tr", { "data-agent": a.name },
          h("td", {}, AOF.link("/ui/agents/" + enc(a.name), a.name)),
          h("td", {}, a.description),
          h("td", {}, AOF.tags(a.tags)),
          h("td", {}, stateBadge(a)),
          h("td", {}, h("div", { class: "actions" },
            AOF.link(`/ui/agents/${enc(a.name)}/edit`, "Edit", "btn"),
            h("button", { class: "btn", type: "button", "aria-label": `${toggleLabel(a)} ${a.name}`, onclick: () => setStatus(a, load) }, toggleLabel(a)),
            h("button", { class: "btn danger", type: "button", "aria-label": `Delete ${a.name}`, onclick: () => remove(a, load) }, "Delete")))))));
    }
    await load();
  });

  AOF.page("agent", async (name) => {
    const box = $("agent");
    async function load() {
      let a;
      try { a = await api("GET", `/agents/${enc(name)}?raw=true`); } catch (e) {
        if (e.status === 404) { $("agent-title").textContent = "Agent not found"; return replace(box, AOF.empty(`There is no agent ${name}.`, AOF.link("/ui/agents", "See all agents"))); }
        return AOF.fail(box, e);
      }
      $("agent-title").textContent = a.name;
      replace($("agent-actions"),
        AOF.link(`/ui/sessions/new?agent=${enc(a.name)}`, "Start a session", "btn primary"),
        AOF.link(`/ui/agents/${enc(a.name)}/edit`, "Edit", "btn"),
        h("button", { class: "btn", type: "button", onclick: () => setStatus(a, load) }, toggleLabel(a)),
        h("button", { class: "btn danger", type: "button", onclick: () => remove(a, () => location.assign("/ui/agents")) }, "Delete"));
      const json = (v) => (v ? h("pre", {}, JSON.stringify(v, null, 2)) : h("span", { class: "muted" }, "—"));
      replace(box, h("dl", { class: "facts" },
        h("dt", {}, "State"), h("dd", {}, stateBadge(a)),
        h("dt", {}, "Description"), h("dd", {}, a.description),
        h("dt", {}, "Tags"), h("dd", {}, AOF.tags(a.tags)),
        h("dt", {}, "Capabilities"), h("dd", {}, AOF.tags(a.capabilities)),
        h("dt", {}, "System prompt"), h("dd", {}, a.system_prompt ? h("pre", {}, a.system_prompt) : h("span", { class: "muted" }, "—")),
        h("dt", {}, "MCP servers"), h("dd", {}, json(a.mcp_servers)),
        h("dt", {}, "Demands"), h("dd", {}, json(a.demands)),
        h("dt", {}, "Executor"), h("dd", {}, json(a.executor)),
        h("dt", {}, "Modified"), h("dd", {}, AOF.time(a.modified_at))));
    }
    await load();
  });

  const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;
  const JSON_FIELDS = ["mcp_servers", "demands", "executor"];

  /// Which field a server message is about, so the error lands next to it.
  function fieldFor(msg) {
    if (/\bname\b/i.test(msg) && !/server/i.test(msg)) return "name";
    if (/description/i.test(msg)) return "description";
    if (/mcp|ref\b/i.test(msg)) return "mcp_servers";
    if (/executor|kind/i.test(msg)) return "executor";
    if (/demand/i.test(msg)) return "demands";
    if (/tag/i.test(msg)) return "tags";
    return null;
  }

  async function agentForm(name) {
    const editing = !!name;
    const form = $("agent-form");
    const f = (id) => $(id);
    if (editing) {
      $("form-title").textContent = "Edit agent " + name;
      f("name").value = name;
      f("name").readOnly = true;
      $("cancel").setAttribute("href", "/ui/agents/" + enc(name));
      let a;
      try { a = await api("GET", `/agents/${enc(name)}?raw=true`); } catch (e) { return AOF.fail(form, e); }
      f("description").value = a.description || "";
      f("tags").value = (a.tags || []).join(", ");
      f("system_prompt").value = a.system_prompt || "";
      for (const k of JSON_FIELDS) f(k).value = a[k] ? JSON.stringify(a[k], null, 2) : "";
    }
    f(editing ? "description" : "name").focus();

    function clear() {
      for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
      for (const el of form.querySelectorAll(".err")) el.hidden = true;
    }
    function show(field, msg) {
      if (field) AOF.fieldError(f(field), $(field + "-err"), msg);
      else { $("form-err").textContent = msg; $("form-err").hidden = false; }
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear();
      const errors = [];
      const nm = f("name").value.trim();
      if (!editing) {
        if (!nm) errors.push(["name", "A name is required."]);
        else if (nm.length > 60) errors.push(["name", "At most 60 characters."]);
        else if (!NAME.test(nm)) errors.push(["name", "Use letters, digits, - and _ only, starting with a letter or digit."]);
      }
      if (!f("description").value.trim()) errors.push(["description", "A description is required."]);
      const body = {
        description: f("description").value.trim(),
        tags: f("tags").value.split(",").map((t) => t.trim()).filter(Boolean),
        system_prompt: f("system_prompt").value,
      };
      for (const k of JSON_FIELDS) {
        const text = f(k).value.trim();
        if (!text) { body[k] = editing ? {} : null; continue; }
        try {
          const v = JSON.parse(text);
          if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("must be a JSON object");
          body[k] = v;
        } catch (e) { errors.push([k, "Not a JSON object: " + e.message]); }
      }
      if (errors.length) {
        // Focus lands on the first bad field; every message sits next to its field.
        for (const [k, m] of errors.reverse()) show(k, m);
        return;
      }
      const btn = $("save");
      btn.disabled = true;
      try {
        if (editing) {
          await api("PATCH", `/agents/${enc(name)}`, body);
          location.assign("/ui/agents/" + enc(name));
        } else {
          for (const k of JSON_FIELDS) if (body[k] === null) delete body[k];
          await api("POST", "/agents", Object.assign({ name: nm }, body));
          location.assign("/ui/agents/" + enc(nm));
        }
      } catch (e) {
        btn.disabled = false;
        show(e.status === 409 && /exists/i.test(e.message) ? "name" : fieldFor(e.message), e.message);
      }
    });
  }

  AOF.page("agent-new", () => agentForm(null));
  AOF.page("agent-edit", (name) => agentForm(name));
})();
