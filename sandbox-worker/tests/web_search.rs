//! `web_search` against fake Brave, Tavily and SearXNG APIs on loopback (real HTTP, the real
//! wire formats, their refusals), and the per-session web call limit counted in a real SQLite
//! store.

mod fakes;

use std::sync::Arc;

use fakes::search::{FakeSearch, BRAVE_KEY, TAVILY_KEY};
use infra::config::{Secret, WebSearchConfig};
use infra::store::sqlite::SqliteStore;
use infra::store::StateStore;
use sandbox_worker::tools::web::WebTools;
use sandbox_worker::tools::ExtraTools;
use sandbox_worker::web::search::WebSearch;
use serde_json::{json, Value};

fn brave(api: &FakeSearch, key: &str) -> WebSearchConfig {
    let mut config = WebSearchConfig {
        api_key: Some(Secret::new(key)),
        ..Default::default()
    };
    config.brave.base_url = Some(format!("{}/res/v1/web/search", api.base_url));
    config
}

fn tavily(api: &FakeSearch, key: &str) -> WebSearchConfig {
    let mut config = WebSearchConfig::default();
    config.tavily.api_key = Some(Secret::new(key));
    config.tavily.base_url = Some(format!("{}/search", api.base_url));
    config
}

fn searxng(api: &FakeSearch) -> WebSearchConfig {
    let mut config = WebSearchConfig::default();
    config.searxng.base_url = Some(api.base_url.clone());
    config
}

fn search(config: &WebSearchConfig) -> WebSearch {
    WebSearch::from_config(config)
        .unwrap()
        .expect("a provider is configured")
}

#[tokio::test]
async fn each_provider_answers_as_titles_urls_and_snippets_marked_untrusted() {
    let api = FakeSearch::start(true).await;

    let mut reports = Vec::new();
    for config in [
        brave(&api, BRAVE_KEY),
        tavily(&api, TAVILY_KEY),
        searxng(&api),
    ] {
        let report = search(&config).search("rust crabs", Some(2)).await.unwrap();
        reports.push(serde_json::from_str::<Value>(&report).unwrap());
    }

    let providers: Vec<&str> = reports
        .iter()
        .map(|r| r["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["brave", "tavily", "searxng"]);
    for report in &reports {
        assert_eq!(report["count"], 2, "{report}");
        let results = report["results"].as_str().unwrap();
        let provider = report["provider"].as_str().unwrap();
        assert!(
            results.starts_with(&format!(
                "<<<EXTERNAL_UNTRUSTED_CONTENT source=web_search:{provider}>>>\n1. [rust crabs result 1](https://example.com/1)\n   About **rust crabs**, part 1."
            )),
            "{results}"
        );
        assert!(results.ends_with("<<<END_EXTERNAL_UNTRUSTED_CONTENT>>>"));
        assert!(!results.contains("result 3"), "cut to the count asked");
    }
    let asked: Vec<String> = api.queries().into_iter().map(|(p, _)| p).collect();
    assert_eq!(asked, ["brave", "tavily", "searxng"]);
}

#[tokio::test]
async fn a_refusal_is_reported_in_the_provider_s_words_and_never_with_the_key() {
    let api = FakeSearch::start(false).await;
    let wrong_brave = "BSA-wrong-key-0123456789";
    let wrong_tavily = "tvly-wrong-key-0123456789";

    let brave = search(&brave(&api, wrong_brave)).search("q", None).await;
    let tavily = search(&tavily(&api, wrong_tavily)).search("q", None).await;
    let searxng = search(&searxng(&api)).search("q", None).await;

    let brave = brave.unwrap_err();
    assert!(
        brave.contains("brave answered 401") && brave.contains("SUBSCRIPTION_TOKEN_INVALID"),
        "{brave}"
    );
    assert!(!brave.contains(wrong_brave));
    let tavily = tavily.unwrap_err();
    assert!(tavily.contains("tavily answered 401"), "{tavily}");
    assert!(!tavily.contains(wrong_tavily));
    // SearXNG's JSON format is off on this instance: the operator's fix is in its settings.
    assert!(searxng.unwrap_err().contains("searxng answered 403"));
    assert!(api.queries().is_empty());
}

#[test]
fn the_provider_is_the_one_named_or_the_first_configured_and_none_without_credentials() {
    let mut config = WebSearchConfig::default();
    assert_eq!(config.provider(), None);
    config.searxng.base_url = Some("http://searx.lan".into());
    config.tavily.api_key = Some(Secret::new("tvly-x"));
    assert_eq!(
        config.provider(),
        Some(infra::config::SearchProviderName::Tavily)
    );
    config.provider = Some(infra::config::SearchProviderName::Brave);
    assert_eq!(config.provider(), None, "Brave is named but has no key");
    config.enabled = false;
    config.provider = None;
    assert_eq!(config.provider(), None);
}

#[tokio::test]
async fn a_session_over_its_web_calls_a_minute_is_refused_and_another_is_not() {
    let api = FakeSearch::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let search = Arc::new(search(&searxng(&api)));
    let tools = |session: &str| WebTools {
        fetch: None,
        search: Some(search.clone()),
        store: store.clone(),
        session: session.parse().unwrap(),
        calls_per_minute: 2,
    };
    let busy = tools("agent:main:main");
    let other = tools("agent:main:telegram:dm:42");

    let mut outcomes = Vec::new();
    for i in 0..3 {
        let input = json!({"query": format!("query {i}")});
        outcomes.push(busy.run("web_search", &input).await.unwrap());
    }
    let elsewhere = other
        .run("web_search", &json!({"query": "query 9"}))
        .await
        .unwrap();
    let fetch = busy
        .run("web_fetch", &json!({"url": "https://example.com"}))
        .await;

    assert!(!outcomes[0].is_error && !outcomes[1].is_error);
    assert!(outcomes[2].is_error);
    assert!(
        outcomes[2].output.contains("limits.webCallsPerMinute"),
        "{}",
        outcomes[2].output
    );
    assert!(!elsewhere.is_error, "{}", elsewhere.output);
    assert_eq!(
        api.queries().len(),
        3,
        "the refused call never reached the API"
    );
    assert!(fetch.is_none(), "web_fetch is not offered when it is off");
    assert_eq!(
        busy.specs()
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>(),
        ["web_search"]
    );
}
