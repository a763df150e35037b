//! `magnum api|conductor --config-file FILE` (repeatable): magnum.conf in oslo.config's INI
//! shape, with upstream Magnum's section and option names where the meaning is the same
//! (`[api] host/port/max_limit`, `[keystone_authtoken]`, `[trust] trustee_domain_name`,
//! `[cluster_heat] create_timeout`) and our own
//! sections for the rest (`[conductor]`, `[raft]`, `[internal]`, `[certificates]`).
//!
//! Every key maps to one of the command's flags ([`KEYS`]): the files are read first (a later
//! file wins over an earlier one), turned into flags, and the command line goes after them and
//! wins; defaults stay clap's, so one table of defaults exists. The files are checked before
//! anything starts: an unknown section or key, a value of the wrong type or a required option
//! that nothing sets stops the process with the file, section and key named.
use crate::cli::Cli;
use clap::CommandFactory;
use ini::{Ini, ParseOption};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
    #[error("{0}")]
    Missing(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Api,
    Conductor,
}

const API: &[Role] = &[Role::Api];
const CONDUCTOR: &[Role] = &[Role::Conductor];
const BOTH: &[Role] = &[Role::Api, Role::Conductor];

/// What a value must look like.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    /// A non-negative integer.
    Int,
    /// `true`/`false` (oslo.config also takes yes/no, on/off, 1/0).
    Bool,
    /// `host:port`.
    Addr,
    /// Comma-separated (oslo.config's ListOpt).
    List,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// How a key becomes flags.
#[derive(Clone, Copy, Debug)]
enum To {
    /// `--flag VALUE`.
    Flag(&'static str),
    /// `--flag` once per comma-separated item.
    Each(&'static str),
    /// `true` → `--flag`.
    Switch(&'static str),
    /// `false` → `--flag` (a `--no-...` switch).
    Unless(&'static str),
    /// `[api] host` and `port` together make `--listen`.
    Listen,
    /// Checked only (`[keystone_authtoken] auth_type` must be `password`).
    Nothing,
}

struct Key {
    section: &'static str,
    name: &'static str,
    kind: Kind,
    to: To,
    roles: &'static [Role],
    /// Some flag of the role must be set by a file, the command line or its environment.
    required: bool,
    /// The default when clap has none to show (values filled in by the code).
    default: Option<&'static str>,
    help: &'static str,
}

const fn key(
    section: &'static str,
    name: &'static str,
    kind: Kind,
    to: To,
    roles: &'static [Role],
    help: &'static str,
) -> Key {
    Key {
        section,
        name,
        kind,
        to,
        roles,
        required: false,
        default: None,
        help,
    }
}

const fn required(k: Key) -> Key {
    Key {
        required: true,
        ..k
    }
}

const fn defaults_to(k: Key, default: &'static str) -> Key {
    Key {
        default: Some(default),
        ..k
    }
}

use Kind::*;
use To::*;

/// Every key a magnum.conf may hold, in the example file's order.
#[rustfmt::skip]
const KEYS: &[Key] = &[
    key("api", "host", Text, Listen, API, "Address the API listens on (upstream `[api] host`)."),
    key("api", "port", Int, Listen, API, "Port the API listens on (upstream `[api] port`)."),
    key("api", "public_url", Text, Flag("--public-url"), API, "Base URL of links in answers; unset: from the request's Host header."),
    required(key("api", "conductors", List, Each("--conductor"), API, "Conductor service addresses (host:port, comma-separated); any one that answers will do.")),
    key("api", "max_in_flight", Int, Flag("--max-in-flight"), API, "Requests served at once; more are answered 503 with Retry-After."),
    key("api", "max_connections", Int, Flag("--max-connections"), API, "Open client connections; a new one beyond is closed at once."),
    key("api", "max_templates_per_project", Int, Flag("--max-templates-per-project"), API, "Most cluster templates one project may own (403 beyond)."),
    key("api", "max_limit", Int, Flag("--max-limit"), API, "The most items one page of a listing holds, whatever `limit` asks (upstream `[api] max_limit`)."),
    key("cluster_heat", "create_timeout", Int, Flag("--default-create-timeout"), API, "Minutes a cluster create may take when the request names no create_timeout (upstream `[cluster_heat] create_timeout`)."),
    required(key("keystone_authtoken", "auth_url", Text, Flag("--auth-url"), BOTH, "Keystone v3 URL, e.g. http://keystone:5000/v3.")),
    defaults_to(key("keystone_authtoken", "auth_type", OneOf(&["password"]), Nothing, BOTH, "Only `password` (the service user's)."), "password"),
    key("keystone_authtoken", "username", Text, Flag("--service-user"), BOTH, "The service user."),
    required(key("keystone_authtoken", "password", Text, Flag("--service-password"), BOTH, "The service user's password.")),
    key("keystone_authtoken", "project_name", Text, Flag("--service-project"), BOTH, "The service user's project."),
    key("keystone_authtoken", "user_domain_name", Text, Flag("--service-domain"), BOTH, "Domain of the service user (and of its project: both must be the same)."),
    defaults_to(key("keystone_authtoken", "project_domain_name", Text, Nothing, BOTH, "Domain of the service project (the same as user_domain_name)."), "Default"),
    key("keystone_authtoken", "region_name", Text, Flag("--region"), BOTH, "Region of the endpoints taken from the catalog; unset: any."),
    key("keystone_authtoken", "token_cache_time", Int, Flag("--token-cache-ttl-secs"), API, "Seconds a validated user token is trusted without asking Keystone again (a revoked token keeps working that long)."),
    key("keystone_authtoken", "invalid_token_cache_time", Int, Flag("--invalid-token-cache-ttl-secs"), API, "Seconds a token Keystone called invalid is refused without asking again; 0 disables."),
    key("trust", "trustee_domain_name", Text, Flag("--trustee-domain"), CONDUCTOR, "Keystone domain of cluster trustees; unset: clusters get no trustee and no trust."),
    key("internal", "tls_dir", Text, Flag("--tls-dir"), BOTH, "This node's certificate: ca.crt, node.crt, node.key (`magnum manage certs issue`)."),
    key("internal", "mode", OneOf(&["strict", "permissive", "plain"]), Flag("--internal-tls"), BOTH, "strict: mutual TLS only; permissive: also plain HTTP (while turning TLS on); plain: no TLS. Unset: strict with tls_dir."),
    required(key("conductor", "node_id", Int, Flag("--node-id"), CONDUCTOR, "This conductor's id in the deployment.")),
    required(key("conductor", "data_dir", Text, Flag("--data-dir"), CONDUCTOR, "Where the Raft logs and snapshots live.")),
    required(key("conductor", "raft_listen", Addr, Flag("--raft-listen"), CONDUCTOR, "host:port of the Raft listener.")),
    required(key("conductor", "service_listen", Addr, Flag("--service-listen"), CONDUCTOR, "host:port of the service listener (API nodes, operators, metrics).")),
    required(key("conductor", "peers", List, Each("--peer"), CONDUCTOR, "ID=RAFT_ADDR@SERVICE_ADDR of this node and the deployment's first conductors, comma-separated.")),
    key("conductor", "shards", Int, Flag("--shards"), CONDUCTOR, "Data shards of a fresh deployment (fixed at bootstrap)."),
    key("conductor", "replicas", Int, Flag("--replicas"), CONDUCTOR, "Replicas per data shard of a fresh deployment (fixed at bootstrap)."),
    key("conductor", "bootstrap", Bool, Switch("--bootstrap"), CONDUCTOR, "Initialize the Raft groups: on a fresh deployment's first node, first start only."),
    key("conductor", "bootstrap_if_new", Bool, Switch("--bootstrap-if-new"), CONDUCTOR, "Bootstrap when the data dir holds no Raft state yet (one configuration for first start and restarts)."),
    key("conductor", "poll_interval_ms", Int, Flag("--poll-interval-ms"), CONDUCTOR, "Heat status poll interval of an operation."),
    key("conductor", "sync_interval_ms", Int, Flag("--sync-interval-ms"), CONDUCTOR, "Status sync of clusters with no operation; 0 disables it."),
    key("conductor", "idle_sync_interval_secs", Int, Flag("--idle-sync-interval-secs"), CONDUCTOR, "How often status sync looks at a finished cluster's stack that nothing moved lately; 0: every sync round."),
    key("conductor", "stalled_after_secs", Int, Flag("--stalled-after-secs"), CONDUCTOR, "A cluster Heat leaves *_IN_PROGRESS this long with no operation is failed."),
    key("conductor", "health_interval_ms", Int, Flag("--health-interval-ms"), CONDUCTOR, "Health polling of clusters; 0 disables it."),
    key("conductor", "orphan_stack_grace_secs", Int, Flag("--orphan-stack-grace-secs"), CONDUCTOR, "First look for orphan stacks under a deleted cluster's stack names, this long after the delete (then at doubling ages); 0 disables the reaper."),
    key("conductor", "orphan_stack_retention_secs", Int, Flag("--orphan-stack-retention-secs"), CONDUCTOR, "How long a deleted cluster's stack names are watched for orphan stacks."),
    key("conductor", "cluster_api_url", Text, Flag("--cluster-api-url"), CONDUCTOR, "Where clusters' Kubernetes APIs are reached instead of their api_address ({stack_id}, {cluster_uuid} substituted)."),
    key("conductor", "notification_sink", Text, Flag("--notification-sink"), CONDUCTOR, "Where CADF notifications go: log, file:PATH or an http(s) webhook URL."),
    key("conductor", "max_in_flight", Int, Flag("--max-in-flight"), CONDUCTOR, "Requests the service listener serves at once; more are answered 503."),
    key("certificates", "cert_key_file", Text, Flag("--cert-key-file"), CONDUCTOR, "File with the 256-bit key sealing cluster private keys; the same on every conductor."),
    key("certificates", "previous_cert_key_files", List, Each("--previous-cert-key-file"), CONDUCTOR, "Sealing keys being rotated out, comma-separated: they open but never seal."),
    defaults_to(key("raft", "heartbeat_ms", Int, Flag("--heartbeat-ms"), CONDUCTOR, "Leader heartbeat interval."), "100"),
    defaults_to(key("raft", "election_min_ms", Int, Flag("--election-min-ms"), CONDUCTOR, "Shortest election timeout."), "300"),
    defaults_to(key("raft", "election_max_ms", Int, Flag("--election-max-ms"), CONDUCTOR, "Longest election timeout (also the leader lease)."), "450"),
    defaults_to(key("raft", "snapshot_logs", Int, Flag("--snapshot-logs"), CONDUCTOR, "Snapshot a group every this many applied entries."), "5000"),
    defaults_to(key("raft", "threads", Int, Flag("--raft-threads"), CONDUCTOR, "Worker threads of the runtime that runs nothing but consensus."), "2"),
    defaults_to(key("raft", "vote_audit", Bool, Switch("--vote-audit"), CONDUCTOR, "Append every vote change to DATA_DIR/raft/vote-audit.log (crash tests)."), "false"),
    defaults_to(key("raft", "prompt_elections", Bool, Unless("--no-prompt-elections"), CONDUCTOR, "Survivors ask for a pre-vote in turn as soon as a silent leader's lease is over."), "true"),
    defaults_to(key("raft", "quiesce", Bool, Unless("--no-quiesce"), CONDUCTOR, "Idle groups stop heartbeating until their next write."), "true"),
    defaults_to(key("raft", "batch", Bool, Unless("--no-raft-batch"), CONDUCTOR, "The Raft messages of all groups bound for one peer travel in one request per batch."), "true"),
    defaults_to(key("raft", "stream", Bool, Unless("--no-raft-stream"), CONDUCTOR, "The batches bound for one peer travel as frames of one long-lived request instead of a request each."), "true"),
    defaults_to(key("raft", "engine", Text, Flag("--raft-engine"), CONDUCTOR, "Storage engine of a new data dir: wal (memory plus a write-ahead log with group commit) or sled; a dir with Raft data keeps its own."), "wal"),
];

/// The flag a key sets, if one.
fn flag_of(k: &Key) -> Option<&'static str> {
    match k.to {
        Flag(f) | Each(f) | Switch(f) | Unless(f) => Some(f),
        Listen => Some("--listen"),
        Nothing => None,
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn check(k: &Key, v: &str) -> Result<(), String> {
    let ok = match k.kind {
        Text | List => true,
        Int => v.parse::<u64>().is_ok(),
        Bool => parse_bool(v).is_some(),
        Addr => v
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
        OneOf(words) => words.contains(&v),
    };
    if ok {
        return Ok(());
    }
    let want = match k.kind {
        Int => "a non-negative integer".to_string(),
        Bool => "true or false".to_string(),
        Addr => "host:port".to_string(),
        OneOf(words) => format!("one of {}", words.join(", ")),
        Text | List => String::new(),
    };
    Err(format!("expected {want}, got {v:?}"))
}

/// One file's values by (section, key), checked against [`KEYS`].
fn load(path: &Path) -> Result<BTreeMap<(String, String), String>, ConfigError> {
    let file = path.display().to_string();
    let fail = |msg: String| ConfigError::File {
        file: file.clone(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let opt = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..ParseOption::default()
    };
    let ini = Ini::load_from_str_opt(&text, opt).map_err(|e| fail(format!("line {e}")))?;
    let mut out = BTreeMap::new();
    for (section, props) in ini.iter() {
        let section = section.unwrap_or("DEFAULT");
        // `[DEFAULT]` exists in every oslo.config file: its keys are named one by one.
        let known = section == "DEFAULT" || KEYS.iter().any(|k| k.section == section);
        if !props.is_empty() && !known {
            return Err(fail(format!("[{section}]: unknown section")));
        }
        for (name, value) in props.iter() {
            let Some(k) = KEYS.iter().find(|k| k.section == section && k.name == name) else {
                return Err(fail(format!("[{section}] {name}: unknown option")));
            };
            check(k, value.trim()).map_err(|m| fail(format!("[{section}] {name}: {m}")))?;
            let slot = (section.to_string(), name.to_string());
            if out.insert(slot, value.trim().to_string()).is_some() {
                return Err(fail(format!("[{section}] {name}: set twice")));
            }
        }
    }
    Ok(out)
}

/// Whether the command line sets `flag` itself.
fn given(args: &[OsString], flag: &str) -> bool {
    args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
    })
}

/// The `--config-file` values on the command line.
fn config_files(args: &[OsString]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config-file") => out.extend(it.next().map(PathBuf::from)),
            Some(s) => {
                if let Some(p) = s.strip_prefix("--config-file=") {
                    out.push(PathBuf::from(p));
                }
            }
            None => {}
        }
    }
    out
}

/// `argv` with the flags its `--config-file`s set placed before the command line's own (which
/// win). Commands other than `api` and `conductor`, and command lines without a config file,
/// come back as they are.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let role = match argv.get(1).and_then(|a| a.to_str()) {
        Some("api") => Role::Api,
        Some("conductor") => Role::Conductor,
        _ => return Ok(argv),
    };
    let user = &argv[2..];
    let files = config_files(user);
    if files.is_empty() {
        return Ok(argv);
    }
    // Later files win, key by key.
    let mut values: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for f in &files {
        for (slot, v) in load(f)? {
            values.insert(slot, (v, f.display().to_string()));
        }
    }
    let get = |section: &str, name: &str| values.get(&(section.to_string(), name.to_string()));
    let mut flags: Vec<OsString> = Vec::new();
    let mut set = |flag: &str, value: Option<&str>| {
        flags.push(flag.into());
        flags.extend(value.map(OsString::from));
    };
    let mine = KEYS.iter().filter(|k| k.roles.contains(&role));
    for k in mine.clone() {
        let (Some((v, _)), Some(flag)) = (get(k.section, k.name), flag_of(k)) else {
            continue;
        };
        if given(user, flag) {
            continue;
        }
        match k.to {
            Flag(f) => set(f, Some(v)),
            Each(f) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .for_each(|item| set(f, Some(item))),
            Switch(f) if parse_bool(v) == Some(true) => set(f, None),
            Unless(f) if parse_bool(v) == Some(false) => set(f, None),
            Switch(_) | Unless(_) | Listen | Nothing => {}
        }
    }
    // One domain for the service user and its project: either key sets it, and two
    // different ones cannot both hold.
    match (
        get("keystone_authtoken", "user_domain_name"),
        get("keystone_authtoken", "project_domain_name"),
    ) {
        (Some((a, _)), Some((b, file))) if a != b => {
            return Err(ConfigError::File {
                file: file.clone(),
                msg: "[keystone_authtoken] user_domain_name and project_domain_name differ; \
                      the service user and its project must be in one domain"
                    .into(),
            });
        }
        (None, Some((d, _))) if !given(user, "--service-domain") => {
            set("--service-domain", Some(d));
        }
        _ => {}
    }
    if role == Role::Api && !given(user, "--listen") {
        let (host, port) = (get("api", "host"), get("api", "port"));
        if host.is_some() || port.is_some() {
            let host = host.map_or("127.0.0.1", |(v, _)| v.as_str());
            let port = port.map_or("9511", |(v, _)| v.as_str());
            let host = match host.contains(':') {
                true => format!("[{host}]"),
                false => host.to_string(),
            };
            set("--listen", Some(&format!("{host}:{port}")));
        }
    }
    let commands = Commands::new();
    for k in mine.filter(|k| k.required) {
        let Some(flag) = flag_of(k) else { continue };
        let from_env = commands
            .arg(role, flag)
            .and_then(clap::Arg::get_env)
            .is_some_and(|e| std::env::var_os(e).is_some());
        if get(k.section, k.name).is_none() && !given(user, flag) && !from_env {
            return Err(ConfigError::Missing(format!(
                "[{}] {} is required: set it in {} or pass {flag}",
                k.section,
                k.name,
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            )));
        }
    }
    let mut out = argv[..2].to_vec();
    out.extend(flags);
    out.extend(user.iter().cloned());
    Ok(out)
}

/// The `api` and `conductor` commands as clap defines them, built once per use: where a key's
/// flag, its environment variable and its default are looked up.
struct Commands(clap::Command);

impl Commands {
    fn new() -> Self {
        Self(Cli::command())
    }

    fn arg(&self, role: Role, flag: &str) -> Option<&clap::Arg> {
        let name = match role {
            Role::Api => "api",
            Role::Conductor => "conductor",
        };
        let long = flag.trim_start_matches("--");
        self.0
            .find_subcommand(name)?
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
    }
}

/// The default of `k` as the example file shows it: clap's, else the table's, else unset.
fn default_of(commands: &Commands, k: &Key) -> Option<String> {
    if let Some(d) = k.default {
        return Some(d.to_string());
    }
    let role = *k.roles.first()?;
    let flag = flag_of(k)?;
    let arg = commands.arg(role, flag)?;
    let d = arg
        .get_default_values()
        .first()?
        .to_string_lossy()
        .into_owned();
    Some(match (k.to, k.name) {
        (Listen, "host") => d.rsplit_once(':').map_or(d.clone(), |(h, _)| h.to_string()),
        (Listen, _) => d.rsplit_once(':').map_or(d.clone(), |(_, p)| p.to_string()),
        _ => d,
    })
}

/// `deploy/magnum.conf.example`: every key with its meaning and default, commented out.
pub fn example() -> String {
    let mut out = String::from(
        "# magnum.conf for `magnum api --config-file F` and `magnum conductor --config-file F`.\n\
         # Every key, commented out at its default. Files given later win over earlier ones,\n\
         # and the command line wins over the files. Generated from deploy/src/config_file.rs:\n\
         # MAGNUM_BLESS=1 cargo test -p magnum-deploy example_file rewrites it.\n",
    );
    let commands = Commands::new();
    let mut section = "";
    for k in KEYS {
        if k.section != section {
            section = k.section;
            out.push_str(&format!("\n[{section}]\n"));
        }
        let who = match k.roles {
            [Role::Api] => " (api)",
            [Role::Conductor] => " (conductor)",
            _ => "",
        };
        let need = if k.required { " Required." } else { "" };
        out.push_str(&format!("# {}{who}{need}\n", k.help));
        match default_of(&commands, k) {
            Some(d) => out.push_str(&format!("#{} = {d}\n", k.name)),
            None => out.push_str(&format!("#{} =\n", k.name)),
        }
    }
    out
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
