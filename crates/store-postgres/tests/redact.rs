//! `redact_url`: a database URL as logs and errors show it.

use aof_store_postgres::redact_url;

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
