//! The one home of the naming rules: network names, container IDs,
//! interface names and plugin types, as libcni checks them at ADD, and the
//! parts of a cache entry's name, checked on every operation.

use crate::error::{AttachmentField, Error, ErrorKind};

/// Whether `t` can name a plugin binary: a non-empty file name, not `.` or
/// `..`, without `/` or NUL.
pub(crate) fn valid_plugin_type(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains(['/', '\0'])
}

/// The spec's network name rule (libcni's `ValidateNetworkName` regex
/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn invalid(field: AttachmentField, value: &str, reason: &'static str) -> Error {
    Error::new(ErrorKind::InvalidAttachment {
        field,
        value: value.to_owned(),
        reason,
    })
}

/// libcni's ADD-time checks (`ValidateContainerID`, `ValidateNetworkName`,
/// `ValidateInterfaceName`).
pub(crate) fn validate_add(network: &str, cid: &str, ifname: &str) -> Result<(), Error> {
    if cid.is_empty() {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "missing container ID",
        ));
    }
    if !valid_name(cid) {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    if network.is_empty() {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "missing network name",
        ));
    }
    if !valid_name(network) {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    let reason = if ifname.is_empty() {
        "interface name is empty"
    } else if ifname.len() > 15 {
        "interface name is too long; interface name should be less than 16 characters"
    } else if ifname == "." || ifname == ".." {
        "interface name is . or .."
    } else if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "interface name contains / or : or whitespace characters"
    } else {
        return Ok(());
    };
    Err(invalid(AttachmentField::IfName, ifname, reason))
}

/// The longest file name Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The name of an attachment's cache entry, `<network>-<container id>-<ifname>`,
/// refusing parts that are empty or would escape the results directory, and
/// names too long to be a file name (which no cache write could store: an
/// ADD would run its plugins and then fail to record them).
pub(crate) fn entry_name(network: &str, cid: &str, ifname: &str) -> Result<String, Error> {
    check_component(AttachmentField::NetworkName, network)?;
    check_component(AttachmentField::ContainerId, cid)?;
    check_component(AttachmentField::IfName, ifname)?;
    if network.len() + cid.len() + ifname.len() + 2 > NAME_MAX {
        let (field, value) = [
            (AttachmentField::ContainerId, cid),
            (AttachmentField::NetworkName, network),
            (AttachmentField::IfName, ifname),
        ]
        .into_iter()
        .max_by_key(|(_, v)| v.len())
        .expect("three parts");
        return Err(invalid(
            field,
            value,
            "too long: the cache entry name `<network>-<container id>-<ifname>` would exceed 255 bytes",
        ));
    }
    Ok(format!("{network}-{cid}-{ifname}"))
}

fn check_component(field: AttachmentField, value: &str) -> Result<(), Error> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.contains('/') {
        "contains `/`, which would escape the cache directory"
    } else if value.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::new(ErrorKind::InvalidAttachment {
        field,
        value: value.to_owned(),
        reason,
    }))
}
