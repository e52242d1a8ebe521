//! What a chat message asks for: `!aof run AGENT prompt…`, a mention of the bridge
//! (`@aof:server: AGENT prompt…`), `!aof stop`, `!aof approve [message]`,
//! `!aof deny [reason]`, `!aof help`. Anything else is plain text (in a session's thread:
//! the next prompt).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        agent: String,
        prompt: String,
    },
    Stop,
    Approve {
        message: Option<String>,
    },
    Deny {
        reason: Option<String>,
    },
    Help,
    /// `!aof` with something it does not know; the text is quoted back.
    Unknown(String),
}

pub const PREFIX: &str = "!aof";

pub const USAGE: &str = "AOF commands: `!aof run AGENT prompt…` starts a session (a thread); \
in its thread, a plain reply resumes it, `!aof stop` stops it, `!aof approve [message]` and \
`!aof deny [reason]` decide a pending tool call; `!aof help` shows this.";

/// The command in `body`, or `None` for plain text. `bridge_user` is the bridge's own
/// Matrix id (`@aof:server`): a message that starts by mentioning it is a `run`.
pub fn parse(body: &str, bridge_user: &str) -> Option<Command> {
    let body = body.trim();
    if let Some(rest) = strip_word(body, PREFIX) {
        return Some(parse_verb(rest));
    }
    let localpart = bridge_user
        .strip_prefix('@')
        .and_then(|u| u.split(':').next())
        .unwrap_or(bridge_user);
    // `@aof:server …`, `@aof:server: …`, `aof: …`, `aof, …` (the forms clients write
    // for a mention); a bare `aof …` is ordinary talk about the bridge, not a command.
    let mentioned = [(bridge_user, false), (localpart, true)]
        .into_iter()
        .filter(|(m, _)| !m.is_empty())
        .find_map(|(m, needs_mark)| {
            let rest = body.strip_prefix(m)?;
            let marked = rest.strip_prefix(':').or_else(|| rest.strip_prefix(','));
            let rest = match (marked, needs_mark) {
                (Some(r), _) => r,
                (None, false) => rest,
                (None, true) => return None,
            };
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
        })?;
    Some(run(mentioned))
}

fn parse_verb(rest: &str) -> Command {
    let (verb, args) = split_word(rest);
    let args = (!args.is_empty()).then(|| args.to_string());
    match verb.to_ascii_lowercase().as_str() {
        "run" => run(args.as_deref().unwrap_or("")),
        "stop" => Command::Stop,
        "approve" => Command::Approve { message: args },
        "deny" => Command::Deny { reason: args },
        "help" | "" => Command::Help,
        _ => Command::Unknown(rest.to_string()),
    }
}

fn run(rest: &str) -> Command {
    let (agent, prompt) = split_word(rest);
    if agent.is_empty() || prompt.is_empty() {
        return Command::Unknown(format!("run {rest}").trim().to_string());
    }
    Command::Run {
        agent: agent.to_string(),
        prompt: prompt.to_string(),
    }
}

/// `word` at the start of `s` as a whole word: the rest, trimmed.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(word)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// The first word and the rest (trimmed), keeping the rest's line breaks.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "@aof:localhost";

    fn run(agent: &str, prompt: &str) -> Option<Command> {
        Some(Command::Run {
            agent: agent.into(),
            prompt: prompt.into(),
        })
    }

    #[test]
    fn commands_and_mentions() {
        assert_eq!(
            parse("!aof run echo hello there", ME),
            run("echo", "hello there")
        );
        assert_eq!(
            parse("  !aof run echo line one\nline two", ME),
            run("echo", "line one\nline two")
        );
        assert_eq!(parse("@aof:localhost: echo hi", ME), run("echo", "hi"));
        assert_eq!(parse("aof: echo hi", ME), run("echo", "hi"));
        assert_eq!(parse("@aof:localhost echo hi", ME), run("echo", "hi"));
        assert_eq!(parse("!aof stop", ME), Some(Command::Stop));
        assert_eq!(parse("!aof STOP", ME), Some(Command::Stop));
        assert_eq!(
            parse("!aof approve", ME),
            Some(Command::Approve { message: None })
        );
        assert_eq!(
            parse("!aof deny not on prod", ME),
            Some(Command::Deny {
                reason: Some("not on prod".into())
            })
        );
        assert_eq!(parse("!aof", ME), Some(Command::Help));
        assert_eq!(
            parse("!aof frobnicate x", ME),
            Some(Command::Unknown("frobnicate x".into()))
        );
        assert_eq!(
            parse("!aof run echo", ME),
            Some(Command::Unknown("run echo".into()))
        );
    }

    #[test]
    fn plain_text_is_not_a_command() {
        for text in [
            "hello",
            "aof echo hi",
            "!aofx run echo hi",
            "aofbot: echo hi",
            "tell aof: hi",
            "",
        ] {
            assert_eq!(parse(text, ME), None, "{text:?}");
        }
    }
}
