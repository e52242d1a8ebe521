//! The pages: which URL is which page, and the HTML shell each one gets. The shell holds
//! the page's static parts (headings, forms, empty containers); the page's script fills
//! in data from the API and keeps it live.

/// Bumped into asset URLs so a new binary never runs against a cached old script.
const VERSION: &str = env!("CARGO_PKG_VERSION");

const LAYOUT: &str = include_str!("../assets/layout.html");

/// One dashboard page. Path arguments (agent name, session id) are carried to the
/// script in a `data-arg` attribute, HTML-escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Overview,
    Agents,
    AgentNew,
    Agent(String),
    AgentEdit(String),
    Sessions,
    SessionNew,
    Session(String),
    Runs,
    Runners,
    Audit,
    Login,
    NotFound,
}

impl Page {
    /// One of each, for tests.
    pub const ALL: &'static [Page] = &[
        Page::Overview,
        Page::Agents,
        Page::AgentNew,
        Page::Sessions,
        Page::SessionNew,
        Page::Runs,
        Page::Runners,
        Page::Audit,
        Page::Login,
        Page::NotFound,
    ];

    /// `path` is what follows `/ui/` (no leading slash).
    pub fn from_path(path: &str) -> Option<Page> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let arg = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(match parts.as_slice() {
            [""] => Page::Overview,
            ["agents"] => Page::Agents,
            ["agents", "new"] => Page::AgentNew,
            ["agents", name] => Page::Agent(arg(name)?),
            ["agents", name, "edit"] => Page::AgentEdit(arg(name)?),
            ["sessions"] => Page::Sessions,
            ["sessions", "new"] => Page::SessionNew,
            ["sessions", id] => Page::Session(arg(id)?),
            ["runs"] => Page::Runs,
            ["runners"] => Page::Runners,
            ["audit"] => Page::Audit,
            ["login"] => Page::Login,
            _ => return None,
        })
    }

    /// (data-page id, title, script, main HTML, nav section). The session page's
    /// script also needs `fold.js`, loaded before it (`extra_scripts`).
    fn parts(
        &self,
    ) -> (
        &'static str,
        String,
        &'static str,
        &'static str,
        &'static str,
    ) {
        use Page::*;
        match self {
            Overview => (
                "overview",
                "Overview".into(),
                "overview.js",
                include_str!("../assets/pages/overview.html"),
                "overview",
            ),
            Agents => (
                "agents",
                "Agents".into(),
                "agents.js",
                include_str!("../assets/pages/agents.html"),
                "agents",
            ),
            AgentNew => (
                "agent-new",
                "New agent".into(),
                "agents.js",
                include_str!("../assets/pages/agent-form.html"),
                "agents",
            ),
            Agent(n) => (
                "agent",
                format!("Agent {n}"),
                "agents.js",
                include_str!("../assets/pages/agent.html"),
                "agents",
            ),
            AgentEdit(n) => (
                "agent-edit",
                format!("Edit agent {n}"),
                "agents.js",
                include_str!("../assets/pages/agent-form.html"),
                "agents",
            ),
            Sessions => (
                "sessions",
                "Sessions".into(),
                "sessions.js",
                include_str!("../assets/pages/sessions.html"),
                "sessions",
            ),
            SessionNew => (
                "session-new",
                "Start a session".into(),
                "sessions.js",
                include_str!("../assets/pages/session-new.html"),
                "sessions",
            ),
            Session(id) => (
                "session",
                format!("Session {id}"),
                "timeline.js",
                include_str!("../assets/pages/session.html"),
                "sessions",
            ),
            Runs => (
                "runs",
                "Runs".into(),
                "fleet.js",
                include_str!("../assets/pages/runs.html"),
                "runs",
            ),
            Runners => (
                "runners",
                "Runners".into(),
                "fleet.js",
                include_str!("../assets/pages/runners.html"),
                "runners",
            ),
            Audit => (
                "audit",
                "Audit log".into(),
                "audit.js",
                include_str!("../assets/pages/audit.html"),
                "audit",
            ),
            Login => (
                "login",
                "Log in".into(),
                "core.js",
                include_str!("../assets/pages/login.html"),
                "",
            ),
            NotFound => (
                "not-found",
                "Not found".into(),
                "core.js",
                include_str!("../assets/pages/not-found.html"),
                "",
            ),
        }
    }

    /// Scripts the page script builds on, in load order (`defer` keeps it).
    fn extra_scripts(&self) -> &'static [&'static str] {
        match self {
            Page::Session(_) => &["fold.js"],
            _ => &[],
        }
    }

    fn arg(&self) -> &str {
        match self {
            Page::Agent(a) | Page::AgentEdit(a) | Page::Session(a) => a,
            _ => "",
        }
    }

    pub fn render(&self) -> String {
        let (id, title, script, main, section) = self.parts();
        let mut nav = String::new();
        for (key, href, label) in [
            ("overview", "/ui/", "Overview"),
            ("agents", "/ui/agents", "Agents"),
            ("sessions", "/ui/sessions", "Sessions"),
            ("runs", "/ui/runs", "Runs"),
            ("runners", "/ui/runners", "Runners"),
        ] {
            let cur = if key == section {
                " aria-current=\"page\""
            } else {
                ""
            };
            nav.push_str(&format!("<li><a href=\"{href}\"{cur}>{label}</a></li>"));
        }
        // Admins only: core.js shows it once GET /auth/me says admin (the API enforces).
        let cur = if section == "audit" {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<li id=\"nav-audit\" hidden><a href=\"/ui/audit\"{cur}>Audit</a></li>"
        ));
        // Sessions held by a tool call waiting for a person; core.js fills in the count.
        nav.push_str(
            "<li><a href=\"/ui/sessions?status=waiting_approval\" id=\"nav-approvals\">Approvals \
             <span class=\"count\" id=\"nav-approvals-count\" hidden></span></a></li>",
        );
        // The page script is loaded after core.js; the login and 404 pages need only core.
        let page_script = if script == "core.js" {
            String::new()
        } else {
            let mut tags = String::new();
            for s in self.extra_scripts().iter().chain([&script]) {
                tags.push_str(&format!(
                    "<script src=\"/ui/assets/{s}?v={VERSION}\" defer></script>"
                ));
            }
            tags
        };
        LAYOUT
            .replace("{{nav}}", &nav)
            .replace("{{main}}", main)
            .replace("{{page_script}}", &page_script)
            .replace("{{v}}", VERSION)
            .replace("{{page}}", id)
            .replace("{{title}}", &escape(&title))
            .replace("{{arg}}", &escape(self.arg()))
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_pages_and_arguments_are_escaped() {
        assert_eq!(Page::from_path(""), Some(Page::Overview));
        assert_eq!(Page::from_path("agents/"), Some(Page::Agents));
        assert_eq!(Page::from_path("agents/new"), Some(Page::AgentNew));
        assert_eq!(
            Page::from_path("agents/a1/edit"),
            Some(Page::AgentEdit("a1".into()))
        );
        assert_eq!(
            Page::from_path("sessions/s-1"),
            Some(Page::Session("s-1".into()))
        );
        assert_eq!(Page::from_path("nope"), None);
        assert_eq!(Page::from_path("sessions/a/b"), None);
        let html = Page::Session("<x\"y>".into()).render();
        // The folding model loads before the page script that uses it.
        let (fold, tl) = (
            html.find("/ui/assets/fold.js?v=").expect("fold.js"),
            html.find("/ui/assets/timeline.js?v=").expect("timeline.js"),
        );
        assert!(fold < tl);
        assert!(html.contains("data-arg=\"&lt;x&quot;y&gt;\""), "{html}");
        assert!(!html.contains("<x\"y>"));
        assert!(!html.contains("{{"), "unfilled placeholder");
        let agents = Page::Agents.render();
        assert!(agents.contains("<a href=\"/ui/agents\" aria-current=\"page\">"));
        assert!(agents.contains("/ui/assets/agents.js?v="));
        // Every page's nav links the sessions waiting for a person, with a count slot.
        for p in Page::ALL {
            let html = p.render();
            assert!(
                html.contains("href=\"/ui/sessions?status=waiting_approval\" id=\"nav-approvals\"")
                    && html.contains("id=\"nav-approvals-count\" hidden"),
                "{p:?}"
            );
        }
        assert_eq!(Page::from_path("audit"), Some(Page::Audit));
        assert!(Page::Overview
            .render()
            .contains("<li id=\"nav-audit\" hidden><a href=\"/ui/audit\">Audit</a></li>"));
        assert!(Page::Audit.render().contains("/ui/assets/audit.js?v="));
        assert!(Page::Sessions
            .render()
            .contains("<option value=\"waiting_approval\">waiting for approval</option>"));
    }
}
