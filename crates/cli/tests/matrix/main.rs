//! The Matrix bridge against a real homeserver (Synapse on loopback, tight message rate
//! limits so 429s happen), a real coordinator with its echo runner, and real Matrix
//! clients for the people: chat starts, continues, stops sessions and decides
//! approvals; strangers and viewers are refused and change nothing; a bridge killed
//! with SIGKILL loses and repeats nothing.
#![allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;

mod approvals;
mod auth;
mod durability;
mod flow;
mod homeserver;
mod relay;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::{Child, Command};

use harness::BIN;
use homeserver::Person;

/// An `aof matrix-bridge` process with its settings file and state dir in `dir`.
pub struct BridgeProc {
    pub child: Child,
    pub dir: PathBuf,
    starts: u32,
}

impl BridgeProc {
    /// `users`: (person, role); the bridge opens agent `echo` (and `t`) to all of them.
    pub async fn start(
        dir: &Path,
        aof_url: &str,
        bot: &Person,
        users: &[(&Person, &str)],
    ) -> BridgeProc {
        let (hs, _, _) = homeserver::synapse().expect("a homeserver");
        Self::start_via(dir, &hs, aof_url, bot, users).await
    }

    /// The same, reaching the homeserver at `hs` (a relay that can be cut).
    pub async fn start_via(
        dir: &Path,
        hs: &str,
        aof_url: &str,
        bot: &Person,
        users: &[(&Person, &str)],
    ) -> BridgeProc {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("token"), &bot.token).unwrap();
        let mut toml = format!(
            "[matrix]\nhomeserver = \"{hs}\"\nuser_id = \"{}\"\naccess_token_file = \"token\"\n\n\
             [aof]\nurl = \"{aof_url}\"\n\n[bridge]\nstate_dir = \"state\"\nagents = [\"echo\", \"t\"]\n",
            bot.id()
        );
        // An AOF key the test put in `dir/aof-key` (auth on) is the bridge's.
        if dir.join("aof-key").exists() {
            toml = toml.replace("[bridge]", "api_key_file = \"aof-key\"\n\n[bridge]");
        }
        for (p, role) in users {
            toml.push_str(&format!(
                "\n[[users]]\nmatrix_id = \"{}\"\nrole = \"{role}\"\n",
                p.id()
            ));
        }
        std::fs::write(dir.join("bridge.toml"), toml).unwrap();
        BridgeProc {
            child: spawn(dir, 0),
            dir: dir.to_path_buf(),
            starts: 1,
        }
    }

    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    pub async fn restart(&mut self) {
        self.child = spawn(&self.dir, self.starts);
        self.starts += 1;
    }

    /// Every log this bridge wrote, in start order.
    pub fn log(&self) -> String {
        (0..self.starts.max(1))
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("bridge-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

fn spawn(dir: &Path, n: u32) -> Child {
    let log = std::fs::File::create(dir.join(format!("bridge-{n}.log"))).unwrap();
    Command::new(BIN)
        .current_dir(dir)
        .args(["matrix-bridge", "bridge.toml"])
        .env_remove("AOF_API_KEY")
        .env_remove("AOF_MATRIX_ACCESS_TOKEN")
        .env("RUST_LOG", "info,matrix_sdk=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn aof matrix-bridge")
}

/// The people of a test: the bridge's account, `alice` (operator), `vic` (viewer) and
/// `mallory` (not on the allow-list), each a fresh account.
pub struct Cast {
    pub bot: Person,
    pub alice: Person,
    pub vic: Person,
    pub mallory: Person,
}

impl Cast {
    pub async fn new() -> Cast {
        Cast {
            bot: Person::register(&homeserver::unique("aofbot")).await,
            alice: Person::register(&homeserver::unique("alice")).await,
            vic: Person::register(&homeserver::unique("vic")).await,
            mallory: Person::register(&homeserver::unique("mallory")).await,
        }
    }

    /// The bridge (alice operator, vic viewer), reaching the homeserver at `hs`.
    pub async fn bridge(&self, dir: &Path, hs: &str, aof_url: &str) -> BridgeProc {
        let users = [(&self.alice, "operator"), (&self.vic, "viewer")];
        BridgeProc::start_via(dir, hs, aof_url, &self.bot, &users).await
    }

    /// A room of alice's with the bridge in it, and `others` joined.
    pub async fn room(&self, others: &[&Person]) -> matrix_sdk::ruma::OwnedRoomId {
        let mut invite = vec![&self.bot];
        invite.extend(others);
        let room = self.alice.create_room(&invite).await;
        for p in others {
            p.join(&room).await;
        }
        self.alice.wait_member(&room, &self.bot.user_id).await;
        room
    }
}
