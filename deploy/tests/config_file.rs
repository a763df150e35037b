//! `magnum api|conductor --config-file` on the real binary: a bad file stops the process at
//! once naming file, section and key (exit 2, nothing started); a good one drives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_bad_file_stops_the_process_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("magnum.conf");
    std::fs::write(
        &conf,
        "[conductor]\nnode_id = 1\nraft_listn = 127.0.0.1:1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_magnum"))
        .args(["conductor", "--config-file"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: [conductor] raft_listn: unknown option",
            conf.display()
        )),
        "{err}"
    );
}

#[test]
fn an_api_node_runs_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("magnum.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "[api]\nhost = 127.0.0.1\nport = {port}\nconductors = 127.0.0.1:1\n\
             [keystone_authtoken]\nauth_url = http://127.0.0.1:1/v3\npassword = unused\n\
             [internal]\nmode = plain\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_magnum"))
        .args(["api", "--config-file"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The version document needs neither Keystone nor a conductor.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        answered = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answered,
        "the API never answered on the port its file names"
    );
}
