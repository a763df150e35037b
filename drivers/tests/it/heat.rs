//! Heat: create / conflict / find via 302 / show / patch / delete / list / error classes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_drivers::openstack::{
    CreateStack, DeleteOutcome, HeatClient, StackRef, StaticToken, TokenProvider, UpdateStack,
};
use magnum_drivers::Error;
use serde_json::{json, Value};
use url::Url;

use crate::mock;

#[derive(Clone)]
struct MockStack {
    id: String,
    name: String,
    status: String,
    parameters: BTreeMap<String, Value>,
    deleted: bool,
}

#[derive(Default)]
struct HeatState {
    base: Mutex<String>,
    stacks: Mutex<Vec<MockStack>>,
    elsewhere_hits: AtomicUsize,
    last_create: Mutex<Option<Value>>,
    last_patch: Mutex<Option<Value>>,
}

fn envelope(code: u16, title: &str, kind: &str, message: &str) -> Value {
    json!({"code": code, "title": title, "explanation": "The server could not comply with the request.",
           "error": {"type": kind, "message": message, "traceback": null}})
}

/// `Some(401 response)` unless the request carries the token "good".
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    if headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) == Some("good") {
        None
    } else {
        Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "title": "Unauthorized", "message": "Authentication required"}})),
        )
            .into_response())
    }
}

async fn create(
    State(st): State<Arc<HeatState>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let name = body["stack_name"].as_str().unwrap_or_default().to_string();
    match name.as_str() {
        "invalid-template" => {
            return (
                StatusCode::BAD_REQUEST,
                Json(envelope(
                    400,
                    "Bad Request",
                    "StackValidationFailed",
                    "The Parameter (external_network) was not provided.",
                )),
            )
                .into_response()
        }
        "overloaded" => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>503 Service Unavailable</body></html>",
            )
                .into_response()
        }
        "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        _ => {}
    }
    *st.last_create.lock().unwrap() = Some(body.clone());
    let mut stacks = st.stacks.lock().unwrap();
    if stacks.iter().any(|s| s.name == name && !s.deleted) {
        return (
            StatusCode::CONFLICT,
            Json(envelope(
                409,
                "Conflict",
                "StackExists",
                &format!("The Stack ({name}) already exists."),
            )),
        )
            .into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    let parameters = body["parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    stacks.push(MockStack {
        id: id.clone(),
        name: name.clone(),
        status: "CREATE_IN_PROGRESS".into(),
        parameters,
        deleted: false,
    });
    let href = format!(
        "{}/heat-api/v1/{project}/stacks/{name}/{id}",
        st.base.lock().unwrap()
    );
    let mut h = HeaderMap::new();
    h.insert("Location", href.parse().unwrap());
    (
        StatusCode::CREATED,
        h,
        Json(json!({"stack": {"id": id, "links": [{"href": href, "rel": "self"}]}})),
    )
        .into_response()
}

async fn list(
    State(st): State<Arc<HeatState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let stacks: Vec<Value> = st
        .stacks
        .lock()
        .unwrap()
        .iter()
        .filter(|s| !s.deleted && q.get("name").is_none_or(|n| *n == s.name))
        .map(|s| json!({"id": s.id, "stack_name": s.name, "stack_status": s.status, "stack_status_reason": null, "description": ""}))
        .collect();
    Json(json!({"stacks": stacks})).into_response()
}

async fn lookup(
    State(st): State<Arc<HeatState>>,
    Path((project, name_or_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let stacks = st.stacks.lock().unwrap();
    // Ids find soft-deleted stacks too; names only live ones (Heat's identify_stack).
    let found = stacks
        .iter()
        .find(|s| s.id == name_or_id)
        .or_else(|| stacks.iter().find(|s| s.name == name_or_id && !s.deleted));
    let Some(s) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(envelope(
                404,
                "Not Found",
                "EntityNotFound",
                &format!("The Stack ({name_or_id}) could not be found."),
            )),
        )
            .into_response();
    };
    // Points somewhere that fails if followed, to prove the client reads Location without following.
    let location = if s.name.starts_with("trap") {
        format!(
            "{}/elsewhere/stacks/{}/{}",
            st.base.lock().unwrap(),
            s.name,
            s.id
        )
    } else {
        format!(
            "{}/heat-api/v1/{project}/stacks/{}/{}",
            st.base.lock().unwrap(),
            s.name,
            s.id
        )
    };
    let mut h = HeaderMap::new();
    h.insert("Location", location.parse().unwrap());
    (
        StatusCode::FOUND,
        h,
        Json(json!({"code": "302 Found", "title": "Found", "message": "The resource was found"})),
    )
        .into_response()
}

fn find<'a>(stacks: &'a mut [MockStack], name: &str, id: &str) -> Option<&'a mut MockStack> {
    stacks.iter_mut().find(|s| s.id == id && s.name == name)
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(envelope(
            404,
            "Not Found",
            "EntityNotFound",
            &format!("The Stack ({id}) could not be found."),
        )),
    )
        .into_response()
}

async fn show(
    State(st): State<Arc<HeatState>>,
    Path((_project, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let mut stacks = st.stacks.lock().unwrap();
    let Some(s) = find(&mut stacks, &name, &id) else {
        return not_found(&id);
    };
    let params: BTreeMap<String, String> = s
        .parameters
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let mut stack = json!({
        "id": s.id, "stack_name": s.name, "stack_status": s.status, "stack_status_reason": "Stack CREATE completed successfully",
        "parameters": params, "timeout_mins": 60, "disable_rollback": true,
    });
    if q.get("resolve_outputs").map(String::as_str) != Some("false") && !s.deleted {
        stack["outputs"] = json!([
            {"output_key": "api_address", "output_value": "172.24.4.10", "description": ""},
            {"output_key": "kube_masters", "output_value": ["172.24.4.10"], "description": ""},
            {"output_key": "kube_minions", "output_value": ["172.24.4.11", null], "description": ""},
        ]);
    }
    Json(json!({"stack": stack})).into_response()
}

async fn patch(
    State(st): State<Arc<HeatState>>,
    Path((_project, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let mut stacks = st.stacks.lock().unwrap();
    let Some(s) = find(&mut stacks, &name, &id) else {
        return not_found(&id);
    };
    if s.deleted {
        return (
            StatusCode::BAD_REQUEST,
            Json(envelope(
                400,
                "Bad Request",
                "NotSupported",
                "Updating a stack when it is deleting is not supported.",
            )),
        )
            .into_response();
    }
    for (k, v) in body["parameters"].as_object().cloned().unwrap_or_default() {
        s.parameters.insert(k, v);
    }
    s.status = "UPDATE_IN_PROGRESS".into();
    *st.last_patch.lock().unwrap() = Some(body);
    (StatusCode::ACCEPTED, Json(json!({"code": "202 Accepted"}))).into_response()
}

async fn delete(
    State(st): State<Arc<HeatState>>,
    Path((_project, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let mut stacks = st.stacks.lock().unwrap();
    match find(&mut stacks, &name, &id) {
        Some(s) if !s.deleted => {
            s.deleted = true;
            s.status = "DELETE_COMPLETE".into();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(&id),
    }
}

async fn elsewhere(State(st): State<Arc<HeatState>>) -> Response {
    st.elsewhere_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::INTERNAL_SERVER_ERROR, "followed a redirect").into_response()
}

async fn heat() -> (Arc<HeatState>, HeatClient) {
    heat_with(Arc::new(StaticToken::new("good")), mock::http()).await
}

async fn heat_with(
    tokens: Arc<dyn TokenProvider>,
    http: magnum_drivers::openstack::HttpClient,
) -> (Arc<HeatState>, HeatClient) {
    let st = Arc::new(HeatState::default());
    let router = Router::new()
        .route("/heat-api/v1/{project}/stacks", get(list).post(create))
        .route("/heat-api/v1/{project}/stacks/{name_or_id}", get(lookup))
        .route(
            "/heat-api/v1/{project}/stacks/{name}/{id}",
            get(show).patch(patch).delete(delete),
        )
        .route("/elsewhere/{*rest}", get(elsewhere))
        .with_state(st.clone());
    let base = mock::serve(router).await;
    *st.base.lock().unwrap() = base.clone();
    let url = Url::parse(&format!("{base}/heat-api/v1/proj-id")).unwrap();
    (st, HeatClient::new(http, url, tokens))
}

fn create_req(name: &str) -> CreateStack {
    CreateStack {
        stack_name: name.into(),
        template: json!({"heat_template_version": "queens", "resources": {}}),
        files: BTreeMap::from([(
            "kubemaster.yaml".to_string(),
            "heat_template_version: queens\n".to_string(),
        )]),
        environment_files: None,
        parameters: BTreeMap::from([("number_of_minions".to_string(), json!(2))]),
        timeout_mins: 60,
        disable_rollback: true,
    }
}

#[tokio::test]
async fn create_find_show_patch_delete() {
    let (st, heat) = heat().await;

    let created = heat.create_stack(&create_req("k8s-abc")).await.unwrap();
    assert_eq!(created.name, "k8s-abc");
    let sent = st.last_create.lock().unwrap().clone().unwrap();
    assert_eq!(sent["stack_name"], "k8s-abc");
    assert_eq!(sent["timeout_mins"], 60);
    assert_eq!(sent["disable_rollback"], true);
    assert_eq!(
        sent["files"]["kubemaster.yaml"],
        "heat_template_version: queens\n"
    );
    assert!(sent.get("environment_files").is_none());

    // By name and by id, through the 302.
    assert_eq!(
        heat.find_stack("k8s-abc").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        heat.find_stack(&created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(heat.find_stack("nope").await.unwrap(), None);

    let stack = heat.get_stack(&created, true).await.unwrap().unwrap();
    assert_eq!(stack.status, "CREATE_IN_PROGRESS");
    assert_eq!(stack.param("number_of_minions"), Some("2"));
    assert_eq!(stack.outputs["kube_minions"], json!(["172.24.4.11", null]));
    assert_eq!(stack.timeout_mins, Some(60));
    let cheap = heat.get_stack(&created, false).await.unwrap().unwrap();
    assert!(cheap.outputs.is_empty());

    let update = UpdateStack {
        parameters: BTreeMap::from([("number_of_minions".to_string(), json!(5))]),
        disable_rollback: Some(true),
        ..UpdateStack::default()
    };
    heat.update_stack_patch(&created, &update).await.unwrap();
    assert_eq!(
        st.last_patch.lock().unwrap().clone().unwrap(),
        json!({"parameters": {"number_of_minions": 5}, "disable_rollback": true})
    );
    let stack = heat.get_stack(&created, false).await.unwrap().unwrap();
    assert_eq!(stack.param("number_of_minions"), Some("5"));
    assert!(stack.heat_status().unwrap().is_in_progress());

    let listed = heat.list_stacks(Some("k8s-abc")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].stack_ref(), created);
    assert!(heat.list_stacks(Some("other")).await.unwrap().is_empty());

    assert_eq!(
        heat.delete_stack(&created).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        heat.delete_stack(&created).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    // A DELETE_COMPLETE stack is still found by id, not by name; it shows without outputs.
    assert_eq!(
        heat.find_stack(&created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(heat.find_stack("k8s-abc").await.unwrap(), None);
    let gone = heat.get_stack(&created, true).await.unwrap().unwrap();
    assert_eq!(gone.status, "DELETE_COMPLETE");
    assert!(gone.outputs.is_empty());
    // Updating a deleted stack is a permanent error with Heat's message.
    assert_eq!(
        heat.update_stack_patch(&created, &update)
            .await
            .unwrap_err(),
        Error::BadRequest("Updating a stack when it is deleting is not supported.".into())
    );
    // Unknown stack.
    let unknown = StackRef {
        id: "0000".into(),
        name: "x".into(),
    };
    assert_eq!(heat.get_stack(&unknown, true).await.unwrap(), None);
    assert_eq!(
        heat.delete_stack(&unknown).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
}

#[tokio::test]
async fn duplicate_create_is_a_conflict_and_the_stack_can_be_adopted() {
    let (_st, heat) = heat().await;
    let first = heat.create_stack(&create_req("k8s-dup")).await.unwrap();
    let err = heat.create_stack(&create_req("k8s-dup")).await.unwrap_err();
    assert_eq!(
        err,
        Error::Conflict("The Stack (k8s-dup) already exists.".into())
    );
    assert!(!err.is_retryable() && !err.is_permanent());
    assert_eq!(heat.find_stack("k8s-dup").await.unwrap(), Some(first));
}

#[tokio::test]
async fn find_does_not_follow_redirects() {
    let (st, heat) = heat().await;
    let created = heat.create_stack(&create_req("trap-stack")).await.unwrap();
    let found = heat.find_stack("trap-stack").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(st.elsewhere_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn error_classes() {
    let (_st, heat) = heat().await;
    assert_eq!(
        heat.create_stack(&create_req("invalid-template"))
            .await
            .unwrap_err(),
        Error::BadRequest("The Parameter (external_network) was not provided.".into())
    );
    let err = heat
        .create_stack(&create_req("overloaded"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transient(m) if m.contains("503")),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeouts_and_unreachable_heat_are_transient() {
    let (_st, heat) = heat_with(
        Arc::new(StaticToken::new("good")),
        mock::http_with_timeout(300),
    )
    .await;
    let err = heat.create_stack(&create_req("slow")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Transient(m) if m.contains("timed out")),
        "{err:?}"
    );

    let url = Url::parse(&format!("{}/heat-api/v1/p", mock::closed_port_url().await)).unwrap();
    let heat = HeatClient::new(mock::http(), url, Arc::new(StaticToken::new("good")));
    let err = heat.find_stack("x").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let tokens = mock::RotatingToken::new("stale", "good");
    let (_st, heat) = heat_with(tokens.clone(), mock::http()).await;
    heat.create_stack(&create_req("k8s-retry")).await.unwrap();
    assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1);

    // A static token that is refused is final.
    let (_st, heat) = heat_with(Arc::new(StaticToken::new("expired")), mock::http()).await;
    assert_eq!(
        heat.list_stacks(None).await.unwrap_err(),
        Error::Unauthorized("Authentication required".into())
    );
}

/// Heat's listing by id: repeated `id` filters, a page of at most 2 (a Heat with a low
/// `max_stacks_per_page`) whose `next` link drops the filters, and 403 on `global_tenant` when
/// `refuse_global` (Heat's default policy for `stacks:global_index`).
async fn paged_list(
    State((stacks, refuse_global, calls)): State<(Arc<Vec<MockStack>>, bool, Arc<AtomicUsize>)>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("global_tenant").as_deref() == Some("true") && refuse_global {
        let body = envelope(
            403,
            "Forbidden",
            "Forbidden",
            "You are not authorized to use global_index.",
        );
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let ids: Vec<&String> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v)
        .collect();
    let limit = get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(2);
    let mut items: Vec<&MockStack> = stacks.iter().filter(|s| ids.contains(&&s.id)).collect();
    if let Some(m) = get("marker") {
        let at = items.iter().position(|s| s.id == m).unwrap();
        items.drain(..=at);
    }
    items.truncate(limit);
    let mut body = json!({"stacks": items.iter().map(|s| json!({
        "id": s.id, "stack_name": s.name, "stack_status": s.status,
        "stack_status_reason": "", "updated_time": "2026-12-06T10:00:00Z"})).collect::<Vec<_>>()});
    if items.len() == limit {
        body["links"] = json!([{"rel": "next", "href": format!("/stacks?limit={limit}&marker={}", items[limit - 1].id)}]);
    }
    Json(body).into_response()
}

#[tokio::test]
async fn list_by_id_follows_pages_and_reports_a_refused_global_listing() {
    let stacks: Vec<MockStack> = (0..5)
        .map(|i| MockStack {
            id: format!("id-{i}"),
            name: format!("s{i}"),
            status: "UPDATE_COMPLETE".into(),
            parameters: BTreeMap::new(),
            deleted: false,
        })
        .collect();
    for refuse in [false, true] {
        let calls = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route("/heat-api/v1/{project}/stacks", get(paged_list))
            .with_state((Arc::new(stacks.clone()), refuse, calls.clone()));
        let base = mock::serve(router).await;
        let url = Url::parse(&format!("{base}/heat-api/v1/proj-id")).unwrap();
        let heat = HeatClient::new(mock::http(), url, Arc::new(StaticToken::new("good")));
        let ids: Vec<String> = ["id-0", "id-2", "id-3", "id-4", "gone"]
            .map(String::from)
            .into();
        let listed = heat.list_stacks_by_id(&ids, true).await;
        if refuse {
            assert!(matches!(listed, Err(Error::Forbidden(_))), "{listed:?}");
            continue;
        }
        let listed = listed.unwrap();
        let got: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(got, ["id-0", "id-2", "id-3", "id-4"]);
        assert_eq!(
            listed[0].updated_time.as_deref(),
            Some("2026-12-06T10:00:00Z")
        );
        // Pages of 2: [0, 2], [3, 4], then an empty one after the full second page.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Every id found on a full page: no page after it.
        let calls_before = calls.load(Ordering::SeqCst);
        let all: Vec<String> = ["id-0", "id-1"].map(String::from).into();
        assert_eq!(heat.list_stacks_by_id(&all, true).await.unwrap().len(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), calls_before + 1);
        // Without global_tenant the project's own listing is asked the same way.
        assert_eq!(
            heat.list_stacks_by_id(&ids[..1], false)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
