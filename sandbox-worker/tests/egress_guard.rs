//! The egress guard against real HTTP on loopback: the tests' fake server is reachable only
//! through the guard's loopback exception, and what a hostile page or name tries (a redirect to
//! the metadata address, a name resolving to loopback without the exception, a denied domain
//! behind a redirect) is refused with the reason.

use std::net::SocketAddr;
use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use sandbox_worker::web::guard::{self, EgressPolicy};

/// A fake site on 127.0.0.1: `/page` answers, the others redirect where an attacker would.
async fn hostile_site() -> SocketAddr {
    let app = Router::new()
        .route("/page", get(|| async { "<h1>hello</h1>" }))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/to-ipv6-metadata",
            get(|| async { Redirect::temporary("http://[fd00:ec2::254]/") }),
        )
        .route(
            "/to-denied",
            get(|| async { Redirect::temporary("http://denied.test/") }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn loopback_only() -> EgressPolicy {
    EgressPolicy {
        allow_loopback: true,
        deny_domains: vec!["denied.test".into()],
        ..Default::default()
    }
}

async fn fetch(policy: &EgressPolicy, url: &str) -> Result<String, String> {
    let client = guard::client(policy.clone(), Duration::from_secs(10)).unwrap();
    let response = guard::get(&client, policy, url).await?;
    response.text().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_test_exception_reaches_loopback_and_nothing_a_redirect_points_at() {
    let site = hostile_site().await;
    let policy = loopback_only();

    let page = fetch(&policy, &format!("http://{site}/page")).await;
    let metadata = fetch(&policy, &format!("http://{site}/to-metadata")).await;
    let v6_metadata = fetch(&policy, &format!("http://{site}/to-ipv6-metadata")).await;
    let denied = fetch(&policy, &format!("http://{site}/to-denied")).await;
    let looping = fetch(&policy, &format!("http://{site}/loop")).await;

    assert_eq!(page.unwrap(), "<h1>hello</h1>");
    let metadata = metadata.unwrap_err();
    assert!(
        metadata.contains("169.254.169.254") && metadata.contains("refused"),
        "{metadata}"
    );
    assert!(v6_metadata.unwrap_err().contains("fd00:ec2::254"));
    assert!(denied.unwrap_err().contains("denyDomains"));
    assert!(looping.unwrap_err().contains("redirects"));
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_the_exception() {
    let site = hostile_site().await;
    let policy = EgressPolicy::default();

    let by_name = fetch(&policy, &format!("http://localhost:{}/page", site.port())).await;
    let by_address = fetch(&policy, &format!("http://{site}/page")).await;

    let by_name = by_name.unwrap_err();
    assert!(
        by_name.contains("localhost") && by_name.contains("refused"),
        "{by_name}"
    );
    assert!(by_address.unwrap_err().contains("127.0.0.1"));
}
