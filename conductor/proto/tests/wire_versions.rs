//! The service listener's envelope: a node accepts its own protocol version and the one
//! before it (rolling upgrades), nothing older or newer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_proto::wire::{Envelope, MIN_PROTO_VERSION, PROTO_VERSION};

#[test]
fn current_and_previous_versions_are_accepted() {
    let previous = PROTO_VERSION.saturating_sub(1).max(1);
    assert!(MIN_PROTO_VERSION <= previous, "N must accept N-1");
    for proto in [PROTO_VERSION, previous] {
        let e = Envelope {
            proto,
            body: (),
            user: None,
        };
        assert!(e.version_ok(), "version {proto}");
    }
    for proto in [0, PROTO_VERSION + 1] {
        assert!(
            !Envelope {
                proto,
                body: (),
                user: None
            }
            .version_ok(),
            "version {proto}"
        );
    }
    // What goes out is the current version, and it survives the JSON round trip.
    let out: Envelope<String> =
        serde_json::from_str(&serde_json::to_string(&Envelope::new("x".to_string())).unwrap())
            .unwrap();
    assert_eq!((out.proto, out.body.as_str()), (PROTO_VERSION, "x"));
}
