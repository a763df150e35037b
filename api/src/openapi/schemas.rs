//! Schemas of the document, derived from the same field tables the validators use (so the
//! document cannot drift from what the API accepts), plus the error envelopes.
use crate::validate::fields::{Kind, Spec};
use serde_json::json;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;

fn nullable(t: Type) -> SchemaType {
    SchemaType::from_iter([t, Type::Null])
}

fn string_map() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .build()
                .into(),
        )))
        .build()
        .into()
}

/// The JSON schema of one WSME-style field kind.
pub fn of_kind(kind: Kind) -> Schema {
    let o = ObjectBuilder::new();
    let o = match kind {
        Kind::Str { min, max } => o
            .schema_type(nullable(Type::String))
            .min_length(Some(min))
            .max_length(Some(max)),
        Kind::ClusterName => o
            .schema_type(nullable(Type::String))
            .min_length(Some(1))
            .max_length(Some(242))
            .pattern(Some("^[a-zA-Z][a-zA-Z0-9_.-]*$")),
        Kind::Text | Kind::Dns => o.schema_type(nullable(Type::String)),
        Kind::Uuid => o
            .schema_type(nullable(Type::String))
            .format(Some(SchemaFormat::Custom("uuid".into()))),
        Kind::Int { min, max } => o
            .schema_type(nullable(Type::Integer))
            .minimum(min.map(|m| m as f64))
            .maximum(max.map(|m| m as f64)),
        Kind::Bool => o.schema_type(nullable(Type::Boolean)),
        Kind::Enum(values) => o
            .schema_type(nullable(Type::String))
            .enum_values(Some(values.iter().copied())),
        Kind::Labels => o
            .schema_type(nullable(Type::Object))
            .additional_properties(Some(RefOr::T(
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([
                        Type::String,
                        Type::Integer,
                        Type::Number,
                        Type::Boolean,
                    ]))
                    .build()
                    .into(),
            ))),
        Kind::StrDict => {
            return match string_map() {
                Schema::Object(mut m) => {
                    m.schema_type = nullable(Type::Object);
                    Schema::Object(m)
                }
                other => other,
            }
        }
        Kind::ReadOnly => o.read_only(Some(true)),
    };
    o.build().into()
}

/// A resource's schema from its field table: read-only fields are marked so, mandatory fields
/// are required, and unknown attributes are refused (WSME answers 400 for them).
pub fn resource(specs: &[Spec], description: &str) -> Schema {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for s in specs {
        o = o.property(s.name, of_kind(s.kind));
        if s.mandatory {
            o = o.required(s.name);
        }
    }
    o.build().into()
}

/// An object of plain properties (for the small hand-described bodies).
pub fn object(props: &[(&str, Kind)], required: &[&str], description: &str) -> Schema {
    let specs: Vec<Spec> = props
        .iter()
        .map(|(name, kind)| Spec {
            name: leak(name),
            kind: *kind,
            mandatory: required.contains(name),
        })
        .collect();
    resource(&specs, description)
}

/// Field names here are literals of this module; the table is built once per process.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// A JSON-patch document (`[{"op", "path", "value"?}]`).
pub fn json_patch() -> Schema {
    let op = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "op",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["add", "replace", "remove"])),
        )
        .required("op")
        .property(
            "path",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(/[\\w-]+)+$")),
        )
        .required("path")
        .property(
            "value",
            ObjectBuilder::new().schema_type(SchemaType::from_iter([
                Type::String,
                Type::Integer,
                Type::Boolean,
            ])),
        );
    ArrayBuilder::new()
        .items(op)
        .description(Some("JSON patch (RFC 6902 subset: add, replace, remove)"))
        .build()
        .into()
}

/// Any JSON object (answers whose items are described by their resource schema elsewhere).
pub fn any_object(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .build()
        .into()
}

/// `{"<key>": [<item>], "next"?}`.
pub fn list(key: &str, item: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(key, ArrayBuilder::new().items(schema_ref(item)))
        .required(key)
        .property(
            "next",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("present when the page is full")),
        )
        .build()
        .into()
}

pub fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::schema::Ref::from_schema_name(name))
}

/// `{"uuid": …}`: the answer of asynchronous operations.
pub fn uuid_answer() -> Schema {
    object(
        &[("uuid", Kind::Uuid)],
        &["uuid"],
        "the resource the operation acts on",
    )
}

/// Magnum's error envelope (`ParsableErrorMiddleware`), one item per error.
pub fn error_envelope() -> Schema {
    let item = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("request_id", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("client (4xx), server (5xx), empty for routing errors")),
        )
        .property("status", ObjectBuilder::new().schema_type(Type::Integer))
        .property(
            "title",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("the detail up to its first '.'")),
        )
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "links",
            ArrayBuilder::new().items(RefOr::T(any_object("link"))),
        )
        .property(
            "max_version",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .property(
            "min_version",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .property(
            "description",
            ObjectBuilder::new().schema_type(Type::String),
        );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("errors", ArrayBuilder::new().items(item).min_items(Some(1)))
        .required("errors")
        .examples([
            json!({"errors": [{"request_id": "", "code": "client", "status": 404,
            "title": "Cluster k8s could not be found",
            "detail": "Cluster k8s could not be found.", "links": []}]}),
        ])
        .build()
        .into()
}

/// keystonemiddleware's 401 body.
pub fn unauthorized() -> Schema {
    let inner = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
        .property("title", ObjectBuilder::new().schema_type(Type::String))
        .property("message", ObjectBuilder::new().schema_type(Type::String));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", inner)
        .required("error")
        .build()
        .into()
}
