//! Crash-injection points for the failover matrix (design §7 row 1). Off unless the process was
//! started with `MAGNUM_FAILPOINTS`:
//!
//! - `MAGNUM_FAILPOINTS="<kind>:<site>:<before|after>[:<n>[:<stack>]]"`, comma-separated, arms
//!   points for the process lifetime;
//! - `MAGNUM_FAILPOINTS=@<path>` re-reads the same syntax from `<path>` at every site (an absent
//!   file arms nothing), so a test can arm a running node and disarm it before a restart.
//!
//! `<kind>` is the operation kind (`create`, `update`, `delete`, or `*`), `<site>` an `OpEvent`
//! variant name (`StackCreated`: `before` = about to propose it, `after` = committed) or an
//! external call (`heat:create`, `heat:update`, `heat:delete`, `heat:create_nodegroup`,
//! `heat:patch`, `keystone:trustee`, `keystone:trust`, `keystone:password`,
//! `keystone:delete_trustee`: `after` = the call returned, its result not yet recorded). `n` fires on the n-th pass (default 1); `<stack>` limits the point
//! to operations whose stack name contains it. A firing point aborts the process: a crash, not
//! a clean exit; prefixed `pause@`, it stops the process instead (SIGSTOP to itself, as a GC
//! or VM stall would), and a test's SIGCONT lets it go on from that very point. While enabled every site passed is printed as `FAILPOINT-SITE ...` on stderr,
//! so a test can enumerate the sites each operation kind goes through.
use crate::cloud::{
    Cloud, CloudError, Look, StackHandle, StackState, StackUpdate, Target, TokenUser, TrusteeUser,
};
use async_trait::async_trait;
use magnum_proto::{ClusterView, NodeGroup, OpEvent, OpKind, Operation, ProjectId, Trustor};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

impl When {
    fn as_str(self) -> &'static str {
        match self {
            When::Before => "before",
            When::After => "after",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// `None` = any kind (`*`).
    pub kind: Option<String>,
    pub site: String,
    pub when: When,
    pub nth: u32,
    pub stack: Option<String>,
    /// `pause@`: stop the process at the site instead of aborting it.
    pub pause: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad failpoint {spec:?}: {why}")]
pub struct ParseError {
    spec: String,
    why: &'static str,
}

/// Parses a comma-separated list of points; blank entries are ignored.
pub fn parse(spec: &str) -> Result<Vec<Point>, ParseError> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(spec: &str) -> Result<Point, ParseError> {
    let bad = |why| ParseError {
        spec: spec.to_string(),
        why,
    };
    let (pause, rest) = match spec.strip_prefix("pause@") {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let mut parts: Vec<&str> = rest.split(':').collect();
    // `heat:<call>` and `keystone:<call>` are one site name with a colon in it.
    let site = if parts.len() > 2 && matches!(parts[1], "heat" | "keystone") {
        let call = parts.remove(2);
        if call.is_empty() {
            return Err(bad("empty external call name"));
        }
        format!("{}:{call}", parts[1])
    } else {
        parts.get(1).copied().unwrap_or_default().to_string()
    };
    let mut point = finish(&parts, site, bad)?;
    point.pause = pause;
    Ok(point)
}

fn finish(
    parts: &[&str],
    site: String,
    bad: impl Fn(&'static str) -> ParseError,
) -> Result<Point, ParseError> {
    if !(3..=5).contains(&parts.len()) {
        return Err(bad("expected <kind>:<site>:<before|after>[:<n>[:<stack>]]"));
    }
    let kind = match parts[0] {
        "" => return Err(bad("empty operation kind")),
        "*" => None,
        k => Some(k.to_ascii_lowercase()),
    };
    if site.is_empty() {
        return Err(bad("empty site name"));
    }
    let when = match parts[2] {
        "before" => When::Before,
        "after" => When::After,
        _ => return Err(bad("the third field must be before or after")),
    };
    let nth = match parts.get(3) {
        None => 1,
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(bad("n must be a positive integer")),
        },
    };
    let stack = match parts.get(4) {
        None => None,
        Some(&"") => return Err(bad("empty stack filter")),
        Some(s) => Some(s.to_string()),
    };
    Ok(Point {
        kind,
        site,
        when,
        nth,
        stack,
        pause: false,
    })
}

/// The serde variant name of an enum value (`OpKind::Create` → `Create`), so sites of variants
/// added later are named without a list to maintain here.
pub fn variant_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

enum Source {
    Fixed(Vec<Point>),
    File(std::path::PathBuf),
}

struct Registry {
    source: Source,
    /// Passes per armed point, counted per process.
    hits: Mutex<HashMap<String, u32>>,
}

fn registry() -> Option<&'static Registry> {
    static REG: OnceLock<Option<Registry>> = OnceLock::new();
    REG.get_or_init(|| {
        let raw = std::env::var("MAGNUM_FAILPOINTS").ok()?;
        let source = match raw.strip_prefix('@') {
            Some(path) => Source::File(path.into()),
            None => match parse(&raw) {
                Ok(points) => Source::Fixed(points),
                Err(e) => {
                    // A test that mistyped its point must not silently run without it.
                    eprintln!("FAILPOINT config error: {e}");
                    std::process::abort();
                }
            },
        };
        Some(Registry {
            source,
            hits: Mutex::new(HashMap::new()),
        })
    })
    .as_ref()
}

/// Whether failpoints are configured at all (decides whether the cloud gets wrapped).
pub fn enabled() -> bool {
    registry().is_some()
}

/// Passes a site; aborts the process if an armed point matches for the n-th time.
pub fn check(kind: &str, site: &str, when: When, stack: &str) {
    let Some(reg) = registry() else { return };
    let kind = kind.to_ascii_lowercase();
    eprintln!("FAILPOINT-SITE {kind}:{site}:{} {stack}", when.as_str());
    let points = match &reg.source {
        Source::Fixed(p) => p.clone(),
        Source::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => match parse(&text) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("FAILPOINT config error: {e}");
                    std::process::abort();
                }
            },
            Err(_) => Vec::new(),
        },
    };
    for p in points {
        let matches = p.kind.as_deref().is_none_or(|k| k == kind)
            && p.site == site
            && p.when == when
            && p.stack.as_deref().is_none_or(|s| stack.contains(s));
        if !matches {
            continue;
        }
        let key = format!("{p:?}");
        let n = {
            let mut hits = reg.hits.lock().unwrap_or_else(|e| e.into_inner());
            let n = hits.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        if n == p.nth && p.pause {
            eprintln!("FAILPOINT paused {kind}:{site}:{} {stack}", when.as_str());
            // Test-only: the whole process stops here until SIGCONT.
            let me = std::process::id().to_string();
            if let Err(e) = std::process::Command::new("kill")
                .args(["-STOP", &me])
                .status()
            {
                eprintln!("FAILPOINT cannot pause: {e}");
                std::process::abort();
            }
            eprintln!("FAILPOINT resumed {kind}:{site}:{} {stack}", when.as_str());
        } else if n == p.nth {
            eprintln!("FAILPOINT fired {kind}:{site}:{} {stack}", when.as_str());
            std::process::abort();
        }
    }
}

/// The reconciler's commit hook: `when` relative to the proposal of `event`.
pub fn on_event(op: &Operation, event: &OpEvent, when: When, stack: &str) {
    if registry().is_none() {
        return;
    }
    check(&variant_name(&op.kind), &variant_name(event), when, stack);
}

/// Wraps `cloud` so every mutating Heat call passes `heat:<call>` sites; `cloud` unchanged when
/// failpoints are off.
pub fn wrap(cloud: Arc<dyn Cloud>) -> Arc<dyn Cloud> {
    if enabled() {
        Arc::new(FailpointCloud(cloud))
    } else {
        cloud
    }
}

struct FailpointCloud(Arc<dyn Cloud>);

/// The serving operation's kind (`""` for none: only `*` points match it).
fn kind_of(target: &Target<'_>) -> String {
    target
        .op
        .map(|o| variant_name::<OpKind>(&o.kind))
        .unwrap_or_default()
}

/// The serving operation's stack name, as its commit sites use.
fn op_stack<'a>(target: &Target<'a>) -> &'a str {
    target.op.map(|o| o.stack_name).unwrap_or_default()
}

#[async_trait]
impl Cloud for FailpointCloud {
    fn stack_name(&self, cluster: &ClusterView) -> String {
        self.0.stack_name(cluster)
    }

    async fn create_stack(&self, target: &Target<'_>) -> Result<StackHandle, CloudError> {
        let (kind, stack) = (kind_of(target), op_stack(target));
        check(&kind, "heat:create", When::Before, stack);
        let r = self.0.create_stack(target).await;
        check(&kind, "heat:create", When::After, stack);
        r
    }

    async fn find_stack(
        &self,
        project: &ProjectId,
        name_or_id: &str,
    ) -> Result<Option<StackHandle>, CloudError> {
        self.0.find_stack(project, name_or_id).await
    }

    async fn get_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError> {
        self.0.get_stack(target, stack, with_outputs).await
    }

    async fn look_stack(&self, project: &ProjectId, stack: &StackHandle) -> Look {
        self.0.look_stack(project, stack).await
    }

    /// The trait passes no operation here: the site's kind is `delete`, the only kind that
    /// deletes stacks.
    async fn delete_stack(
        &self,
        project: &ProjectId,
        stack: &StackHandle,
    ) -> Result<(), CloudError> {
        check("delete", "heat:delete", When::Before, &stack.name);
        let r = self.0.delete_stack(project, stack).await;
        check("delete", "heat:delete", When::After, &stack.name);
        r
    }

    async fn update_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        update: &StackUpdate,
    ) -> Result<(), CloudError> {
        let (kind, name) = (kind_of(target), op_stack(target));
        check(&kind, "heat:update", When::Before, name);
        let r = self.0.update_stack(target, stack, update).await;
        check(&kind, "heat:update", When::After, name);
        r
    }

    fn nodegroup_stack_name(&self, cluster: &ClusterView, ng: &NodeGroup) -> String {
        self.0.nodegroup_stack_name(cluster, ng)
    }

    async fn create_nodegroup_stack(
        &self,
        target: &Target<'_>,
        ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        let (kind, stack) = (kind_of(target), self.0.stack_name(target.view));
        check(&kind, "heat:create_nodegroup", When::Before, &stack);
        let r = self.0.create_nodegroup_stack(target, ng).await;
        check(&kind, "heat:create_nodegroup", When::After, &stack);
        r
    }

    async fn patch_parameters(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
        rollback: bool,
    ) -> Result<(), CloudError> {
        let (kind, name) = (kind_of(target), self.0.stack_name(target.view));
        check(&kind, "heat:patch", When::Before, &name);
        let r = self
            .0
            .patch_parameters(target, stack, parameters, rollback)
            .await;
        check(&kind, "heat:patch", When::After, &name);
        r
    }

    fn trusts(&self) -> bool {
        self.0.trusts()
    }

    async fn token_user(&self, token: &str) -> Result<Option<TokenUser>, CloudError> {
        self.0.token_user(token).await
    }

    async fn ensure_trustee(
        &self,
        cluster: &ClusterView,
        password: &str,
    ) -> Result<TrusteeUser, CloudError> {
        let stack = self.0.stack_name(cluster);
        check("create", "keystone:trustee", When::Before, &stack);
        let r = self.0.ensure_trustee(cluster, password).await;
        check("create", "keystone:trustee", When::After, &stack);
        r
    }

    async fn ensure_trust(
        &self,
        cluster: &ClusterView,
        trustee_user_id: &str,
        trustor: &Trustor,
    ) -> Result<String, CloudError> {
        let stack = self.0.stack_name(cluster);
        check("create", "keystone:trust", When::Before, &stack);
        let r = self.0.ensure_trust(cluster, trustee_user_id, trustor).await;
        check("create", "keystone:trust", When::After, &stack);
        r
    }

    async fn set_trustee_password(
        &self,
        cluster: &ClusterView,
        user_id: &str,
        password: &str,
    ) -> Result<(), CloudError> {
        let stack = self.0.stack_name(cluster);
        let kind = variant_name(&OpKind::RotateCredential);
        check(&kind, "keystone:password", When::Before, &stack);
        let r = self
            .0
            .set_trustee_password(cluster, user_id, password)
            .await;
        check(&kind, "keystone:password", When::After, &stack);
        r
    }

    async fn delete_trustee(&self, cluster: &ClusterView) -> Result<(), CloudError> {
        let stack = self.0.stack_name(cluster);
        check("delete", "keystone:delete_trustee", When::Before, &stack);
        let r = self.0.delete_trustee(cluster).await;
        check("delete", "keystone:delete_trustee", When::After, &stack);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points() {
        let p = parse("create:StackCreated:after, update:heat:update:after:2:fp-07 ,").unwrap();
        assert_eq!(
            p,
            vec![
                Point {
                    kind: Some("create".into()),
                    site: "StackCreated".into(),
                    when: When::After,
                    nth: 1,
                    stack: None,
                    pause: false,
                },
                Point {
                    kind: Some("update".into()),
                    site: "heat:update".into(),
                    when: When::After,
                    nth: 2,
                    stack: Some("fp-07".into()),
                    pause: false,
                },
            ]
        );
        let k = parse("delete:keystone:delete_trustee:after:1:fp-09").unwrap();
        assert_eq!(k[0].site, "keystone:delete_trustee");
        assert_eq!(k[0].stack.as_deref(), Some("fp-09"));
        let paused = parse("pause@create:heat:create:before:1:fp-02").unwrap();
        assert!(paused[0].pause && paused[0].site == "heat:create");
        assert!(!k[0].pause);
        let any = parse("*:DeleteFinished:before:3").unwrap();
        assert_eq!(any[0].kind, None);
        assert_eq!(any[0].nth, 3);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_points() {
        for bad in [
            "create",
            "create:StackCreated",
            "create:StackCreated:during",
            "create:StackCreated:after:0",
            "create:StackCreated:after:x",
            ":StackCreated:after",
            "create::after",
            "create:heat::after",
            "create:keystone::after",
            "create:StackCreated:after:1:",
            "create:StackCreated:after:1:s:extra",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn names_variants_generically() {
        assert_eq!(variant_name(&OpKind::Create), "Create");
        assert_eq!(
            variant_name(&OpEvent::StackCreateIntent),
            "StackCreateIntent"
        );
        let e = OpEvent::StackCreated {
            stack_id: "x".into(),
        };
        assert_eq!(variant_name(&e), "StackCreated");
    }
}
