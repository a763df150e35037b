//! HOT templates: parsing (YAML or JSON, string or object), parameters (types, defaults,
//! constraints), environments, resource type resolution and synchronous validation.
//!
//! * `parse`: YAML/JSON documents and the template envelope.
//! * `env`: environments.
//! * `params` / `constraints`: parameter schemas, typing and constraint checks.
//! * `types`: resource type resolution (registry, `files`, builtins), `depends_on`.
//! * `validate` / `references`: what Heat checks before accepting a create or update.

mod constraints;
mod env;
mod params;
mod parse;
mod references;
mod types;
mod validate;

pub(crate) use env::{merge_env, parse_env};
pub(crate) use params::{display_param, param_schemas, resolve_params, PType};
pub(crate) use parse::parse_template;
pub(crate) use types::{depends_on, nested_template, resolve_type, TypeImpl};
pub(crate) use validate::{validate, VERSIONS};
