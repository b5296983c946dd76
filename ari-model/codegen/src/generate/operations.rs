//! `operations.rs`: a parameter struct per operation implementing `crate::Operation`,
//! grouped by resource, and the catalogue `ALL`.

use std::fmt::Write as _;

use crate::compat::Compat;
use crate::names::{doc_lines, field_ident, pascal, snake};
use crate::spec::{Operation, ParamType, Spec};
use crate::types::{BodyShape, Enums, Ty, parameter_type, response_type};

use super::{GenerateError, with_availability};

/// One operation parameter with its Rust type.
struct Param {
    wire: String,
    ident: String,
    ty: Ty,
    required: bool,
    location: ParamType,
    shape: BodyShape,
    doc: String,
}

fn param_arg(param: &Param) -> (String, String) {
    let name = &param.ident;
    match &param.ty {
        Ty::String | Ty::Id(_) => (
            format!("impl Into<{}>", param.ty.rust()),
            format!("{name}.into()"),
        ),
        Ty::List(inner) if matches!(inner.as_ref(), Ty::String | Ty::Id(_)) => (
            format!("impl IntoIterator<Item = impl Into<{}>>", inner.rust()),
            format!("{name}.into_iter().map(Into::into).collect()"),
        ),
        Ty::List(inner) => (
            format!("impl IntoIterator<Item = {}>", inner.rust()),
            format!("{name}.into_iter().collect()"),
        ),
        Ty::Variables => (
            "impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>".to_owned(),
            format!("{name}.into_iter().map(|(k, v)| (k.into(), v.into())).collect()"),
        ),
        other => (other.rust(), name.clone()),
    }
}

pub(super) fn file(
    spec: &Spec,
    compat: &Compat,
    model_names: &[&str],
    enums: &mut Enums,
) -> Result<(String, usize), GenerateError> {
    let mut out = String::new();
    out.push_str(
        "//! Every ARI operation: a parameter struct per operation, grouped by resource, each\n",
    );
    out.push_str(
        "//! implementing [`crate::Operation`] (method, path, query, body, response, errors).\n\n",
    );
    let mut catalog = Vec::new();
    let mut count = 0;
    for resource in &spec.resources {
        let module = snake(&resource.name);
        let description = resource.description();
        let _ = writeln!(
            out,
            "/// Operations of the `{}` resource ({}).",
            resource.name,
            description.trim_end_matches('.')
        );
        if !resource.requires_modules.is_empty() {
            let _ = writeln!(
                out,
                "///\n/// Needs the Asterisk modules {}.",
                resource.requires_modules.join(", ")
            );
        }
        let _ = writeln!(out, "pub mod {module} {{");
        for api in &resource.apis {
            for operation in &api.operations {
                let code = operation_code(
                    &resource.name,
                    &api.path,
                    operation,
                    compat,
                    model_names,
                    enums,
                )?;
                out.push_str(&code);
                catalog.push(format!(
                    "    OperationInfo {{ resource: {:?}, nickname: {:?}, method: crate::HttpMethod::{}, path: {:?} }},",
                    resource.name,
                    operation.nickname,
                    pascal(&operation.http_method.to_ascii_lowercase()),
                    api.path
                ));
                count += 1;
            }
        }
        out.push_str("}\n\n");
    }
    out.push_str("/// Where an operation lives.\n#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub struct OperationInfo {\n");
    out.push_str("    /// Resource file, e.g. `channels`.\n    pub resource: &'static str,\n");
    out.push_str("    /// Operation name, e.g. `originate`.\n    pub nickname: &'static str,\n");
    out.push_str("    /// HTTP method.\n    pub method: crate::HttpMethod,\n");
    out.push_str("    /// Path template under `/ari`.\n    pub path: &'static str,\n}\n\n");
    out.push_str(
        "/// Every operation of the spec, in spec order.\npub const ALL: &[OperationInfo] = &[\n",
    );
    for line in catalog {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("];\n");
    Ok((out, count))
}

fn operation_code(
    resource: &str,
    path: &str,
    operation: &Operation,
    compat: &Compat,
    model_names: &[&str],
    enums: &mut Enums,
) -> Result<String, GenerateError> {
    let name = pascal(&operation.nickname);
    let mut params = Vec::new();
    for parameter in &operation.parameters {
        let (ty, shape) =
            parameter_type(resource, &operation.nickname, parameter, model_names, enums)?;
        let mut doc_text = parameter
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "The {} parameter (no description in the spec).",
                    parameter.name
                )
            });
        if let Some(default) = &parameter.default_value {
            let shown = match default {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(doc_text, "\n\nDefault (applied by Asterisk): {shown}.");
        }
        if let Some(range) = parameter
            .allowable_values
            .as_ref()
            .filter(|v| v.value_type == "RANGE")
        {
            match (range.min, range.max) {
                (Some(min), Some(max)) => {
                    let _ = write!(doc_text, "\n\nRange: {min} to {max}.");
                }
                (Some(min), None) => {
                    let _ = write!(doc_text, "\n\nMinimum: {min}.");
                }
                (None, Some(max)) => {
                    let _ = write!(doc_text, "\n\nMaximum: {max}.");
                }
                (None, None) => {}
            }
        }
        let required = parameter.required || parameter.param_type == ParamType::Path;
        params.push(Param {
            wire: parameter.name.clone(),
            ident: field_ident(&parameter.name),
            ty,
            required,
            location: parameter.param_type,
            shape,
            doc: doc_lines(&doc_text, "        "),
        });
    }
    let websocket = operation.upgrade.as_deref() == Some("websocket");
    let place = format!("{resource}.{}", operation.nickname);
    let response = if websocket {
        Some("crate::Event".to_owned())
    } else {
        response_type(&place, &operation.response_class, model_names)?.map(|t| t.rust())
    };
    let response_kind = match (websocket, operation.response_class.as_str()) {
        (true, _) => "WebSocket",
        (false, "void") => "Empty",
        (false, "binary") => "Binary",
        _ => "Json",
    };

    let mut out = String::new();
    let mut doc = operation.summary.clone();
    if let Some(notes) = &operation.notes {
        doc.push_str("\n\n");
        doc.push_str(notes);
    }
    out.push_str(&doc_lines(&doc, "    "));
    let _ = writeln!(
        out,
        "    ///\n    /// `{} /ari{}`",
        operation.http_method,
        path.replace('`', "")
    );
    if !operation.since.is_empty() {
        let _ = writeln!(
            out,
            "    ///\n    /// Since Asterisk {}.",
            operation.since.join(", ")
        );
    }
    let mut availability = String::new();
    with_availability(
        &mut availability,
        compat.availability(compat.operation_versions(resource, &operation.nickname)),
        "    ",
    );
    if !availability.is_empty() {
        let _ = writeln!(out, "    ///");
        out.push_str(&availability);
    }
    if !operation.error_responses.is_empty() {
        let _ = writeln!(out, "    ///\n    /// Documented errors:");
        for error in &operation.error_responses {
            out.push_str(&doc_lines(
                &format!("- {}: {}", error.code, error.reason),
                "    ",
            ));
        }
    }
    let all_optional = params.iter().all(|p| !p.required);
    let derive = if all_optional {
        "Debug, Clone, PartialEq, Default"
    } else {
        "Debug, Clone, PartialEq"
    };
    let _ = writeln!(out, "    #[derive({derive})]");
    let _ = writeln!(out, "    pub struct {name} {{");
    for param in &params {
        out.push_str(&param.doc);
        if param.required {
            let _ = writeln!(out, "        pub {}: {},", param.ident, param.ty.rust());
        } else {
            let _ = writeln!(
                out,
                "        pub {}: Option<{}>,",
                param.ident,
                param.ty.rust()
            );
        }
    }
    out.push_str("    }\n\n");

    // Constructor and setters.
    let _ = writeln!(out, "    impl {name} {{");
    let required: Vec<&Param> = params.iter().filter(|p| p.required).collect();
    let args: Vec<String> = required
        .iter()
        .map(|p| format!("{}: {}", p.ident, param_arg(p).0))
        .collect();
    let _ = writeln!(
        out,
        "        /// The parameters, with the required ones given."
    );
    let _ = writeln!(out, "        pub fn new({}) -> Self {{", args.join(", "));
    let mut inits = Vec::new();
    for param in &params {
        if param.required {
            let (_, conversion) = param_arg(param);
            if conversion == param.ident {
                inits.push(param.ident.clone());
            } else {
                inits.push(format!("{}: {conversion}", param.ident));
            }
        } else {
            inits.push(format!("{}: None", param.ident));
        }
    }
    let _ = writeln!(out, "            {name} {{ {} }}", inits.join(", "));
    out.push_str("        }\n");
    for param in params.iter().filter(|p| !p.required) {
        let (arg_type, conversion) = param_arg(param);
        let first = param
            .doc
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches("/// ");
        let _ = writeln!(out, "\n        /// Sets `{}`: {first}", param.wire);
        let _ = writeln!(out, "        #[must_use]");
        let _ = writeln!(
            out,
            "        pub fn {}(mut self, {}: {arg_type}) -> Self {{",
            param.ident, param.ident
        );
        let _ = writeln!(
            out,
            "            self.{} = Some({conversion});\n            self\n        }}",
            param.ident
        );
    }
    out.push_str("    }\n\n");

    // Operation impl.
    let _ = writeln!(out, "    impl crate::Operation for {name} {{");
    let _ = writeln!(
        out,
        "        type Response = {};",
        response.as_deref().unwrap_or("()")
    );
    let _ = writeln!(out, "        const RESOURCE: &'static str = {resource:?};");
    let _ = writeln!(
        out,
        "        const NICKNAME: &'static str = {:?};",
        operation.nickname
    );
    let _ = writeln!(
        out,
        "        const METHOD: crate::HttpMethod = crate::HttpMethod::{};",
        pascal(&operation.http_method.to_ascii_lowercase())
    );
    let _ = writeln!(out, "        const PATH_TEMPLATE: &'static str = {path:?};");
    let _ = writeln!(
        out,
        "        const RESPONSE_KIND: crate::ResponseKind = crate::ResponseKind::{response_kind};"
    );
    let errors: Vec<String> = operation
        .error_responses
        .iter()
        .map(|e| {
            format!(
                "crate::ErrorResponse {{ status: {}, reason: {:?} }}",
                e.code, e.reason
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "        const ERRORS: &'static [crate::ErrorResponse] = &[{}];",
        errors.join(", ")
    );

    // path()
    let mut format_string = String::new();
    let mut format_args = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        format_string.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        let wire = &rest[start + 1..end];
        let param = params
            .iter()
            .find(|p| p.wire == wire && p.location == ParamType::Path)
            .ok_or_else(|| {
                GenerateError::Spec(format!(
                    "{place}: path {path} names {wire}, which is no path parameter"
                ))
            })?;
        format_string.push_str("{}");
        format_args.push(format!(
            "crate::operation::encode_path_segment(self.{}.as_str())",
            param.ident
        ));
        rest = &rest[(end + 1).min(rest.len())..];
    }
    format_string.push_str(rest);
    out.push_str("\n        fn path(&self) -> String {\n");
    if format_args.is_empty() {
        let _ = writeln!(out, "            {format_string:?}.to_owned()");
    } else {
        let _ = writeln!(
            out,
            "            format!({format_string:?}, {})",
            format_args.join(", ")
        );
    }
    out.push_str("        }\n");

    // query()
    let query: Vec<&Param> = params
        .iter()
        .filter(|p| p.location == ParamType::Query)
        .collect();
    out.push_str("\n        fn query(&self) -> Vec<(&'static str, String)> {\n");
    let required_query: Vec<String> = query
        .iter()
        .filter(|p| p.required)
        .map(|p| {
            format!(
                "({:?}, crate::operation::QueryValue::to_query(&self.{}))",
                p.wire, p.ident
            )
        })
        .collect();
    let optional_query: Vec<&&Param> = query.iter().filter(|p| !p.required).collect();
    if optional_query.is_empty() {
        let _ = writeln!(out, "            vec![{}]", required_query.join(", "));
    } else {
        if required_query.is_empty() {
            out.push_str("            let mut query = Vec::new();\n");
        } else {
            let _ = writeln!(
                out,
                "            let mut query = vec![{}];",
                required_query.join(", ")
            );
        }
        for param in optional_query {
            let _ = writeln!(
                out,
                "            if let Some(value) = &self.{} {{\n                query.push(({:?}, crate::operation::QueryValue::to_query(value)));\n            }}",
                param.ident, param.wire
            );
        }
        out.push_str("            query\n");
    }
    out.push_str("        }\n");

    // body()
    let body: Vec<&Param> = params
        .iter()
        .filter(|p| p.location == ParamType::Body)
        .collect();
    out.push_str("\n        fn body(&self) -> Option<serde_json::Value> {\n");
    if body.is_empty() {
        out.push_str("            None\n");
    } else if let Some(whole) = body.iter().find(|p| p.shape == BodyShape::Whole) {
        if whole.required {
            let _ = writeln!(out, "            Some(self.{}.clone())", whole.ident);
        } else {
            let _ = writeln!(out, "            self.{}.clone()", whole.ident);
        }
    } else {
        out.push_str("            let mut body = serde_json::Map::new();\n");
        for param in body {
            if param.required {
                let _ = writeln!(
                    out,
                    "            body.insert({:?}.to_owned(), crate::operation::to_json(&self.{}));",
                    param.wire, param.ident
                );
            } else {
                let _ = writeln!(
                    out,
                    "            if let Some(value) = &self.{} {{\n                body.insert({:?}.to_owned(), crate::operation::to_json(value));\n            }}",
                    param.ident, param.wire
                );
            }
        }
        out.push_str("            (!body.is_empty()).then_some(serde_json::Value::Object(body))\n");
    }
    out.push_str("        }\n    }\n\n");
    Ok(out)
}
