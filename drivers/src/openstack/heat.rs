//! Heat v1 client: stack create / find / show / PATCH update / delete / list.
//!
//! Stacks are addressed canonically as `stacks/{name}/{id}`. A bare name or id is resolved once with
//! [`HeatClient::find_stack`] (`GET /stacks/{name_or_id}` answered by a 302 that we read without
//! following), then every call uses the canonical URL.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use url::Url;

use super::http::{self, HttpClient, TokenProvider};
use crate::error::{Error, HeatError};

const SERVICE: &str = "heat";

/// Result of Heat calls.
pub type HeatResult<T> = std::result::Result<T, HeatError>;

/// Body of `POST /stacks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateStack {
    /// Must match `^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$`.
    pub stack_name: String,
    /// The template: a JSON object, or a YAML/JSON document as a string.
    pub template: Value,
    /// Nested templates and `get_file` contents, keyed by the name used in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Ordered keys of `files` holding environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<String>>,
    /// Template parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Value>,
    /// Create timeout in minutes (Heat fails the stack with "Timed out" after it).
    pub timeout_mins: u32,
    /// Heat's default is true: a failed create stays `CREATE_FAILED`.
    pub disable_rollback: bool,
}

/// Body of `PATCH /stacks/{name}/{id}` (Heat keeps everything not given here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStack {
    /// Parameters overriding the current ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Value>,
    /// A new template; `None` keeps the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Files merged over the current ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Parameters reset to their template defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear_parameters: Vec<String>,
    /// `None` keeps the stack's current setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_rollback: Option<bool>,
    /// `None` keeps the stack's current timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_mins: Option<u32>,
}

/// A stack's canonical identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackRef {
    /// Stack id (UUID).
    pub id: String,
    /// Stack name.
    pub name: String,
}

/// Outcome of a delete that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: deletion started.
    Deleted,
    /// 404: the stack is unknown or already `DELETE_COMPLETE`.
    AlreadyGone,
}

/// A stack as shown by `GET /stacks/{name}/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// Stack id.
    pub id: String,
    /// Stack name.
    pub name: String,
    /// `<ACTION>_<STATUS>`, e.g. `CREATE_COMPLETE`; see [`Stack::heat_status`].
    pub status: String,
    /// Heat's reason text (empty when Heat gives none).
    pub status_reason: String,
    /// Parameters as Heat reports them: all strings (hidden ones are `******`).
    pub parameters: BTreeMap<String, String>,
    /// Output values by key (empty when outputs were not resolved).
    pub outputs: BTreeMap<String, Value>,
    /// `output_error` texts by key.
    pub output_errors: BTreeMap<String, String>,
    /// `creation_time` as sent.
    pub creation_time: Option<String>,
    /// `updated_time` as sent.
    pub updated_time: Option<String>,
    /// `timeout_mins` (null when Heat's default applies).
    pub timeout_mins: Option<u32>,
    /// `disable_rollback`.
    pub disable_rollback: Option<bool>,
}

impl Stack {
    /// The canonical reference.
    pub fn stack_ref(&self) -> StackRef {
        StackRef {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// The parsed status, or `None` for a status string Heat never sends.
    pub fn heat_status(&self) -> Option<HeatStatus> {
        status_of(&self.status)
    }

    /// A stack parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }
}

/// An item of `GET /stacks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StackSummary {
    /// Stack id.
    pub id: String,
    /// Stack name.
    #[serde(rename = "stack_name")]
    pub name: String,
    /// `<ACTION>_<STATUS>`.
    #[serde(rename = "stack_status")]
    pub status: String,
    /// Reason text.
    #[serde(
        rename = "stack_status_reason",
        default,
        deserialize_with = "null_as_empty"
    )]
    pub status_reason: String,
    /// `creation_time`.
    #[serde(default)]
    pub creation_time: Option<String>,
    /// `updated_time`: when the last update started (`None` while never updated).
    #[serde(default)]
    pub updated_time: Option<String>,
}

impl StackSummary {
    /// The parsed status, or `None` for a status string Heat never sends.
    pub fn heat_status(&self) -> Option<HeatStatus> {
        status_of(&self.status)
    }

    /// The canonical reference.
    pub fn stack_ref(&self) -> StackRef {
        StackRef {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// Heat stack actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum StackAction {
    Init,
    Create,
    Delete,
    Update,
    Rollback,
    Suspend,
    Resume,
    Adopt,
    Snapshot,
    Check,
    Restore,
}

/// Heat status within an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackState {
    /// `IN_PROGRESS`.
    InProgress,
    /// `COMPLETE`.
    Complete,
    /// `FAILED`.
    Failed,
}

/// A parsed `<ACTION>_<STATUS>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeatStatus {
    /// The action.
    pub action: StackAction,
    /// Its state.
    pub state: StackState,
}

impl HeatStatus {
    /// True for `*_IN_PROGRESS`.
    pub fn is_in_progress(self) -> bool {
        self.state == StackState::InProgress
    }
    /// True for `*_COMPLETE`.
    pub fn is_complete(self) -> bool {
        self.state == StackState::Complete
    }
    /// True for `*_FAILED`.
    pub fn is_failed(self) -> bool {
        self.state == StackState::Failed
    }
}

impl fmt::Display for HeatStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            StackAction::Init => "INIT",
            StackAction::Create => "CREATE",
            StackAction::Delete => "DELETE",
            StackAction::Update => "UPDATE",
            StackAction::Rollback => "ROLLBACK",
            StackAction::Suspend => "SUSPEND",
            StackAction::Resume => "RESUME",
            StackAction::Adopt => "ADOPT",
            StackAction::Snapshot => "SNAPSHOT",
            StackAction::Check => "CHECK",
            StackAction::Restore => "RESTORE",
        };
        let state = match self.state {
            StackState::InProgress => "IN_PROGRESS",
            StackState::Complete => "COMPLETE",
            StackState::Failed => "FAILED",
        };
        write!(f, "{action}_{state}")
    }
}

/// Parses a Heat status string such as `UPDATE_IN_PROGRESS`.
pub fn status_of(status: &str) -> Option<HeatStatus> {
    let (action, state) = status.split_once('_')?;
    let action = match action {
        "INIT" => StackAction::Init,
        "CREATE" => StackAction::Create,
        "DELETE" => StackAction::Delete,
        "UPDATE" => StackAction::Update,
        "ROLLBACK" => StackAction::Rollback,
        "SUSPEND" => StackAction::Suspend,
        "RESUME" => StackAction::Resume,
        "ADOPT" => StackAction::Adopt,
        "SNAPSHOT" => StackAction::Snapshot,
        "CHECK" => StackAction::Check,
        "RESTORE" => StackAction::Restore,
        _ => return None,
    };
    let state = match state {
        "IN_PROGRESS" => StackState::InProgress,
        "COMPLETE" => StackState::Complete,
        "FAILED" => StackState::Failed,
        _ => return None,
    };
    Some(HeatStatus { action, state })
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct CreatedEnvelope {
    stack: CreatedStack,
}

#[derive(Deserialize)]
struct CreatedStack {
    id: String,
}

#[derive(Deserialize)]
struct StackEnvelope {
    stack: RawStack,
}

#[derive(Deserialize)]
struct RawStack {
    id: String,
    stack_name: String,
    #[serde(default)]
    stack_status: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    stack_status_reason: String,
    #[serde(default)]
    parameters: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    outputs: Option<Vec<RawOutput>>,
    #[serde(default)]
    creation_time: Option<String>,
    #[serde(default)]
    updated_time: Option<String>,
    #[serde(default)]
    timeout_mins: Option<u32>,
    #[serde(default)]
    disable_rollback: Option<bool>,
}

#[derive(Deserialize)]
struct RawOutput {
    output_key: String,
    #[serde(default)]
    output_value: Value,
    #[serde(default)]
    output_error: Option<String>,
}

impl From<RawStack> for Stack {
    fn from(raw: RawStack) -> Stack {
        let parameters = raw
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect();
        let mut outputs = BTreeMap::new();
        let mut output_errors = BTreeMap::new();
        for o in raw.outputs.unwrap_or_default() {
            if let Some(e) = o.output_error {
                output_errors.insert(o.output_key.clone(), e);
            }
            outputs.insert(o.output_key, o.output_value);
        }
        Stack {
            id: raw.id,
            name: raw.stack_name,
            status: raw.stack_status,
            status_reason: raw.stack_status_reason,
            parameters,
            outputs,
            output_errors,
            creation_time: raw.creation_time,
            updated_time: raw.updated_time,
            timeout_mins: raw.timeout_mins,
            disable_rollback: raw.disable_rollback,
        }
    }
}

#[derive(Deserialize)]
struct ListEnvelope {
    stacks: Vec<StackSummary>,
    /// `[{"rel": "next", "href": ...}]` when the page was full.
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    rel: String,
}

/// Pages one [`HeatClient::list_stacks_by_id`] call follows at most: Heat caps a page at
/// `max_stacks_per_page` (100 by default), so a batch of `ids` needs `ids / 100` pages; more
/// than this is a misbehaving server.
const MAX_LIST_PAGES: usize = 64;

/// Client of one project's Heat endpoint.
#[derive(Clone)]
pub struct HeatClient {
    http: HttpClient,
    base: Url,
    tokens: Arc<dyn TokenProvider>,
}

impl fmt::Debug for HeatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeatClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Rewrites a Heat endpoint `.../v1/{project}` to address another project (the caller's token must
/// be allowed to act there, e.g. an admin service token). An endpoint ending in `/v1` gets the
/// project appended.
pub fn heat_url_for_project(endpoint: &Url, project_id: &str) -> HeatResult<Url> {
    let mut url = endpoint.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| Error::Config(format!("{endpoint} cannot be used as a base URL")))?;
        segments.pop_if_empty();
        let ends_with_version = endpoint
            .path_segments()
            .and_then(|mut s| s.rfind(|p| !p.is_empty()))
            .is_some_and(|last| last == "v1");
        if !ends_with_version {
            segments.pop();
        }
        segments.push(project_id);
    }
    Ok(url)
}

impl HeatClient {
    /// `base` is the orchestration endpoint, e.g. `http://host/heat-api/v1/<project>`.
    pub fn new(http: HttpClient, base: Url, tokens: Arc<dyn TokenProvider>) -> Self {
        HeatClient { http, base, tokens }
    }

    /// The endpoint this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> HeatResult<Url> {
        http::join(&self.base, segments)
    }

    async fn call<F>(&self, build: F) -> HeatResult<Response>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        http::send_authed(SERVICE, self.tokens.as_ref(), build).await
    }

    /// `POST /stacks` → 201. 409 → [`Error::Conflict`] (a live stack with this name exists: look it
    /// up with [`HeatClient::find_stack`] and adopt it); 400 → [`Error::BadRequest`] with Heat's message.
    #[tracing::instrument(name = "heat.create_stack", skip_all, fields(stack_name = %req.stack_name))]
    pub async fn create_stack(&self, req: &CreateStack) -> HeatResult<StackRef> {
        let url = self.url(&["stacks"])?;
        let response = self
            .call(|| self.http.request(Method::POST, url.clone()).json(req))
            .await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        let created: CreatedEnvelope = http::read_json(SERVICE, response).await?;
        tracing::info!(stack_id = %created.stack.id, "stack created");
        Ok(StackRef {
            id: created.stack.id,
            name: req.stack_name.clone(),
        })
    }

    /// Resolves a name or id with `GET /stacks/{name_or_id}` without following the 302: the
    /// `Location` gives `name/id`. 404 → `None`. An id also finds `DELETE_COMPLETE` stacks; a name
    /// only live ones.
    #[tracing::instrument(name = "heat.find_stack", skip_all, fields(stack = %name_or_id))]
    pub async fn find_stack(&self, name_or_id: &str) -> HeatResult<Option<StackRef>> {
        let url = self.url(&["stacks", name_or_id])?;
        let response = self
            .call(|| self.http.request(Method::GET, url.clone()))
            .await?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::InvalidResponse(format!("heat: {status} without a Location header"))
                })?;
            return parse_location(&url, location).map(Some);
        }
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let stack: StackEnvelope = http::read_json(SERVICE, response).await?;
                Ok(Some(StackRef {
                    id: stack.stack.id,
                    name: stack.stack.stack_name,
                }))
            }
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    /// `GET /stacks/{name}/{id}[?resolve_outputs=false]`. 404 → `None`.
    #[tracing::instrument(name = "heat.get_stack", skip_all, fields(stack_id = %stack.id))]
    pub async fn get_stack(
        &self,
        stack: &StackRef,
        resolve_outputs: bool,
    ) -> HeatResult<Option<Stack>> {
        let mut url = self.url(&["stacks", &stack.name, &stack.id])?;
        if !resolve_outputs {
            url.query_pairs_mut()
                .append_pair("resolve_outputs", "false");
        }
        let response = self
            .call(|| self.http.request(Method::GET, url.clone()))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let env: StackEnvelope = http::read_json(SERVICE, response).await?;
                Ok(Some(env.stack.into()))
            }
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    /// `PATCH /stacks/{name}/{id}` → 202: Heat keeps the template, files and parameters not given.
    #[tracing::instrument(name = "heat.update_stack_patch", skip_all, fields(stack_id = %stack.id))]
    pub async fn update_stack_patch(
        &self,
        stack: &StackRef,
        update: &UpdateStack,
    ) -> HeatResult<()> {
        let url = self.url(&["stacks", &stack.name, &stack.id])?;
        let response = self
            .call(|| self.http.request(Method::PATCH, url.clone()).json(update))
            .await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        Ok(())
    }

    /// `DELETE /stacks/{name}/{id}` → 204 [`DeleteOutcome::Deleted`]; 404 → [`DeleteOutcome::AlreadyGone`].
    #[tracing::instrument(name = "heat.delete_stack", skip_all, fields(stack_id = %stack.id))]
    pub async fn delete_stack(&self, stack: &StackRef) -> HeatResult<DeleteOutcome> {
        let url = self.url(&["stacks", &stack.name, &stack.id])?;
        let response = self
            .call(|| self.http.request(Method::DELETE, url.clone()))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(DeleteOutcome::AlreadyGone),
            s if s.is_success() => Ok(DeleteOutcome::Deleted),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    /// `GET /stacks[?name=...]`: live stacks of the project (summary fields only).
    #[tracing::instrument(name = "heat.list_stacks", skip_all)]
    pub async fn list_stacks(&self, name: Option<&str>) -> HeatResult<Vec<StackSummary>> {
        let mut url = self.url(&["stacks"])?;
        if let Some(name) = name {
            url.query_pairs_mut().append_pair("name", name);
        }
        let response = self
            .call(|| self.http.request(Method::GET, url.clone()))
            .await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        let list: ListEnvelope = http::read_json(SERVICE, response).await?;
        Ok(list.stacks)
    }

    /// `GET /stacks?id=..&id=..[&global_tenant=true]`: the live stacks among `ids` (summary
    /// fields, no outputs or parameters), following Heat's `next` links. With `global_tenant`
    /// the stacks of every project (admin, and Heat's `stacks:global_index` policy, which denies
    /// it by default: 403 [`Error::Forbidden`]); without it, the token's project's only.
    #[tracing::instrument(name = "heat.list_stacks_by_id", skip_all, fields(ids = ids.len()))]
    pub async fn list_stacks_by_id(
        &self,
        ids: &[String],
        global_tenant: bool,
    ) -> HeatResult<Vec<StackSummary>> {
        let mut url = self.url(&["stacks"])?;
        {
            let mut q = url.query_pairs_mut();
            for id in ids {
                q.append_pair("id", id);
            }
            if global_tenant {
                q.append_pair("global_tenant", "true");
            }
            q.append_pair("limit", &ids.len().to_string());
        }
        let mut found = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let response = self
                .call(|| self.http.request(Method::GET, url.clone()))
                .await?;
            if !response.status().is_success() {
                return Err(http::error_from_response(SERVICE, response).await);
            }
            let page: ListEnvelope = http::read_json(SERVICE, response).await?;
            let last = page.stacks.last().map(|s| s.id.clone());
            found.extend(page.stacks);
            // A full page has a `next` link even when nothing follows: with every id found there
            // is nothing to ask. Heat's link drops the filters; the next page is this query from
            // the last stack.
            let more = page.links.iter().any(|l| l.rel == "next") && found.len() < ids.len();
            let (Some(last), true) = (last, more) else {
                return Ok(found);
            };
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "marker")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("marker", &last);
        }
        Err(Error::InvalidResponse(format!(
            "heat: more than {MAX_LIST_PAGES} pages listing {} stacks",
            ids.len()
        )))
    }
}

/// Extracts `name/id` from a `Location` such as `http://h/v1/p/stacks/{name}/{id}`.
fn parse_location(request_url: &Url, location: &str) -> HeatResult<StackRef> {
    let bad = || Error::InvalidResponse(format!("heat: unexpected Location {location:?}"));
    let url = request_url.join(location).map_err(|_| bad())?;
    let segments: Vec<&str> = url
        .path_segments()
        .ok_or_else(bad)?
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [.., "stacks", name, id] => {
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| bad())
            };
            Ok(StackRef {
                name: decode(name)?,
                id: decode(id)?,
            })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing_round_trips() {
        for s in [
            "CREATE_IN_PROGRESS",
            "UPDATE_COMPLETE",
            "ROLLBACK_FAILED",
            "DELETE_COMPLETE",
            "CHECK_COMPLETE",
        ] {
            assert_eq!(status_of(s).unwrap().to_string(), s);
        }
        assert!(status_of("CREATE_IN_PROGRESS").unwrap().is_in_progress());
        assert!(status_of("CREATE_FAILED").unwrap().is_failed());
        assert!(status_of("BOGUS").is_none());
        assert!(status_of("CREATE_DONE").is_none());
    }

    #[test]
    fn location_parsing() {
        let req = Url::parse("http://h/heat-api/v1/p/stacks/k8s-abc").unwrap();
        let r = parse_location(&req, "http://h/heat-api/v1/p/stacks/k8s-abc/7d0f").unwrap();
        assert_eq!(
            r,
            StackRef {
                name: "k8s-abc".into(),
                id: "7d0f".into()
            }
        );
        let r = parse_location(&req, "/heat-api/v1/p/stacks/a.b/1?x=y").unwrap();
        assert_eq!(
            r,
            StackRef {
                name: "a.b".into(),
                id: "1".into()
            }
        );
        // A stack may be named "stacks".
        let r = parse_location(&req, "http://h/v1/p/stacks/stacks/9").unwrap();
        assert_eq!(r.name, "stacks");
        assert!(parse_location(&req, "http://h/v1/p/other/x").is_err());
    }

    #[test]
    fn project_rewrite() {
        let u = Url::parse("http://h/heat-api/v1/svcproj").unwrap();
        assert_eq!(
            heat_url_for_project(&u, "p2").unwrap().as_str(),
            "http://h/heat-api/v1/p2"
        );
        let u = Url::parse("http://h:8004/v1/").unwrap();
        assert_eq!(
            heat_url_for_project(&u, "p2").unwrap().as_str(),
            "http://h:8004/v1/p2"
        );
    }

    #[test]
    fn stack_body_parsing() {
        let body = serde_json::json!({"stack": {
            "id": "1", "stack_name": "s", "stack_status": "CREATE_COMPLETE", "stack_status_reason": null,
            "parameters": {"number_of_minions": "2", "tls_disabled": "False", "n": 3},
            "outputs": [
                {"output_key": "kube_masters", "output_value": ["1.2.3.4"], "description": ""},
                {"output_key": "broken", "output_value": null, "output_error": "boom"}
            ],
            "timeout_mins": null
        }});
        let env: StackEnvelope = serde_json::from_value(body).unwrap();
        let s: Stack = env.stack.into();
        assert_eq!(s.param("number_of_minions"), Some("2"));
        assert_eq!(s.param("n"), Some("3"));
        assert_eq!(s.status_reason, "");
        assert_eq!(s.outputs["kube_masters"], serde_json::json!(["1.2.3.4"]));
        assert_eq!(s.output_errors["broken"], "boom");
        assert!(s.heat_status().unwrap().is_complete());
    }
}
