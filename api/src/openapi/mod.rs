//! The OpenAPI 3.1 document of the API, built from the code: the endpoint table
//! ([`endpoints::ENDPOINTS`]) and, for request and resource bodies, the same field tables the
//! validators check input against. Served without a token at `GET /v1/openapi.json`.
pub mod endpoints;
pub mod schemas;

use crate::routes::{bays, cluster_upgrade, federations, nodegroup_ops};
use crate::validate::fields::{Kind, Spec};
use crate::validate::{cluster, template};
use crate::version::{DEFAULT_MAX_VERSION, MIN_VERSION};
use axum::Json;
use endpoints::{Answer, Body, Endpoint, ENDPOINTS};
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder,
};

const JSON: &str = "application/json";
const SECURITY: &str = "keystone";

fn method(m: &str) -> HttpMethod {
    match m {
        "post" => HttpMethod::Post,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        "put" => HttpMethod::Put,
        _ => HttpMethod::Get,
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The values of `OpenStack-API-Version` this server accepts.
fn versions() -> Vec<String> {
    let mut out: Vec<String> = (MIN_VERSION.minor..=DEFAULT_MAX_VERSION.minor)
        .map(|m| format!("container-infra 1.{m}"))
        .collect();
    out.push("container-infra latest".into());
    out
}

fn query_schema(name: &str) -> ObjectBuilder {
    match name {
        "limit" => ObjectBuilder::new().schema_type(Type::Integer),
        "sort_dir" => string().enum_values(Some(["asc", "desc"])),
        "rollback" | "all_tenants" => ObjectBuilder::new().schema_type(Type::Boolean),
        "marker" => string().format(Some(utoipa::openapi::SchemaFormat::Custom("uuid".into()))),
        _ => string(),
    }
}

fn answer_schema(a: Answer) -> Option<RefOr<Schema>> {
    match a {
        Answer::Schema(name) => Some(schemas::schema_ref(name)),
        Answer::List(key, item) => Some(schemas::list(key, item).into()),
        Answer::Uuid => Some(schemas::schema_ref("Uuid")),
        Answer::Object => Some(schemas::any_object("document").into()),
        Answer::Empty => None,
    }
}

fn operation(e: &Endpoint) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(e.id))
        .summary(Some(e.summary))
        .tag(e.tag);
    for seg in e.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string())),
            );
        }
    }
    for q in e.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*q)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(query_schema(q))),
        );
    }
    op = op.parameter(
        ParameterBuilder::new()
            .name("OpenStack-API-Version")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("microversion; absent means 1.1"))
            .schema(Some(string().enum_values(Some(versions())))),
    );
    let body = match e.body {
        Body::None => None,
        Body::Schema(name) => Some(schemas::schema_ref(name)),
        Body::Patch => Some(schemas::schema_ref("JsonPatch")),
    };
    if let Some(schema) = body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                .build(),
        ));
    }
    let mut ok = ResponseBuilder::new().description("success");
    if let Some(schema) = answer_schema(e.answer) {
        ok = ok.content(JSON, ContentBuilder::new().schema(Some(schema)).build());
    }
    op = op.response(e.status.to_string(), ok.build());
    // Bays answer like clusters (202 {"uuid"}) from microversion 1.2 on.
    if matches!(e.id, "bay_create" | "bay_update") {
        op = op.response(
            "202",
            ResponseBuilder::new()
                .description("accepted (microversion ≥ 1.2)")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schemas::schema_ref("Uuid")))
                        .build(),
                )
                .build(),
        );
    }
    let mut errors = vec!["400", "404", "406", "409", "503"];
    if !e.public {
        errors.push("403");
        op = op.response("401", RefOr::Ref(Ref::from_response_name("Unauthorized")));
    }
    if e.body != Body::None {
        errors.push("415");
    }
    for code in errors {
        op = op.response(code, RefOr::Ref(Ref::from_response_name("Error")));
    }
    if e.public {
        // An empty requirement: no token needed.
        op = op.securities(Some([SecurityRequirement::default()]));
    }
    op.build()
}

/// A spec table with each name renamed by `names` (the legacy bay vocabulary).
fn renamed(specs: &[Spec], names: &[(&'static str, &'static str)]) -> Vec<Spec> {
    specs
        .iter()
        .map(|s| {
            let mut s = *s;
            if let Some((_, old)) = names.iter().find(|(new, _)| *new == s.name) {
                s.name = old;
            }
            s
        })
        .collect()
}

fn components() -> utoipa::openapi::Components {
    let mut cluster_specs = cluster::FIELDS.to_vec();
    cluster_specs.push(Spec {
        name: "cluster_id",
        kind: Kind::ReadOnly,
        mandatory: false,
    });
    let mut federation = schemas::resource(federations::FIELDS, "a federation");
    if let Schema::Object(o) = &mut federation {
        o.properties.insert(
            "member_ids".into(),
            ArrayBuilder::new().items(string()).build().into(),
        );
    }
    ComponentsBuilder::new()
        .schema(
            "ClusterTemplate",
            schemas::resource(template::FIELDS, "a cluster template (= baymodel)"),
        )
        .schema(
            "Cluster",
            schemas::resource(
                &cluster_specs,
                "a cluster; `stack_id` up to 1.12, `cluster_id` from 1.13",
            ),
        )
        .schema(
            "Bay",
            schemas::resource(&renamed(cluster::FIELDS, bays::NAMES.fields), "a bay"),
        )
        .schema("Federation", federation)
        .schema(
            "Resize",
            schemas::object(
                &[
                    (
                        "node_count",
                        Kind::Int {
                            min: Some(0),
                            max: Some(i64::from(i32::MAX)),
                        },
                    ),
                    ("nodes_to_remove", Kind::ReadOnly),
                    ("nodegroup", Kind::Text),
                ],
                &["node_count"],
                "resize of one nodegroup",
            ),
        )
        .schema("Nodegroup", schemas::any_object("a nodegroup"))
        .schema(
            "NodegroupCreate",
            schemas::resource(nodegroup_ops::SPECS, "a new nodegroup"),
        )
        .schema(
            "Upgrade",
            schemas::resource(cluster_upgrade::SPECS, "an upgrade request"),
        )
        .schema(
            "CertificateRequest",
            schemas::object(
                &[
                    ("cluster_uuid", Kind::Str { min: 1, max: 255 }),
                    ("csr", Kind::Str { min: 1, max: 65536 }),
                    ("ca_cert_type", Kind::Text),
                ],
                &["cluster_uuid", "csr"],
                "a CSR to sign",
            ),
        )
        .schema("Certificate", schemas::any_object("a certificate (PEM)"))
        .schema(
            "Quota",
            schemas::object(
                &[
                    ("project_id", Kind::Str { min: 1, max: 255 }),
                    ("resource", Kind::Enum(&["Cluster"])),
                    (
                        "hard_limit",
                        Kind::Int {
                            min: Some(0),
                            max: Some(i64::from(i32::MAX)),
                        },
                    ),
                    ("id", Kind::ReadOnly),
                    ("created_at", Kind::ReadOnly),
                    ("updated_at", Kind::ReadOnly),
                ],
                &[],
                "a quota",
            ),
        )
        .schema("Uuid", schemas::uuid_answer())
        .schema("JsonPatch", schemas::json_patch())
        .schema("Error", schemas::error_envelope())
        .schema("KeystoneError", schemas::unauthorized())
        .response(
            "Error",
            ResponseBuilder::new()
                .description("Magnum's error envelope")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schemas::schema_ref("Error")))
                        .build(),
                )
                .build(),
        )
        .response(
            "Unauthorized",
            ResponseBuilder::new()
                .description("no or invalid token (WWW-Authenticate: Keystone uri=…)")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schemas::schema_ref("KeystoneError")))
                        .build(),
                )
                .build(),
        )
        .security_scheme(
            SECURITY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "a Keystone token",
            ))),
        )
        .build()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for e in ENDPOINTS {
        paths = paths.path(e.path, PathItem::new(method(e.method), operation(e)));
    }
    let tags = [
        "discovery",
        "clustertemplates",
        "clusters",
        "nodegroups",
        "certificates",
        "quotas",
        "stats",
        "mservices",
        "federations",
        "legacy",
    ]
    .map(|t| TagBuilder::new().name(t).build());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Magnum container-infra API (magnum-rs)")
                .version(format!("{MIN_VERSION}–{DEFAULT_MAX_VERSION}"))
                .description(Some(
                    "OpenStack Magnum v1 (service type container-infra). Microversions \
                     through the OpenStack-API-Version header; errors in Magnum's envelope.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .security(Some([SecurityRequirement::new::<_, [&str; 0], &str>(
            SECURITY,
            [],
        )]))
        .tags(Some(tags))
        .build()
}

/// The document as JSON, built once per process.
pub fn document_json() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(document()).unwrap_or(Value::Null))
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document_json().clone())
}
