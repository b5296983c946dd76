//! `models.rs`: the string enums, every model that is not an event, and
//! `validate_model_json`.

use std::fmt::Write as _;

use crate::names::variant;
use crate::types::Enums;

use super::{StructDef, write_struct};

pub(super) fn file(header: &str, structs: &[StructDef], enums: &Enums) -> String {
    let mut out = String::from(header);
    out.push_str("//! Every ARI data type that is not an event, and the string enums of models and parameters.\n\n");
    for (name, def) in &enums.defs {
        let _ = writeln!(out, "crate::string_enum::string_enum! {{");
        let _ = writeln!(out, "    /// Values of {}.", def.uses.join(", "));
        let _ = writeln!(out, "    {name} {{");
        for value in &def.values {
            let _ = writeln!(out, "        /// `{}`", value.replace('`', ""));
            let _ = writeln!(out, "        {} = {:?},", variant(name, value), value);
        }
        out.push_str("    }\n}\n\n");
    }
    for def in structs {
        write_struct(&mut out, def);
    }
    out.push_str("/// Decodes `json` as the model named `name` (e.g. `\"Channel\"`), for tools and tests that\n");
    out.push_str("/// work from the spec. `None` when no model has that name.\n");
    out.push_str("pub fn validate_model_json(name: &str, json: &str) -> Option<Result<(), serde_json::Error>> {\n");
    out.push_str("    match name {\n");
    for def in structs {
        let _ = writeln!(
            out,
            "        {:?} => Some(serde_json::from_str::<{}>(json).map(drop)),",
            def.name, def.name
        );
    }
    out.push_str("        _ => None,\n    }\n}\n");
    out
}
