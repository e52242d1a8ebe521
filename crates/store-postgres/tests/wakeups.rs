//! Runner wake-ups across coordinators: three `PgStore`s on one database stand for three
//! coordinators; a wake-up published by one reaches the others, never itself.

use std::time::Duration;

use aof_store::prelude::*;
use aof_store_postgres::{testing, PgOptions, PgStore};
use tokio::sync::watch;

async fn changed(rx: &mut watch::Receiver<u64>, who: &str) {
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
        .await
        .unwrap_or_else(|_| panic!("{who}: no wake-up within 30 s"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_reaches_every_other_store_and_not_its_own() {
    let Some(base) = testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(PgStore::connect(&url, PgOptions::default()).await.unwrap());
    }
    let mut rx: Vec<_> = stores
        .iter()
        .map(|s| s.remote_wakes().expect("PostgreSQL relays wake-ups"))
        .collect();
    // The LISTEN is set up by a background task: publish until the others hear one.
    let heard = async {
        loop {
            stores[0].publish_wake();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if rx[1].has_changed().unwrap() && rx[2].has_changed().unwrap() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), heard)
        .await
        .expect("stores 1 and 2 hear store 0");
    rx[1].borrow_and_update();
    rx[2].borrow_and_update();
    assert_eq!(*rx[0].borrow(), 0, "store 0 woke itself");

    // Published by 1 after it heard 0, so delivered to 0 after 0's own notifications: if
    // 0 counted its own, it would be past 1 by now.
    stores[1].publish_wake();
    changed(&mut rx[0], "store 0").await;
    changed(&mut rx[2], "store 2").await;
    assert_eq!(*rx[0].borrow(), 1, "store 0 heard only store 1");
    assert!(!rx[1].has_changed().unwrap(), "store 1 woke itself");
}
