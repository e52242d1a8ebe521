//! Database URLs with their passwords masked, for logs and error messages.

use std::sync::LazyLock;

use regex::Regex;

/// `password=…` (and `sslpassword=…`) as a URL query parameter or a key=value
/// connection-string pair, value unquoted or in libpq's single quotes.
static PASSWORD_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(^|[?&;\s])([a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]*)")
        .expect("valid regex")
});

/// `url` with every password it carries replaced by `***`: the `user:pass@` of a URL,
/// a `?password=` / `&password=` query parameter, a `password=` key=value pair. Errs
/// on masking too much: everything between the user's `:` and the host's `@` goes.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://").map(|i| i + 3) {
        let rest = &out[scheme_end..];
        // The userinfo ends at the last `@` before the query (a raw `@` or `/` in the
        // password comes before it); a password with a raw `?` pushes it further out.
        let ends = [rest.find(['?', '#']), Some(rest.len())];
        let at = ends
            .into_iter()
            .flatten()
            .find_map(|end| rest[..end].rfind('@'));
        if let Some(at) = at {
            if let Some(colon) = rest[..at].find(':') {
                out.replace_range(scheme_end + colon + 1..scheme_end + at, "***");
            }
        }
    }
    PASSWORD_PARAM.replace_all(&out, "$1$2***").into_owned()
}
