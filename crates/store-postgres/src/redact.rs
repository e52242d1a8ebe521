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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn every_form_of_password_is_masked() {
        for (url, want) in [
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgresql://u:p%40w@h/db", "postgresql://u:***@h/db"),
            ("postgres://u:p@w/x@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p?w@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=pw&sslmode=disable",
                "postgres://u@h/db?password=***&sslmode=disable",
            ),
            (
                "postgres://u@h/db?sslmode=disable&password=pw",
                "postgres://u@h/db?sslmode=disable&password=***",
            ),
            (
                "postgres://u@h/db?PASSWORD=pw&sslpassword=key",
                "postgres://u@h/db?PASSWORD=***&sslpassword=***",
            ),
            (
                "postgres://u:a@h/db?password=b",
                "postgres://u:***@h/db?password=***",
            ),
            (
                "host=h user=u password=pw dbname=db",
                "host=h user=u password=*** dbname=db",
            ),
            (
                "host=h password = 'p w\\'x' dbname=db",
                "host=h password = *** dbname=db",
            ),
            ("password=pw", "password=***"),
            ("host=h password='unterminated", "host=h password=***"),
            // Nothing to hide: unchanged.
            ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
            (
                "postgres://u@h/db?application_name=a@b",
                "postgres://u@h/db?application_name=a@b",
            ),
            ("postgres://h/db", "postgres://h/db"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
