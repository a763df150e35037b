//! Cluster template create and update rules (reference §5).
use super::fields::{self, field, mandatory, parse_object, Fields, Kind, Spec, Val, STR255};
use crate::auth::Identity;
use crate::coe::{self, check_devicemapper_size, resolve_driver, rules_for};
use crate::error::ApiError;
use crate::lookups::{self, Image};
use crate::patch::PatchRules;
use crate::policy::{self, Action};
use crate::render;
use crate::state::AppState;
use magnum_proto::{ClusterTemplate, TemplateId, Timestamp};
use serde_json::Value;

/// The API type `ClusterTemplate`, in declaration order.
pub const FIELDS: &[Spec] = &[
    field("uuid", Kind::Uuid),
    field("name", STR255),
    mandatory("coe", Kind::Enum(&coe::COES)),
    mandatory("image_id", STR255),
    field("flavor_id", STR255),
    field("master_flavor_id", STR255),
    field("dns_nameserver", Kind::Dns),
    field("keypair_id", STR255),
    field("external_network_id", STR255),
    field("fixed_network", STR255),
    field("fixed_subnet", STR255),
    field("network_driver", STR255),
    field(
        "apiserver_port",
        Kind::Int {
            min: Some(1024),
            max: Some(65535),
        },
    ),
    field(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: Some(i32::MAX as i64),
        },
    ),
    field("cluster_distro", STR255),
    field("links", Kind::ReadOnly),
    field("http_proxy", STR255),
    field("https_proxy", STR255),
    field("no_proxy", STR255),
    field("volume_driver", STR255),
    field("registry_enabled", Kind::Bool),
    field("labels", Kind::Labels),
    field("tls_disabled", Kind::Bool),
    field("public", Kind::Bool),
    field("server_type", Kind::Enum(&coe::SERVER_TYPES)),
    field("insecure_registry", STR255),
    field("docker_storage_driver", STR255),
    field("master_lb_enabled", Kind::Bool),
    field("floating_ip_enabled", Kind::Bool),
    field("project_id", Kind::ReadOnly),
    field("user_id", Kind::ReadOnly),
    field("hidden", Kind::Bool),
    field("tags", Kind::Str { min: 0, max: 255 }),
    field("driver", Kind::Str { min: 0, max: 255 }),
    field("created_at", Kind::ReadOnly),
    field("updated_at", Kind::ReadOnly),
];

/// `ClusterTemplatePatchType`: mandatory attributes plus `_extra_non_removable_attrs`.
pub const PATCH_RULES: PatchRules = PatchRules {
    internal: &[],
    non_removable: &[
        "/coe",
        "/image_id",
        "/network_driver",
        "/external_network_id",
        "/tls_disabled",
        "/public",
        "/server_type",
        "/registry_enabled",
        "/cluster_distro",
        "/hidden",
    ],
};

/// Body fields → a template row with the API defaults applied (null on a defaulted
/// attribute means the default, like an omitted one).
fn from_fields(f: &Fields) -> ClusterTemplate {
    ClusterTemplate {
        uuid: f
            .str("uuid")
            .and_then(|u| uuid::Uuid::parse_str(&u).ok())
            .map(TemplateId),
        name: f.str("name"),
        coe: f.str("coe"),
        image_id: f.str("image_id"),
        flavor_id: f.str("flavor_id"),
        master_flavor_id: f.str("master_flavor_id"),
        keypair_id: f.str("keypair_id"),
        dns_nameserver: f.str("dns_nameserver"),
        external_network_id: f.str("external_network_id"),
        fixed_network: f.str("fixed_network"),
        fixed_subnet: f.str("fixed_subnet"),
        network_driver: f.str("network_driver"),
        volume_driver: f.str("volume_driver"),
        apiserver_port: f.int("apiserver_port"),
        docker_volume_size: f.int("docker_volume_size"),
        docker_storage_driver: f.str("docker_storage_driver"),
        cluster_distro: f.str("cluster_distro"),
        http_proxy: f.str("http_proxy"),
        https_proxy: f.str("https_proxy"),
        no_proxy: f.str("no_proxy"),
        registry_enabled: f.bool("registry_enabled").unwrap_or(false),
        insecure_registry: f.str("insecure_registry"),
        labels: f.map("labels").unwrap_or_default(),
        tls_disabled: f.bool("tls_disabled").unwrap_or(false),
        public: f.bool("public").unwrap_or(false),
        hidden: f.bool("hidden").unwrap_or(false),
        server_type: Some(f.str("server_type").unwrap_or_else(|| "vm".into())),
        master_lb_enabled: f.bool("master_lb_enabled").unwrap_or(false),
        floating_ip_enabled: f.bool("floating_ip_enabled").unwrap_or(true),
        tags: f.str("tags"),
        driver: f.str("driver"),
        ..Default::default()
    }
}

/// Validators of `@enforce_network_driver_types_*` and `@enforce_volume_driver_types_*`
/// (and `@enforce_server_type` on create).
fn coe_checks(state: &AppState, t: &ClusterTemplate, server_type: bool) -> Result<(), ApiError> {
    let rules = rules_for(&state.settings.validation.coe_rules, t.coe.as_deref())?;
    if server_type {
        rules.validate_server_type(t.server_type.as_deref().unwrap_or("vm"))?;
    }
    rules.network_driver(t.network_driver.as_deref())?;
    rules.validate_volume_driver(t.volume_driver.as_deref())
}

/// `validate_os_resources` for a template: image, flavors, networks (400/409).
/// `known` is an image already looked up for this template.
async fn check_os_resources(
    state: &AppState,
    who: &Identity,
    t: &ClusterTemplate,
    known: Option<Image>,
) -> Result<Option<Image>, ApiError> {
    let l = state.lookups.as_ref();
    let image = match (&t.image_id, known) {
        (_, Some(i)) => Some(i),
        (Some(i), None) => Some(lookups::image(l, who, i).await?),
        (None, None) => None,
    };
    for f in [&t.flavor_id, &t.master_flavor_id].into_iter().flatten() {
        lookups::flavor(l, who, f).await?;
    }
    if let Some(n) = &t.external_network_id {
        lookups::external_network(l, who, n).await?;
    }
    if let Some(n) = &t.fixed_network {
        lookups::fixed_network(l, who, n).await?;
    }
    if let Some(s) = &t.fixed_subnet {
        lookups::fixed_subnet(l, who, s).await?;
    }
    Ok(image)
}

fn check_publish(who: &Identity) -> Result<(), ApiError> {
    if policy::allowed(who, Action::TemplatePublish, None) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Not authorized to set public or hidden flag for cluster template.".into(),
        ))
    }
}

/// `POST /clustertemplates`: validates `body` in Magnum's order and returns the row to create.
pub async fn validate_create(
    state: &AppState,
    who: &Identity,
    body: &Value,
) -> Result<ClusterTemplate, ApiError> {
    let f = parse_object("cluster_template", body, FIELDS)?;
    let mut t = from_fields(&f);
    if t.image_id.is_none() {
        return Err(fields::invalid(
            "image_id",
            &Value::Null,
            "Mandatory field missing.",
        ));
    }
    let v = &state.settings.validation;
    coe_checks(state, &t, true)?;
    check_devicemapper_size(t.docker_storage_driver.as_deref(), t.docker_volume_size)?;

    // @enforce_driver_supported: distro and driver come from the image unless both were given.
    let l = state.lookups.as_ref();
    let mut image: Option<Image> = None;
    let (mut distro, mut driver) = (t.cluster_distro.clone(), t.driver.clone());
    if distro.is_none() || driver.as_deref().is_none_or(str::is_empty) {
        if let Some(id) = &t.image_id {
            // Magnum swallows look-up errors here and reports the unresolvable cluster type;
            // the image's own error is more useful and is what step 7 would say anyway.
            let img = lookups::image(l, who, id).await?;
            distro = img.os_distro.clone();
            driver = img.magnum_driver.clone();
            image = Some(img);
        }
    }
    resolve_driver(
        &v.drivers,
        t.server_type.as_deref(),
        distro.as_deref(),
        t.coe.as_deref(),
        driver.as_deref(),
    )?;

    policy::enforce(who, Action::TemplateCreate, None)?;
    let image = match check_os_resources(state, who, &t, image).await? {
        Some(i) => i,
        None => return Err(ApiError::Internal("image look-up skipped".into())),
    };
    let image_id = t.image_id.clone().unwrap_or_default();
    match image.os_distro.as_deref() {
        Some(d) if !d.is_empty() => t.cluster_distro = Some(d.to_string()),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "Image {image_id} doesn't contain os_distro field."
            )))
        }
    }
    t.driver = image.magnum_driver.clone();
    if t.public || t.hidden {
        check_publish(who)?;
    }
    super::check_root_volume(
        l,
        who,
        &t.labels,
        v.default_boot_volume_size,
        &[t.flavor_id.as_deref(), t.master_flavor_id.as_deref()],
    )
    .await?;
    if t.name.as_deref().is_none_or(str::is_empty) {
        t.name = Some(crate::names::random_name("template"));
    }
    t.uuid = Some(t.uuid.unwrap_or_else(TemplateId::new_v4));
    t.project_id = Some(who.project());
    t.user_id = Some(who.user());
    t.created_at = Some(Timestamp::now());
    t.network_driver = Some(
        rules_for(&v.coe_rules, t.coe.as_deref())?.network_driver(t.network_driver.as_deref())?,
    );
    Ok(t)
}

/// The document a template PATCH applies to (`as_dict()` of the row).
pub fn to_doc(t: &ClusterTemplate) -> Value {
    let mut v = serde_json::to_value(render::template(t, "")).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("links");
        m.insert("id".into(), Value::Null);
    }
    v
}

/// A patched document → the new row, each attribute re-validated by its API type.
pub fn from_doc(doc: &Value, old: &ClusterTemplate) -> Result<ClusterTemplate, ApiError> {
    let Value::Object(m) = doc else {
        return Err(ApiError::Internal(
            "patched template is not an object".into(),
        ));
    };
    let mut f = Fields::default();
    for spec in FIELDS {
        if matches!(spec.kind, Kind::ReadOnly) || spec.name == "uuid" {
            continue;
        }
        if let Some(v) = m.get(spec.name) {
            let val = fields::convert(spec, v)?;
            if val != Val::Null {
                f = f.with(spec.name, val);
            }
        }
    }
    let mut t = from_fields(&f);
    t.uuid = old.uuid;
    t.project_id = old.project_id.clone();
    t.user_id = old.user_id.clone();
    t.created_at = old.created_at;
    t.updated_at = old.updated_at;
    t.version = old.version;
    Ok(t)
}

/// `PATCH /clustertemplates/{id}` checks on the patched row `new` of `old`.
pub async fn validate_update(
    state: &AppState,
    who: &Identity,
    old: &ClusterTemplate,
    new: &ClusterTemplate,
) -> Result<(), ApiError> {
    check_os_resources(state, who, new, None).await?;
    if old.public != new.public || old.hidden != new.hidden {
        check_publish(who)?;
    }
    super::check_root_volume(
        state.lookups.as_ref(),
        who,
        &old.labels,
        state.settings.validation.default_boot_volume_size,
        &[new.flavor_id.as_deref(), new.master_flavor_id.as_deref()],
    )
    .await
}

/// The decorators that run on the patched document before policy.
pub fn validate_patched_drivers(state: &AppState, doc: &Value) -> Result<(), ApiError> {
    let get = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let t = ClusterTemplate {
        coe: get("coe"),
        network_driver: get("network_driver"),
        volume_driver: get("volume_driver"),
        ..Default::default()
    };
    coe_checks(state, &t, false)
}
