//! WSME-style typed fields: the checks and messages Magnum's API types apply to JSON input
//! (`wtypes.StringType`, `IntegerType`, `Enum`, `DictType`, Magnum's `boolean`, `uuid`,
//! `dns_list`), so bad input gets Magnum's 400 texts.
use crate::error::ApiError;
use crate::pylit::{float_repr, repr, str_of, str_repr, type_name};
use magnum_proto::Labels;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `wtypes.StringType(min_length, max_length)`.
    Str { min: usize, max: usize },
    /// Cluster names: 1–242 chars, `^[a-zA-Z][a-zA-Z0-9_.-]*$`.
    ClusterName,
    /// `wtypes.text`.
    Text,
    /// Magnum's `types.uuid`.
    Uuid,
    /// `wtypes.IntegerType(minimum, maximum)`.
    Int { min: Option<i64>, max: Option<i64> },
    /// Magnum's `types.boolean` (oslo `bool_from_string`, strict).
    Bool,
    /// `wtypes.Enum(text, …)`.
    Enum(&'static [&'static str]),
    /// `DictType(text, MultiType(text, int, bool, float))`, stored as strings.
    Labels,
    /// `DictType(text, text)`.
    StrDict,
    /// Magnum's `types.dns_list`.
    Dns,
    /// `wsattr(..., readonly=True)`: refused on input.
    ReadOnly,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub mandatory: bool,
}

pub const fn field(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        kind,
        mandatory: false,
    }
}

pub const fn mandatory(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        kind,
        mandatory: true,
    }
}

pub const STR255: Kind = Kind::Str { min: 1, max: 255 };

/// A converted field value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    Map(Labels),
}

/// The fields present in a request body, converted.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    map: BTreeMap<&'static str, Val>,
}

impl Fields {
    pub fn with(mut self, k: &'static str, v: Val) -> Self {
        self.map.insert(k, v);
        self
    }

    pub fn present(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub fn str(&self, k: &str) -> Option<String> {
        match self.map.get(k) {
            Some(Val::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn int(&self, k: &str) -> Option<i64> {
        match self.map.get(k) {
            Some(Val::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn bool(&self, k: &str) -> Option<bool> {
        match self.map.get(k) {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn map(&self, k: &str) -> Option<Labels> {
        match self.map.get(k) {
            Some(Val::Map(m)) => Some(m.clone()),
            _ => None,
        }
    }
}

/// `Invalid input for field/attribute X. Value: 'v'. msg`
pub fn invalid(field: &str, value: &Value, msg: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Invalid input for field/attribute {field}. Value: '{}'. {msg}",
        str_of(value)
    ))
}

/// Parses a JSON object against `specs` (declaration order decides which error comes first).
/// `argname` is the controller argument (`cluster_template`, `cluster`), used in messages.
pub fn parse_object(argname: &str, body: &Value, specs: &[Spec]) -> Result<Fields, ApiError> {
    let Value::Object(obj) = body else {
        return Err(invalid(
            argname,
            body,
            &format!("Value not a valid dict: {}", str_of(body)),
        ));
    };
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !specs.iter().any(|s| s.name == *k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let noun = if unknown.len() > 1 {
            "attributes"
        } else {
            "attribute"
        };
        return Err(ApiError::BadRequest(format!(
            "Unknown {noun} for argument {argname}: {}",
            unknown.join(", ")
        )));
    }
    let mut out = Fields::default();
    for spec in specs {
        match obj.get(spec.name) {
            Some(v) => {
                let val = convert(spec, v)?;
                out.map.insert(spec.name, val);
            }
            None if spec.mandatory => {
                return Err(invalid(spec.name, &Value::Null, "Mandatory field missing."));
            }
            None => {}
        }
    }
    Ok(out)
}

/// Converts and validates one value.
pub fn convert(spec: &Spec, v: &Value) -> Result<Val, ApiError> {
    let name = spec.name;
    if let Kind::ReadOnly = spec.kind {
        return Err(invalid(name, v, "Cannot set read only field."));
    }
    if v.is_null() {
        return Ok(Val::Null);
    }
    match spec.kind {
        Kind::Str { min, max } => string(name, v, min, max).map(Val::Str),
        Kind::ClusterName => {
            let s = string(name, v, 1, 242)?;
            if !cluster_name_ok(&s) {
                return Err(invalid(
                    name,
                    v,
                    "Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$",
                ));
            }
            Ok(Val::Str(s))
        }
        Kind::Text => match v {
            Value::String(s) => Ok(Val::Str(s.clone())),
            other => Err(invalid(name, v, &wrong_type("<class 'str'>", other))),
        },
        Kind::Uuid => match v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
            Some(u) => Ok(Val::Str(u.to_string())),
            None => Err(ApiError::BadRequest(format!(
                "Expected a uuid but received {}.",
                str_of(v)
            ))),
        },
        Kind::Int { min, max } => {
            let i = int(name, v)?;
            check_range(name, v, i, min, max)?;
            Ok(Val::Int(i))
        }
        Kind::Bool => boolean(v).map(Val::Bool),
        Kind::Enum(values) => match v.as_str() {
            Some(s) if values.contains(&s) => Ok(Val::Str(s.to_string())),
            _ => Err(invalid(
                name,
                v,
                &format!("Value should be one of: {}", values.join(", ")),
            )),
        },
        Kind::Labels => labels(name, v).map(Val::Map),
        Kind::StrDict => str_dict(name, v).map(Val::Map),
        Kind::Dns => match v.as_str() {
            Some(s) if dns_list_ok(s) => Ok(Val::Str(s.to_string())),
            _ => Err(ApiError::BadRequest(format!(
                "Expected a single dns address or comma separated dns list, but received {}.",
                str_of(v)
            ))),
        },
        Kind::ReadOnly => Err(invalid(name, v, "Cannot set read only field.")),
    }
}

fn wrong_type(expected: &str, got: &Value) -> String {
    format!(
        "Wrong type. Expected '{expected}', got '{}'",
        type_name(got)
    )
}

fn string(name: &str, v: &Value, min: usize, max: usize) -> Result<String, ApiError> {
    let Value::String(s) = v else {
        return Err(invalid(name, v, "Value should be string"));
    };
    let len = s.chars().count();
    if len < min {
        return Err(invalid(
            name,
            v,
            &format!("Value should have a minimum character requirement of {min}"),
        ));
    }
    if len > max {
        return Err(invalid(
            name,
            v,
            &format!("Value should have a maximum character requirement of {max}"),
        ));
    }
    Ok(s.clone())
}

pub fn cluster_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Python `int(v)` as WSME applies it to JSON input.
pub fn int(name: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                // Python truncates floats; values beyond i64 are not worth supporting.
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f.trunc() as i64)
                    .ok_or_else(|| {
                        invalid(
                            name,
                            v,
                            "Value should be lower or equal to 9223372036854775807",
                        )
                    })
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            let ok = !digits.is_empty()
                && !digits.starts_with('_')
                && !digits.ends_with('_')
                && !digits.contains("__")
                && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
            ok.then(|| t.replace('_', "").parse::<i64>().ok())
                .flatten()
                .ok_or_else(|| {
                    invalid(
                        name,
                        v,
                        &format!("invalid literal for int() with base 10: {}", str_repr(s)),
                    )
                })
        }
        other => {
            let t = match other {
                Value::Array(_) => "list",
                _ => "dict",
            };
            Err(invalid(
                name,
                v,
                &format!(
                    "int() argument must be a string, a bytes-like object or a real number, \
                     not '{t}'"
                ),
            ))
        }
    }
}

pub fn check_range(
    name: &str,
    v: &Value,
    i: i64,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(m) = min.filter(|m| i < *m) {
        return Err(invalid(
            name,
            v,
            &format!("Value should be greater or equal to {m}"),
        ));
    }
    if let Some(m) = max.filter(|m| i > *m) {
        return Err(invalid(
            name,
            v,
            &format!("Value should be lower or equal to {m}"),
        ));
    }
    Ok(())
}

/// Refuses a count above the deployment's limit (`ValidationSettings::max_node_count`, ...),
/// worded as WSME words a range error.
pub fn check_count(name: &str, n: i64, max: i64) -> Result<(), ApiError> {
    check_range(name, &Value::from(n), n, None, Some(max))
}

/// oslo `bool_from_string(v, strict=True)`; its error is not wrapped by WSME.
pub fn boolean(v: &Value) -> Result<bool, ApiError> {
    if let Value::Bool(b) = v {
        return Ok(*b);
    }
    let shown = str_of(v);
    match shown.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "Unrecognized value '{shown}', acceptable values are: '0', '1', 'f', 'false', 'n', \
             'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        ))),
    }
}

/// Python `str()` of a label value, as Magnum stores it.
pub fn label_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Number(n) if n.is_f64() => n.as_f64().map(float_repr),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Bytes of keys and values one label set may take: upstream keeps labels in a `TEXT` column
/// (64 KiB on MySQL) and fails on more; here it is a clear 400 before anything is stored.
pub const MAX_LABELS_BYTES: usize = 65_535;

/// Refuses a label set over [`MAX_LABELS_BYTES`].
pub fn check_labels_size(name: &str, labels: &Labels) -> Result<(), ApiError> {
    let size: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_LABELS_BYTES {
        return Err(ApiError::BadRequest(format!(
            "Invalid input for field/attribute {name}. The labels take {size} bytes (keys and \
             values); at most {MAX_LABELS_BYTES} are allowed."
        )));
    }
    Ok(())
}

pub fn labels(name: &str, v: &Value) -> Result<Labels, ApiError> {
    let Value::Object(m) = v else {
        return Err(invalid(
            name,
            v,
            &format!("Value not a valid dict: {}", repr(v)),
        ));
    };
    let mut out = Labels::new();
    for (k, val) in m {
        let s = label_string(val).ok_or_else(|| {
            invalid(
                name,
                v,
                &format!(
                    "Wrong type. Expected '(<class 'str'>, <class 'int'>, <class 'bool'>, \
                     <class 'float'>)', got '{}'",
                    type_name(val)
                ),
            )
        })?;
        out.insert(k.clone(), s);
    }
    check_labels_size(name, &out)?;
    Ok(out)
}

fn str_dict(name: &str, v: &Value) -> Result<Labels, ApiError> {
    let Value::Object(m) = v else {
        return Err(invalid(
            name,
            v,
            &format!("Value not a valid dict: {}", repr(v)),
        ));
    };
    let mut out = Labels::new();
    for (k, val) in m {
        match val {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            Value::Null => {}
            other => return Err(invalid(name, v, &wrong_type("<class 'str'>", other))),
        }
    }
    Ok(out)
}

/// `utils.validate_dns`: comma-separated IPv4 addresses (inet_pton strictness).
pub fn dns_list_ok(s: &str) -> bool {
    s.split(',')
        .all(|d| d.trim().parse::<std::net::Ipv4Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[Spec] = &[
        mandatory("coe", Kind::Enum(&["kubernetes"])),
        field(
            "n",
            Kind::Int {
                min: Some(1),
                max: None,
            },
        ),
        field("b", Kind::Bool),
        field("l", Kind::Labels),
        field("ro", Kind::ReadOnly),
        field("name", Kind::ClusterName),
    ];

    fn err(body: Value) -> String {
        parse_object("thing", &body, SPECS).unwrap_err().to_string()
    }

    #[test]
    fn wsme_messages() {
        assert_eq!(
            err(json!({"coe": "kubernetes", "x": 1})),
            "Unknown attribute for argument thing: x"
        );
        assert_eq!(
            err(json!({"coe": "kubernetes", "y": 1, "x": 1})),
            "Unknown attributes for argument thing: x, y"
        );
        assert_eq!(
            err(json!({})),
            "Invalid input for field/attribute coe. Value: 'None'. Mandatory field missing."
        );
        assert_eq!(
            err(json!({"coe": "k"})),
            "Invalid input for field/attribute coe. Value: 'k'. Value should be one of: kubernetes"
        );
        assert_eq!(err(json!({"coe": "kubernetes", "n": 0})), "Invalid input for field/attribute n. Value: '0'. Value should be greater or equal to 1");
        assert_eq!(err(json!({"coe": "kubernetes", "n": "abc"})), "Invalid input for field/attribute n. Value: 'abc'. invalid literal for int() with base 10: 'abc'");
        assert!(err(json!({"coe": "kubernetes", "b": "maybe"}))
            .starts_with("Unrecognized value 'maybe'"));
        assert_eq!(
            err(json!({"coe": "kubernetes", "ro": "x"})),
            "Invalid input for field/attribute ro. Value: 'x'. Cannot set read only field."
        );
        assert!(err(json!({"coe": "kubernetes", "l": {"a": [1]}})).contains("got '<class 'list'>'"));
        assert!(err(json!({"coe": "kubernetes", "name": "1abc"}))
            .contains("Value should match the pattern"));
        assert!(err(json!([1])).contains("Value not a valid dict"));
    }

    #[test]
    fn labels_are_bounded_in_bytes() {
        let at_limit = "v".repeat(MAX_LABELS_BYTES - 1);
        let ok = json!({"coe": "kubernetes", "l": {"k": at_limit}});
        assert!(parse_object("thing", &ok, SPECS).is_ok());
        let over = json!({"coe": "kubernetes", "l": {"k": at_limit, "x": ""}});
        let e = err(over);
        assert!(e.contains("The labels take 65536 bytes"), "{e}");
        assert!(e.len() < 200, "the refusal does not echo the labels");
    }

    #[test]
    fn conversions() {
        let f = parse_object(
            "t",
            &json!({"coe": "kubernetes", "n": " 5 ", "b": "yes", "l": {"a": true, "b": 1.0, "c": 2}}),
            SPECS,
        )
        .unwrap();
        assert_eq!(f.int("n"), Some(5));
        assert_eq!(f.bool("b"), Some(true));
        let l = f.map("l").unwrap();
        assert_eq!(l["a"], "True");
        assert_eq!(l["b"], "1.0");
        assert_eq!(l["c"], "2");
        assert!(dns_list_ok("8.8.8.8, 1.1.1.1"));
        assert!(!dns_list_ok("8.8.8"));
        assert!(!dns_list_ok(""));
    }
}
