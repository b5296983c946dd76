//! `GET /openapi.json` against the router itself: every route the router serves (path
//! and method) is in the document, and every documented route is served. The router's
//! paths come from its own route table (axum's `Debug` of the router), its methods from
//! asking it (a method a path does not serve answers 405), so a route added to
//! `api::router` without a `#[utoipa::path]` in `api::openapi::ApiDoc` fails here.

mod api_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use api_support::{FakeGateway, TOKEN, config, within};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use voiceai_gateway::api;
use voiceai_gateway::calls::Calls;
use voiceai_gateway::events::EventBus;

/// The methods asked of every path (HEAD and OPTIONS follow GET and CORS).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The paths in the router's route table, from its `Debug`
/// (`path_router: PathRouter { .., node: Node { paths: {RouteId(0): "/health", ..} } }`);
/// the fallback router's internal paths are left out.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let start = debug
        .find("path_router:")
        .expect("the router's Debug names its path_router");
    let end = debug[start..]
        .find("fallback_router:")
        .map_or(debug.len(), |end| start + end);
    let mut paths = BTreeSet::new();
    let mut rest = &debug[start..end];
    while let Some(at) = rest.find("): \"") {
        rest = &rest[at + 4..];
        let Some(close) = rest.find('"') else { break };
        paths.insert(rest[..close].to_owned());
        rest = &rest[close..];
    }
    paths
}

/// A request path for a route path: each `{param}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str("probe");
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let calls = Calls::new(EventBus::new(64), 4);
    let router = api::router(calls, Arc::new(FakeGateway::new()), config());
    let paths = router_paths(&router);
    assert!(
        paths.contains("/health") && paths.contains("/api/calls/{id}") && paths.len() > 10,
        "the route table was not read: {paths:?} from {router:?}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(api::serve(listener, router, std::future::pending()));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let ask = |method: Method, path: String| {
        let client = client.clone();
        async move {
            let request = Request::builder()
                .method(method)
                .uri(format!("http://{address}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = within(&path, client.request(request)).await.unwrap();
            let status = response.status();
            let body = within(&path, response.into_body().collect())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    // What the router serves: every method of every path that does not answer 405 (nor
    // the fallback's "no route").
    let mut served = BTreeSet::new();
    for path in &paths {
        for method in &METHODS {
            let (status, body) = ask(method.clone(), concrete(path)).await;
            if status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("no route") {
                served.insert(format!("{method} {path}"));
            }
        }
    }

    let (status, body) = ask(Method::GET, "/openapi.json".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        document["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{document}"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in &METHODS {
            let operation = &item[method.as_str().to_ascii_lowercase()];
            if operation.is_object() {
                documented.insert(format!("{method} {path}"));
                assert!(
                    operation["summary"].is_string() || operation["description"].is_string(),
                    "{method} {path} has no summary: {operation}"
                );
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in /openapi.json: {undocumented:?}\nin /openapi.json but not served: {not_served:?}"
    );
    // The bodies are described too, from the handlers' types.
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in [
        "CallSnapshot",
        "OriginateBody",
        "ErrorReply",
        "CallResource",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}: {schemas:?}");
    }
    let originate = &document["paths"]["/api/calls/originate"]["post"];
    assert_eq!(
        originate["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OriginateBody"
    );
    assert_eq!(
        document["paths"]["/ws/monitor"]["get"]["responses"]["101"]["description"],
        "Switching to the WebSocket protocol"
    );
    eprintln!("{} routes served and documented", served.len());
    server.abort();
}
