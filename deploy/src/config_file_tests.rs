use super::*;
use clap::Parser;
use std::io::Write;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn argv(args: &[&str]) -> Vec<OsString> {
    std::iter::once("magnum")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn strings(v: Vec<OsString>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

const CONDUCTOR_CONF: &str = "\
[keystone_authtoken]
auth_url = http://keystone:5000/v3
password = secret
user_domain_name = Default
project_domain_name = Default

[conductor]
node_id = 2
data_dir = /var/lib/magnum
raft_listen = 10.0.0.2:9611
service_listen = 10.0.0.2:9612
peers = 1=10.0.0.1:9611@10.0.0.1:9612, 2=10.0.0.2:9611@10.0.0.2:9612

[raft]
quiesce = false
vote_audit = yes

[api]
port = 8080
";

#[test]
fn a_file_becomes_flags_and_the_command_line_wins() {
    let f = file(CONDUCTOR_CONF);
    let path = f.path().to_str().unwrap();
    let out = strings(
        expand(argv(&[
            "conductor",
            "--config-file",
            path,
            "--node-id",
            "7",
        ]))
        .unwrap(),
    );
    let joined = out.join(" ");
    assert!(
        joined.contains("--peer 1=10.0.0.1:9611@10.0.0.1:9612 --peer 2="),
        "{joined}"
    );
    assert!(joined.contains("--no-quiesce"), "{joined}");
    assert!(joined.contains("--vote-audit"), "{joined}");
    assert!(joined.contains("--service-domain Default"), "{joined}");
    assert!(
        !joined.contains("--node-id 2"),
        "the command line's --node-id wins: {joined}"
    );
    assert!(
        !joined.contains("--listen"),
        "[api] is not the conductor's: {joined}"
    );
    // And clap takes the result.
    let cli = Cli::try_parse_from(&out).unwrap();
    match cli.command {
        crate::cli::Command::Conductor(c) => {
            assert_eq!(c.node_id, 7);
            assert_eq!(c.peers.len(), 2);
            assert!(c.raft.no_quiesce && c.raft.vote_audit);
            assert_eq!(c.auth.service_password, "secret");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_later_file_wins_key_by_key() {
    let a = file(CONDUCTOR_CONF);
    let b = file("[conductor]\nnode_id = 3\n");
    let out = strings(
        expand(argv(&[
            "conductor",
            "--config-file",
            a.path().to_str().unwrap(),
            &format!("--config-file={}", b.path().display()),
        ]))
        .unwrap(),
    );
    let cli = Cli::try_parse_from(&out).unwrap();
    let crate::cli::Command::Conductor(c) = cli.command else {
        panic!()
    };
    assert_eq!(c.node_id, 3);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/magnum"));
}

#[test]
fn api_host_and_port_make_the_listen_address() {
    let f = file(
        "[api]\nhost = ::1\nport = 9000\nconductors = a:1,b:2\n\
         [keystone_authtoken]\nauth_url = http://k/v3\npassword = p\ntoken_cache_time = 5\n",
    );
    let out = strings(expand(argv(&["api", "--config-file", f.path().to_str().unwrap()])).unwrap());
    let cli = Cli::try_parse_from(&out).unwrap();
    let crate::cli::Command::Api(a) = cli.command else {
        panic!()
    };
    assert_eq!(a.listen.to_string(), "[::1]:9000");
    assert_eq!(a.conductors, vec!["a:1", "b:2"]);
    assert_eq!(a.token_cache.token_cache_ttl_secs, 5);
}

#[test]
fn bad_files_are_refused_naming_file_section_and_key() {
    let cases = [
        (
            "[conductor]\nnode_idd = 1\n",
            "[conductor] node_idd: unknown option",
        ),
        ("[databse]\nconnection = x\n", "[databse]: unknown section"),
        ("debug = true\n", "[DEFAULT] debug: unknown option"),
        (
            "[conductor]\nnode_id = two\n",
            "[conductor] node_id: expected a non-negative integer, got \"two\"",
        ),
        (
            "[conductor]\nraft_listen = 10.0.0.1\n",
            "[conductor] raft_listen: expected host:port",
        ),
        (
            "[raft]\nquiesce = maybe\n",
            "[raft] quiesce: expected true or false",
        ),
        (
            "[internal]\nmode = loose\n",
            "[internal] mode: expected one of strict, permissive, plain",
        ),
        (
            "[keystone_authtoken]\nauth_type = v3token\n",
            "[keystone_authtoken] auth_type: expected one of password",
        ),
        (
            "[keystone_authtoken]\nuser_domain_name = a\nproject_domain_name = b\n",
            "user_domain_name and project_domain_name differ",
        ),
    ];
    for (text, want) in cases {
        let f = file(text);
        let path = f.path().to_str().unwrap().to_string();
        let err = expand(argv(&["conductor", "--config-file", &path]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&path), "{err}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let err = expand(argv(&[
        "conductor",
        "--config-file",
        "/nonexistent/magnum.conf",
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nonexistent/magnum.conf: cannot read"),
        "{err}"
    );
}

#[test]
fn a_required_key_nothing_sets_is_named() {
    let f = file(
        "[keystone_authtoken]\nauth_url = http://k/v3\npassword = p\n[conductor]\nnode_id = 1\n",
    );
    let err = expand(argv(&[
        "conductor",
        "--config-file",
        f.path().to_str().unwrap(),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("[conductor] data_dir is required"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}

#[test]
fn without_a_config_file_nothing_changes() {
    let a = argv(&["conductor", "--node-id", "1"]);
    assert_eq!(expand(a.clone()).unwrap(), a);
    let m = argv(&["manage", "status", "--config-file", "x"]);
    assert_eq!(expand(m.clone()).unwrap(), m);
}

/// Every key maps to a flag the command has, and the example file is what the table and
/// clap's defaults say (MAGNUM_BLESS=1 rewrites it).
#[test]
fn example_file_agrees_with_the_code() {
    let commands = Commands::new();
    for k in KEYS {
        if let Some(flag) = flag_of(k).filter(|_| !matches!(k.to, Listen)) {
            for role in k.roles {
                assert!(
                    commands.arg(*role, flag).is_some(),
                    "[{}] {}: {flag} is not a flag of {role:?}",
                    k.section,
                    k.name
                );
            }
        }
    }
    let raft = magnum_raft::RaftConfig::default();
    let table = |name: &str| {
        KEYS.iter()
            .find(|k| k.section == "raft" && k.name == name)
            .and_then(|k| k.default)
            .unwrap()
            .to_string()
    };
    assert_eq!(table("heartbeat_ms"), raft.heartbeat_ms.to_string());
    assert_eq!(table("election_min_ms"), raft.election_min_ms.to_string());
    assert_eq!(table("election_max_ms"), raft.election_max_ms.to_string());
    assert_eq!(
        table("snapshot_logs"),
        raft.snapshot_logs_since_last.to_string()
    );
    assert_eq!(table("threads"), raft.threads.to_string());
    assert_eq!(table("prompt_elections"), raft.prompt_elections.to_string());
    assert_eq!(table("quiesce"), raft.quiesce.to_string());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("magnum.conf.example");
    let want = example();
    if std::env::var_os("MAGNUM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        have,
        want,
        "{} is stale: MAGNUM_BLESS=1 rewrites it",
        path.display()
    );
    // And the example itself is a valid file.
    load(&path).unwrap();
}
