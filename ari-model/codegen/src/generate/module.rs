//! `mod.rs`: the module list and the release constants.

use std::fmt::Write as _;

use crate::compat::Compat;
use crate::spec::Spec;

pub(super) fn file(header: &str, spec: &Spec, compat: &Compat) -> String {
    let mut out = String::from(header);
    out.push_str("\npub mod events;\npub mod models;\npub mod operations;\n\n");
    let _ = writeln!(
        out,
        "/// Asterisk release whose api-docs the model was generated from."
    );
    let _ = writeln!(out, "pub const SPEC_RELEASE: &str = {:?};", compat.primary);
    let _ = writeln!(out, "/// ARI version of that release.");
    let _ = writeln!(out, "pub const ARI_VERSION: &str = {:?};", spec.api_version);
    let _ = writeln!(
        out,
        "/// Releases whose specs the model is checked against (ari-model/api-docs/compat.json)."
    );
    let releases: Vec<String> = compat.versions.iter().map(|v| format!("{v:?}")).collect();
    let _ = writeln!(
        out,
        "pub const CHECKED_RELEASES: &[&str] = &[{}];",
        releases.join(", ")
    );
    out
}
