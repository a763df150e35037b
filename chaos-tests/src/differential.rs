//! Differential testing against upstream Magnum: one scenario of HTTP requests is sent to two
//! targets, and every exchange is compared by status code, the presence of Magnum's headers and
//! the *shape* of the JSON body (field names and JSON types; values such as ids and timestamps
//! are ignored). Differences are matched against a reviewed list of accepted ones, each with its
//! reason (`chaos-tests/DIFFERENCES.md`).
use reqwest::Method;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Headers whose presence must agree (names compared case-insensitively).
pub const HEADERS: &[&str] = &[
    "openstack-api-minimum-version",
    "openstack-api-maximum-version",
    "openstack-api-version",
    "vary",
    "location",
    "x-openstack-request-id",
    "www-authenticate",
];

/// One request of the scenario. Strings in `path` and `body` may name `{vars}` of the target.
#[derive(Clone, Debug)]
pub struct Step {
    pub label: String,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    /// `OpenStack-API-Version: container-infra <this>`; `None` sends no header.
    pub version: Option<String>,
    /// Variables to read from the response: `(name, JSON pointer)`.
    pub save: Vec<(String, String)>,
    /// After the request: poll `GET <path>` until `/status` is terminal or the object is gone.
    pub wait: Option<String>,
}

impl Step {
    pub fn new(label: &str, method: Method, path: &str) -> Self {
        Step {
            label: label.into(),
            method,
            path: path.into(),
            body: None,
            version: Some("latest".into()),
            save: vec![],
            wait: None,
        }
    }
    pub fn body(mut self, b: Value) -> Self {
        self.body = Some(b);
        self
    }
    pub fn version(mut self, v: Option<&str>) -> Self {
        self.version = v.map(String::from);
        self
    }
    pub fn save(mut self, var: &str, pointer: &str) -> Self {
        self.save.push((var.into(), pointer.into()));
        self
    }
    pub fn wait(mut self, path: &str) -> Self {
        self.wait = Some(path.into());
        self
    }
}

/// A server the scenario runs against.
pub struct Target {
    pub name: String,
    /// `http://host:port` (paths start with `/v1`).
    pub root: String,
    pub token: String,
    pub vars: HashMap<String, String>,
    pub http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: BTreeSet<String>,
    pub body: Value,
}

fn subst(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn subst_json(v: &Value, vars: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(subst(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|x| subst_json(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), subst_json(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Target {
    async fn send(&self, step: &Step) -> Exchange {
        let url = format!("{}{}", self.root, subst(&step.path, &self.vars));
        let mut rq = self
            .http
            .request(step.method.clone(), &url)
            .header("X-Auth-Token", &self.token)
            .header("Accept", "application/json");
        if let Some(v) = &step.version {
            rq = rq.header("OpenStack-API-Version", format!("container-infra {v}"));
        }
        if let Some(b) = &step.body {
            rq = rq.json(&subst_json(b, &self.vars));
        }
        let r = rq
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {url}: {e}", self.name));
        let status = r.status().as_u16();
        let headers = HEADERS
            .iter()
            .filter(|h| r.headers().contains_key(**h))
            .map(|h| h.to_string())
            .collect();
        let text = r.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String("<non-JSON body>".into()))
        };
        Exchange {
            status,
            headers,
            body,
        }
    }

    /// `Some(updated_at)` of the object at `path`, `None` when there is no such object yet.
    async fn updated_at(&self, path: &str) -> Option<Option<String>> {
        let x = self.send(&Step::new("probe", Method::GET, path)).await;
        (x.status == 200).then(|| x.body["updated_at"].as_str().map(String::from))
    }

    /// Polls until the object at `path` is gone (404 after it existed) or, once its `updated_at` moved past
    /// `before` (upstream's conductor picks a cast up seconds later, so the old terminal status
    /// would otherwise end the wait early), has a terminal status.
    async fn wait(&self, path: &str, before: Option<Option<String>>, timeout: Duration) -> String {
        let step = Step::new("wait", Method::GET, path);
        let start = Instant::now();
        loop {
            let x = self.send(&step).await;
            // Not there yet after a create: upstream's conductor writes the row after the 202.
            if x.status == 404 && before.is_some() {
                return "gone".into();
            }
            let status = x.body["status"].as_str().unwrap_or_default().to_string();
            let moved = before
                .as_ref()
                .is_none_or(|b| x.body["updated_at"].as_str().map(String::from) != *b);
            // Upstream's poller writes DELETE_COMPLETE and destroys the row a moment later; a
            // show in between can even answer 400. The end of a delete is the row's absence.
            let terminal = status != "DELETE_COMPLETE"
                && (status.ends_with("_COMPLETE") || status.ends_with("_FAILED"));
            if moved && terminal {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "{}: {path} still {status} after {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Runs the scenario; returns each step's exchange and, for waits, the final status.
    pub async fn run(&mut self, steps: &[Step]) -> Vec<(Exchange, Option<String>)> {
        let mut out = Vec::new();
        for step in steps {
            let before = match &step.wait {
                Some(p) => self.updated_at(&subst(p, &self.vars)).await,
                None => None,
            };
            let x = self.send(step).await;
            for (var, ptr) in &step.save {
                if let Some(v) = x.body.pointer(ptr) {
                    let s = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    self.vars.insert(var.clone(), s);
                }
            }
            let waited = match &step.wait {
                Some(p) if x.status < 300 => {
                    let p = subst(p, &self.vars);
                    Some(self.wait(&p, before, Duration::from_secs(120)).await)
                }
                _ => None,
            };
            out.push((x, waited));
        }
        out
    }
}

/// The JSON type of a value, as compared (all numbers are one type).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One difference between the two exchanges of a step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diff {
    pub step: String,
    /// `status`, `header`, `missing` (upstream has it, ours not), `extra`, `type`, `wait`.
    pub kind: String,
    /// JSON pointer with `*` for array elements, the header name, or empty.
    pub path: String,
    pub detail: String,
}

/// The union of an array's element shapes: objects merged key by key, so a key present in any
/// element counts; a null element adopts the other elements' type.
fn merge(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Object(x), Value::Object(y)) => {
            let mut m: Map<String, Value> = x.clone();
            for (k, v) in y {
                let merged = match m.get(k) {
                    Some(old) => merge(old, v),
                    None => v.clone(),
                };
                m.insert(k.clone(), merged);
            }
            Value::Object(m)
        }
        (Value::Array(x), Value::Array(y)) => {
            Value::Array(x.iter().chain(y).fold(vec![], |acc, e| match acc.first() {
                Some(f) => vec![merge(f, e)],
                None => vec![e.clone()],
            }))
        }
        (x, _) => x.clone(),
    }
}

fn elements(a: &[Value]) -> Option<Value> {
    a.iter().cloned().reduce(|x, y| merge(&x, &y))
}

/// Maps whose keys are user data (labels, health reasons, properties): compared as a whole by
/// type, never key by key.
const OPAQUE: &[&str] = &[
    "labels",
    "labels_added",
    "labels_overridden",
    "labels_skipped",
    "health_status_reason",
    "node_labels",
    "properties",
    "faults",
];

/// Compares the shape of `up` (upstream) and `ours` under `path`. `null` matches any type
/// (Magnum's fields are nullable); arrays compare the union of their elements when both have some.
pub fn compare_shape(step: &str, path: &str, up: &Value, ours: &Value, out: &mut Vec<Diff>) {
    match (up, ours) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(_), Value::Object(_))
            if OPAQUE.iter().any(|k| path.ends_with(&format!("/{k}"))) => {}
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}/{k}");
                match b.get(k) {
                    Some(vb) => compare_shape(step, &p, va, vb, out),
                    None => out.push(Diff {
                        step: step.into(),
                        kind: "missing".into(),
                        path: p,
                        detail: format!("upstream has a {}", kind(va)),
                    }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Diff {
                        step: step.into(),
                        kind: "extra".into(),
                        path: format!("{path}/{k}"),
                        detail: format!("ours has a {}", kind(vb)),
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(ea), Some(eb)) = (elements(a), elements(b)) {
                compare_shape(step, &format!("{path}/*"), &ea, &eb, out);
            }
        }
        (a, b) if kind(a) != kind(b) => out.push(Diff {
            step: step.into(),
            kind: "type".into(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            detail: format!("upstream {}, ours {}", kind(a), kind(b)),
        }),
        _ => {}
    }
}

/// All differences of one step.
pub fn compare(
    step: &Step,
    up: &(Exchange, Option<String>),
    ours: &(Exchange, Option<String>),
) -> Vec<Diff> {
    let mut out = vec![];
    let d = |kind: &str, path: &str, detail: String| Diff {
        step: step.label.clone(),
        kind: kind.into(),
        path: path.into(),
        detail,
    };
    if up.0.status != ours.0.status {
        out.push(d(
            "status",
            "",
            format!("upstream {}, ours {}", up.0.status, ours.0.status),
        ));
    }
    for h in up.0.headers.symmetric_difference(&ours.0.headers) {
        let side = if up.0.headers.contains(h) {
            "only upstream sends it"
        } else {
            "only ours sends it"
        };
        out.push(d("header", h, side.into()));
    }
    compare_shape(&step.label, "", &up.0.body, &ours.0.body, &mut out);
    if up.1 != ours.1 {
        out.push(d(
            "wait",
            "",
            format!("upstream ended {:?}, ours {:?}", up.1, ours.1),
        ));
    }
    out
}

/// One row of the accepted-differences table.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub step: String,
    pub kind: String,
    pub path: String,
    pub reason: String,
}

impl Accepted {
    /// `*` in `step` or `path` matches anything; a trailing `/*` of `path` matches the subtree.
    pub fn matches(&self, d: &Diff) -> bool {
        let glob = |pat: &str, s: &str| {
            pat == "*"
                || pat == s
                || pat
                    .strip_suffix("/**")
                    .is_some_and(|p| s == p || s.starts_with(&format!("{p}/")))
        };
        glob(&self.step, &d.step) && self.kind == d.kind && glob(&self.path, &d.path)
    }
}

/// Parses the table rows `| step | kind | path | reason |` of a markdown file (header and
/// separator rows skipped); backticks around cells are dropped.
pub fn parse_accepted(md: &str) -> Vec<Accepted> {
    md.lines()
        .filter_map(|l| {
            let l = l.trim();
            let cells: Vec<String> = l
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            if cells.len() != 4 || cells[0] == "step" || cells[0].starts_with("---") {
                return None;
            }
            Some(Accepted {
                step: cells[0].clone(),
                kind: cells[1].clone(),
                path: cells[2].clone(),
                reason: cells[3].clone(),
            })
        })
        .collect()
}

/// Splits differences into (unaccepted, accepted rows never used).
pub fn judge(diffs: &[Diff], accepted: &[Accepted]) -> (Vec<Diff>, Vec<Accepted>) {
    let bad = diffs
        .iter()
        .filter(|d| !accepted.iter().any(|a| a.matches(d)))
        .cloned()
        .collect();
    let unused = accepted
        .iter()
        .filter(|a| !diffs.iter().any(|d| a.matches(d)))
        .cloned()
        .collect();
    (bad, unused)
}

/// A summary count per kind, for the report line.
pub fn count_by_kind(diffs: &[Diff]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in diffs {
        *m.entry(d.kind.clone()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_ignore_values_and_nulls_but_not_names_or_types() {
        let mut out = vec![];
        compare_shape(
            "s",
            "",
            &json!({"a": 1, "b": "x", "c": null, "d": [{"k": 1}, {"j": true}], "e": "s"}),
            &json!({"a": 2.5, "b": null, "c": [1], "d": [{"k": 3, "j": false}], "e": 3, "f": 1}),
            &mut out,
        );
        let got: Vec<(String, String)> = out.into_iter().map(|d| (d.kind, d.path)).collect();
        assert_eq!(
            got,
            vec![
                ("type".to_string(), "/e".to_string()),
                ("extra".to_string(), "/f".to_string())
            ]
        );
    }

    #[test]
    fn missing_keys_inside_array_elements_are_found() {
        let mut out = vec![];
        compare_shape(
            "s",
            "",
            &json!({"items": [{"a": 1, "b": 2}]}),
            &json!({"items": [{"a": 1}, {"a": 2}]}),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "/items/*/b");
        assert_eq!(out[0].kind, "missing");
    }

    #[test]
    fn accepted_table_rows_match_with_globs() {
        let md = "# x\n| step | kind | path | reason |\n|---|---|---|---|\n\
                  | `*` | extra | `/a/**` | why |\n| one | status | | because |\n";
        let acc = parse_accepted(md);
        assert_eq!(acc.len(), 2);
        let d = |step: &str, kind: &str, path: &str| Diff {
            step: step.into(),
            kind: kind.into(),
            path: path.into(),
            detail: String::new(),
        };
        let (bad, unused) = judge(
            &[
                d("x", "extra", "/a/b/c"),
                d("one", "status", ""),
                d("two", "status", ""),
            ],
            &acc,
        );
        assert_eq!(bad, vec![d("two", "status", "")]);
        assert!(unused.is_empty());
    }
}
