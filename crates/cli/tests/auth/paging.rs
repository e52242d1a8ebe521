//! The paged, filtered lists (`GET /sessions`, `GET /runs`, `GET /runners` with `limit`, `cursor`,
//! `status`, `agent`, `q`) change nothing of who may read: no credential or a forged
//! key is refused with 401, and a viewer sees exactly the page an admin sees.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_are_refused_without_a_credential_and_the_same_for_viewer_and_admin() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let u = &coord.url;
    let admin = format!("Bearer {}", keys.admin);
    for i in 0..5 {
        let (st, b) = call_h(
            "POST",
            &format!("{u}/runs"),
            Some(
                json!({"type": "start_session", "agent_name": format!("pager-{}", i % 2),
                        "parameters": {"prompt": format!("p{i}")}}),
            ),
            &[("authorization", admin.as_str())],
        )
        .await;
        assert_eq!(st, 201, "{b}");
    }
    let queries = [
        "/sessions?limit=2",
        "/sessions?limit=2&status=pending&agent=pager-1",
        "/sessions?limit=3&q=PAGER-0",
        "/sessions?status=pending",
        "/runs?limit=2&status=pending",
        "/runners?limit=2",
        "/runners?limit=2&status=online&q=host",
    ];
    let forged = "Bearer aof_0000000000000000_forgedforgedforgedforgedforged";
    for q in queries {
        let url = format!("{u}{q}");
        let (st, b) = call_h("GET", &url, None, &[]).await;
        assert_eq!(st, 401, "{q} without a credential: {b}");
        let (st, b) = call_h("GET", &url, None, &[("authorization", forged)]).await;
        assert_eq!(st, 401, "{q} with a forged key: {b}");
        let (st, as_admin) = call_h("GET", &url, None, &[("authorization", admin.as_str())]).await;
        assert_eq!(st, 200, "{q}: {as_admin}");
        let viewer = format!("Bearer {}", keys.viewer);
        let (st, as_viewer) =
            call_h("GET", &url, None, &[("authorization", viewer.as_str())]).await;
        assert_eq!(st, 200, "{q}: {as_viewer}");
        assert_eq!(
            as_viewer, as_admin,
            "{q}: the viewer sees what the admin sees"
        );
    }
    // The filters did filter (so the comparison above is of something).
    let viewer = format!("Bearer {}", keys.viewer);
    let (_, b) = call_h(
        "GET",
        &format!("{u}/sessions?limit=3&q=PAGER-0"),
        None,
        &[("authorization", viewer.as_str())],
    )
    .await;
    let agents: Vec<&str> = b["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent_name"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["pager-0"; 3], "{b}");
}
