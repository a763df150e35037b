//! Keystone users and trusts: request shapes (method, path, query, token, body) and how the
//! answers map, against a mock that records every request and answers like Keystone 30.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use magnum_drivers::openstack::{KeystoneClient, Trust, User};
use magnum_drivers::Error;
use serde_json::{json, Value};

use crate::mock;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_query: String,
    token: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Rec {
    seen: Mutex<Vec<Seen>>,
}

fn err(status: u16, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap();
    let body =
        json!({"error": {"code": status, "title": s.canonical_reason(), "message": message}});
    (s, axum::Json(body)).into_response()
}

fn ok(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn trust_json(id: &str, with_roles: bool) -> Value {
    let mut t = json!({"id": id, "trustor_user_id": "tor", "trustee_user_id": "tee",
        "project_id": "p1", "impersonation": true, "expires_at": null, "remaining_uses": null});
    if with_roles {
        t["roles"] = json!([{"id": "r1", "name": "member"}]);
    }
    t
}

async fn handler(State(rec): State<Arc<Rec>>, headers: HeaderMap, req: Request) -> Response {
    let method = req.method().to_string();
    let path_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    rec.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path_query: path_query.clone(),
        token,
        body: body.clone(),
    });
    match (method.as_str(), path_query.as_str()) {
        ("GET", "/v3/domains?name=magnum") => {
            ok(200, json!({"domains": [{"id": "d1", "name": "magnum"}], "links": {}}))
        }
        ("GET", "/v3/domains?name=none") => ok(200, json!({"domains": [], "links": {}})),
        ("GET", "/v3/users?name=c_p&domain_id=d1") => ok(
            200,
            json!({"users": [{"id": "u1", "name": "c_p", "domain_id": "d1", "enabled": true}]}),
        ),
        ("GET", "/v3/users?name=nobody&domain_id=d1") => ok(200, json!({"users": []})),
        ("POST", "/v3/users") if body["user"]["name"] == "dup" => err(
            409,
            "Conflict occurred attempting to store user - Duplicate entry found with name dup at domain ID d1.",
        ),
        ("POST", "/v3/users") => ok(
            201,
            json!({"user": {"id": "u1", "name": body["user"]["name"], "domain_id": body["user"]["domain_id"],
                "enabled": true, "password_expires_at": null, "options": {"ignore_password_expiry": true}}}),
        ),
        ("PATCH", "/v3/users/u1") => ok(200, json!({"user": {"id": "u1", "name": "c_p", "domain_id": "d1"}})),
        ("PATCH", _) => err(404, "Could not find user: gone."),
        ("DELETE", "/v3/users/u1") | ("DELETE", "/v3/OS-TRUST/trusts/t1") => {
            StatusCode::NO_CONTENT.into_response()
        }
        ("DELETE", "/v3/users/gone") => err(404, "Could not find user: gone."),
        ("DELETE", "/v3/OS-TRUST/trusts/gone") => err(404, "Could not find trust: gone."),
        ("DELETE", _) => err(403, "You are not authorized to perform the requested action: identity:delete_user."),
        ("GET", "/v3/OS-TRUST/trusts?trustee_user_id=tee") => ok(
            200,
            json!({"trusts": [trust_json("t1", false), trust_json("t-vanished", false)], "links": {}}),
        ),
        ("GET", "/v3/OS-TRUST/trusts/t1") => ok(200, json!({"trust": trust_json("t1", true)})),
        ("GET", "/v3/OS-TRUST/trusts/t-vanished") => err(404, "Could not find trust: t-vanished."),
        ("POST", "/v3/OS-TRUST/trusts") if headers.get("x-auth-token").is_some_and(|t| t == "other") => {
            err(403, "You are not authorized to perform the requested action: identity:create_trust.")
        }
        ("POST", "/v3/OS-TRUST/trusts") => ok(201, json!({"trust": trust_json("t1", true)})),
        ("POST", "/v3/auth/tokens") if body["auth"]["identity"]["password"]["user"]["password"] == "bad" => {
            err(401, "The request you have made requires authentication.")
        }
        ("POST", "/v3/auth/tokens") => {
            let mut r = ok(
                201,
                json!({"token": {"methods": ["password"],
                    "user": {"id": "tor", "name": "trustor", "domain": {"id": "default", "name": "Default"}},
                    "project": {"id": "p1", "name": "proj", "domain": {"id": "default", "name": "Default"}},
                    "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
                    "OS-TRUST:trust": {"id": "t1", "impersonation": true, "trustee_user": {"id": "tee"}, "trustor_user": {"id": "tor"}},
                    "expires_at": "2099-01-01T00:00:00.000000Z", "issued_at": "2026-01-01T00:00:00.000000Z"}}),
            );
            r.headers_mut()
                .insert("x-subject-token", "trust-token".parse().unwrap());
            r
        }
        _ => err(500, "unexpected request"),
    }
}

async fn client() -> (KeystoneClient, Arc<Rec>) {
    let rec = Arc::new(Rec::default());
    let app = Router::new().fallback(handler).with_state(rec.clone());
    let base = mock::serve(app).await;
    let ks = KeystoneClient::new(mock::http(), &format!("{base}/v3")).unwrap();
    (ks, rec)
}

fn last(rec: &Rec) -> Seen {
    rec.seen.lock().unwrap().last().cloned().unwrap()
}

#[tokio::test]
async fn domains_and_users() {
    let (ks, rec) = client().await;
    assert_eq!(
        ks.find_domain("adm", "magnum").await.unwrap(),
        Some("d1".into())
    );
    assert_eq!(last(&rec).token.as_deref(), Some("adm"));
    assert_eq!(ks.find_domain("adm", "none").await.unwrap(), None);

    let user = User {
        id: "u1".into(),
        name: "c_p".into(),
        domain_id: "d1".into(),
    };
    assert_eq!(
        ks.find_user("adm", "d1", "c_p").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(last(&rec).path_query, "/v3/users?name=c_p&domain_id=d1");
    assert_eq!(ks.find_user("adm", "d1", "nobody").await.unwrap(), None);

    assert_eq!(
        ks.create_user("adm", "d1", "c_p", "pw1").await.unwrap(),
        user
    );
    let s = last(&rec);
    assert_eq!(
        (s.method.as_str(), s.path_query.as_str()),
        ("POST", "/v3/users")
    );
    assert_eq!(
        s.body,
        json!({"user": {"name": "c_p", "domain_id": "d1", "password": "pw1", "enabled": true,
            "options": {"ignore_password_expiry": true}}})
    );
    let e = ks.create_user("adm", "d1", "dup", "pw1").await.unwrap_err();
    assert!(
        matches!(&e, Error::Conflict(m) if m.contains("Duplicate entry")),
        "{e:?}"
    );

    ks.set_user_password("adm", "u1", "pw2").await.unwrap();
    let s = last(&rec);
    assert_eq!(
        (s.method.as_str(), s.path_query.as_str()),
        ("PATCH", "/v3/users/u1")
    );
    assert_eq!(s.body, json!({"user": {"password": "pw2"}}));
    let e = ks
        .set_user_password("adm", "gone", "pw2")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");

    assert!(ks.delete_user("adm", "u1").await.unwrap());
    assert!(!ks.delete_user("adm", "gone").await.unwrap());
    let e = ks.delete_user("adm", "other").await.unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
}

#[tokio::test]
async fn trusts_and_trust_auth() {
    let (ks, rec) = client().await;
    let want = Trust {
        id: "t1".into(),
        trustor_user_id: "tor".into(),
        trustee_user_id: "tee".into(),
        project_id: Some("p1".into()),
        impersonation: true,
        roles: vec!["member".into()],
    };
    let t = ks
        .create_trust("tor-token", "tor", "tee", "p1", &["member".into()])
        .await
        .unwrap();
    assert_eq!(t, want);
    let s = last(&rec);
    assert_eq!(s.token.as_deref(), Some("tor-token"));
    assert_eq!(
        s.body,
        json!({"trust": {"trustor_user_id": "tor", "trustee_user_id": "tee", "project_id": "p1",
            "impersonation": true, "allow_redelegation": false, "roles": [{"name": "member"}]}})
    );
    let e = ks
        .create_trust("other", "tor", "tee", "p1", &["member".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");

    // The list has no roles: each trust is read, and one that vanished meanwhile is skipped.
    assert_eq!(
        ks.trusts_of_trustee("adm", "tee").await.unwrap(),
        vec![want]
    );

    assert!(ks.delete_trust("adm", "t1").await.unwrap());
    assert!(!ks.delete_trust("adm", "gone").await.unwrap());

    let tok = ks.trust_auth("tee", "pw", "t1").await.unwrap();
    assert_eq!(tok.id, "trust-token");
    assert_eq!(tok.user_id, "tor");
    assert_eq!(tok.project_id.as_deref(), Some("p1"));
    assert_eq!(tok.trust_id.as_deref(), Some("t1"));
    assert_eq!(tok.roles, vec!["member", "reader"]);
    let s = last(&rec);
    assert_eq!(s.token, None);
    assert_eq!(
        s.body,
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "tee", "password": "pw"}}},
            "scope": {"OS-TRUST:trust": {"id": "t1"}}}})
    );
    let e = ks.trust_auth("tee", "bad", "t1").await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e:?}");
}
