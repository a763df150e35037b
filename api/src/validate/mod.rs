//! Request validation: WSME-like field typing ([`fields`]) and the template and cluster rules
//! of Magnum's controllers, `validation` decorators and `attr_validator`.
pub mod cluster;
pub mod fields;
pub mod template;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::lookups::{self, Lookups};
use magnum_proto::Labels;

/// `validate_flavor_root_volume_size` for each given flavor: with `boot_volume_size` 0 the
/// flavor must have a root disk. Unset flavors are skipped (the Heat templates default them).
pub async fn check_root_volume(
    l: &dyn Lookups,
    who: &Identity,
    labels: &Labels,
    default_boot_volume_size: i64,
    flavors: &[Option<&str>],
) -> Result<(), ApiError> {
    let size = match labels.get("boot_volume_size") {
        None => default_boot_volume_size,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest("boot_volume_size must be an integer".into()))?,
    };
    if size > 0 {
        return Ok(());
    }
    for f in flavors.iter().flatten() {
        let flavor = lookups::flavor(l, who, f).await?;
        if flavor.disk == 0 {
            return Err(ApiError::bad_request(
                "Flavor with zero root volume size is not supported when boot_volume_size is \
                 zero.",
            ));
        }
    }
    Ok(())
}
