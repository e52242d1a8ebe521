//! Output for people and scripts: aligned tables and `KEY  value` blocks on stdout,
//! or JSON with `--json`. No colours, no crate; widths count characters.

use serde_json::Value;

/// `--json`, for the commands that print data.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JsonArg {
    /// Print JSON (the API's shape) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Renders rows under headers, columns padded to the widest cell.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

/// A JSON value as one table cell: strings bare, null as `-`, the rest compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Cells of `fields` from each object.
pub fn rows(items: &[Value], fields: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|it| fields.iter().map(|f| cell(&it[*f])).collect())
        .collect()
}

/// Prints an object as aligned `key  value` lines (keys in the object's order).
pub fn print_object(obj: &Value) {
    let Some(map) = obj.as_object() else {
        println!("{obj}");
        return;
    };
    let rows: Vec<Vec<String>> = map.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    let w = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    for r in rows {
        println!("{:<w$}  {}", r[0], r[1]);
    }
}

pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_but_not_the_last() {
        let out = render(
            &["ID", "STATUS", "AGENT"],
            &[
                vec!["ses_1".into(), "running".into(), "a".into()],
                vec!["ses_22".into(), "ok".into(), "-".into()],
            ],
        );
        assert_eq!(
            out,
            "ID      STATUS   AGENT\nses_1   running  a\nses_22  ok       -\n"
        );
        assert_eq!(cell(&serde_json::json!(["a", "b"])), "a,b");
        assert_eq!(cell(&Value::Null), "-");
    }
}
