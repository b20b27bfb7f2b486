//! `github.*` against a wiremock stand-in that answers as GitHub does: its media type and API
//! version headers, the secondary rate limit's 403, pagination by the `Link` header.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{PROVIDER_TOKEN as TOKEN, run};

#[tokio::test]
async fn github_creates_an_issue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web%20site/issues"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"title": "Broken", "labels": ["bug"]})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1, "number": 1347, "state": "open",
            "html_url": "https://github.com/acme/web/issues/1347", "title": "Broken"
        })))
        .mount(&server)
        .await;
    let output = run(
        &server,
        "github.create_issue",
        json!({"owner": "acme", "repo": "web site", "title": "Broken", "labels": ["bug"]}),
    )
    .await
    .expect("created");
    assert_eq!(
        output,
        json!({"id": 1, "number": 1347, "state": "open",
               "html_url": "https://github.com/acme/web/issues/1347"})
    );
}

#[tokio::test]
async fn github_secondary_rate_limit_is_retryable_and_other_403s_are_not() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/acme/limited/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/repos/acme/private/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&server)
        .await;
    let issue = |repo: &str| json!({"owner": "acme", "repo": repo, "title": "t"});

    let limited = run(&server, "github.create_issue", issue("limited"))
        .await
        .expect_err("limited");
    let ActionError::Retryable { retry_after, .. } = &limited else {
        panic!("expected retryable, got {limited:?}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(30)));

    let private = run(&server, "github.create_issue", issue("private"))
        .await
        .expect_err("forbidden");
    assert_eq!(
        private,
        ActionError::Permanent(
            "GitHub create issue answered HTTP 403 Forbidden: Resource not accessible by \
             integration"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn github_comments_on_an_issue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/issues/1347/comments"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"body": "Fixed in run 42"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1_234_567, "node_id": "IC_kwDOABC", "body": "Fixed in run 42",
            "html_url": "https://github.com/acme/web/issues/1347#issuecomment-1234567"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "github.comment",
        json!({"owner": "acme", "repo": "web", "issue_number": 1347, "body": "Fixed in run 42"}),
    )
    .await
    .expect("commented");
    assert_eq!(
        output,
        json!({"id": 1_234_567,
               "html_url": "https://github.com/acme/web/issues/1347#issuecomment-1234567"})
    );
}

#[tokio::test]
async fn github_404_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/acme/web/issues/9999/comments"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
        })))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "github.comment",
        json!({"owner": "acme", "repo": "web", "issue_number": 9999, "body": "hi"}),
    )
    .await
    .expect_err("missing");
    assert_eq!(
        error,
        ActionError::Permanent("GitHub comment answered HTTP 404 Not Found: Not Found".to_owned())
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1,
        "a 404 is not retried"
    );
}

fn github_issue(number: u64, pull_request: bool) -> Value {
    let mut issue = json!({
        "id": 1_000 + number, "number": number, "title": format!("Issue {number}"),
        "state": "open", "html_url": format!("https://github.com/acme/web/issues/{number}"),
        "user": {"login": "octocat", "id": 1}, "labels": [{"id": 208_045_946, "name": "bug"}],
        "assignees": [{"login": "hubot", "id": 2}], "comments": 3,
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z",
        "closed_at": null
    });
    if pull_request {
        issue["pull_request"] = json!({"url": "https://api.github.com/repos/acme/web/pulls/1"});
    }
    issue
}

/// Page `page` of `/repositories/1/issues` (GitHub's links name the repository by ID), the
/// first one at the documented path; `next` is the Link target of the following page.
async fn issue_page(server: &MockServer, page: u64, issues: Vec<Value>, next: Option<String>) {
    let first = format!(
        "<{}/repositories/1/issues?page=1>; rel=\"first\"",
        server.uri()
    );
    let link = match next {
        Some(next) => format!("<{next}>; rel=\"next\", {first}"),
        None => first,
    };
    let mock = Mock::given(method("GET"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()));
    let mock = if page == 1 {
        mock.and(path("/repos/acme/web/issues"))
            .and(query_param("state", "all"))
            .and(query_param("labels", "bug,ui"))
            .and(query_param("per_page", "2"))
    } else {
        mock.and(path("/repositories/1/issues"))
            .and(query_param("page", page.to_string().as_str()))
    };
    mock.respond_with(
        ResponseTemplate::new(200)
            .insert_header("link", link.as_str())
            .set_body_json(issues),
    )
    .expect(1)
    .mount(server)
    .await;
}

fn issue_numbers(output: &Value) -> Vec<u64> {
    output["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|issue| issue["number"].as_u64().expect("number"))
        .collect()
}

fn list_issues_input() -> Value {
    json!({"owner": "acme", "repo": "web", "state": "all", "labels": ["bug", "ui"], "per_page": 2})
}

#[tokio::test]
async fn github_lists_issues_across_pages_by_link_header() {
    let server = MockServer::start().await;
    let page_url = |page: u64| {
        format!(
            "{}/repositories/1/issues?state=all&labels=bug%2Cui&per_page=2&page={page}",
            server.uri()
        )
    };
    issue_page(
        &server,
        1,
        vec![github_issue(5, false), github_issue(4, true)],
        Some(page_url(2)),
    )
    .await;
    issue_page(
        &server,
        2,
        vec![github_issue(3, false), github_issue(2, false)],
        Some(page_url(3)),
    )
    .await;
    issue_page(&server, 3, vec![github_issue(1, false)], None).await;

    let output = run(&server, "github.list_issues", list_issues_input())
        .await
        .expect("listed");
    assert_eq!(issue_numbers(&output), [5, 4, 3, 2, 1]);
    assert_eq!(output["has_more"], false);
    assert_eq!(
        output["issues"][1],
        json!({"id": 1004, "number": 4, "title": "Issue 4", "state": "open",
               "html_url": "https://github.com/acme/web/issues/4", "user": "octocat",
               "labels": ["bug"], "assignees": ["hubot"], "comments": 3,
               "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z",
               "closed_at": null, "is_pull_request": true})
    );
}

#[tokio::test]
async fn github_list_issues_stops_at_max_pages() {
    let server = MockServer::start().await;
    let page_url = |page: u64| format!("{}/repositories/1/issues?page={page}", server.uri());
    issue_page(&server, 1, vec![github_issue(5, false)], Some(page_url(2))).await;
    issue_page(&server, 2, vec![github_issue(4, false)], Some(page_url(3))).await;
    let mut input = list_issues_input();
    input["max_pages"] = json!(2);
    let output = run(&server, "github.list_issues", input)
        .await
        .expect("listed");
    assert_eq!(issue_numbers(&output), [5, 4]);
    assert_eq!(output["has_more"], true);
}

#[tokio::test]
async fn github_list_issues_never_follows_a_link_to_another_origin() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&elsewhere)
        .await;
    for next in [
        format!("{}/repositories/1/issues?page=2", elsewhere.uri()),
        "https://evil.example.com/repositories/1/issues?page=2".to_owned(),
    ] {
        server.reset().await;
        issue_page(&server, 1, vec![github_issue(5, false)], Some(next.clone())).await;
        let error = run(&server, "github.list_issues", list_issues_input())
            .await
            .expect_err("refused");
        let ActionError::Permanent(message) = &error else {
            panic!("{next}: expected a permanent error, got {error:?}");
        };
        let origin = next.split("/repositories").next().expect("origin");
        assert_eq!(
            *message,
            format!(
                "GitHub list issues: the next page link points to {origin}, not to the \
                 connection's API at {}; refused",
                server.uri()
            )
        );
    }
    assert!(
        elsewhere
            .received_requests()
            .await
            .expect("recording")
            .is_empty(),
        "nothing was sent to the other origin"
    );
}
