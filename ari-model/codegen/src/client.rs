//! The client's resource groups (`client.channels().originate(..)`), generated from the
//! same spec as the model so that every operation is reachable and none is invented.

use std::fmt::Write as _;

use crate::generate::GenerateError;
use crate::names::{doc_lines, field_ident, pascal, snake};
use crate::spec::Spec;
use crate::types::{Ty, response_type};

/// Method names that would be keywords or mislead as they are.
const METHOD_NAMES: &[(&str, &str, &str)] = &[("channels", "move", "move_to_app")];

fn method_name(resource: &str, nickname: &str) -> String {
    METHOD_NAMES
        .iter()
        .find(|(r, n, _)| *r == resource && *n == nickname)
        .map_or_else(|| field_ident(nickname), |(_, _, m)| (*m).to_owned())
}

/// A `no_run` doctest for a resource group: its first GET (else first) operation whose
/// required parameters are all strings or ids, called with placeholder values.
fn group_example(resource: &crate::spec::Resource, accessor: &str) -> Option<String> {
    let candidates = resource
        .apis
        .iter()
        .flat_map(|a| a.operations.iter())
        .filter(|o| {
            o.upgrade.is_none()
                && o.response_class != "binary"
                && o.parameters
                    .iter()
                    .filter(|p| p.required || p.param_type == crate::spec::ParamType::Path)
                    .all(|p| {
                        p.data_type == "string" && !p.allow_multiple && p.allowable_values.is_none()
                    })
        });
    let mut candidates: Vec<_> = candidates.collect();
    candidates.sort_by_key(|o| {
        (
            o.http_method != "GET",
            o.parameters.iter().filter(|p| p.required).count(),
        )
    });
    let operation = candidates.first()?;
    let args: Vec<String> = operation
        .parameters
        .iter()
        .filter(|p| p.required || p.param_type == crate::spec::ParamType::Path)
        .map(|p| format!("{:?}", p.name))
        .collect();
    let module = snake(&resource.name);
    let method = method_name(&resource.name, &operation.nickname);
    let params = pascal(&operation.nickname);
    let mut out = String::from("///\n/// ```no_run\n");
    out.push_str(
        "/// # async fn example(client: ari_client::Client) -> Result<(), ari_client::Error> {\n",
    );
    let _ = writeln!(out, "/// use ari_client::model::operations::{module};");
    let _ = writeln!(
        out,
        "/// let answer = client.{accessor}().{method}({module}::{params}::new({})).await?;",
        args.join(", ")
    );
    out.push_str("/// # let _ = answer;\n/// # Ok(())\n/// # }\n/// ```\n");
    Some(out)
}

/// Source of `ari-client/src/generated/resources.rs` (unformatted), and the number of
/// operations reachable through it (all but the events WebSocket, which
/// `AppConnection` opens).
///
/// # Errors
/// When a response class has no Rust type.
pub fn resources_file(header: &str, spec: &Spec) -> Result<(String, usize), GenerateError> {
    let models = spec.models();
    let model_names: Vec<&str> = models.keys().copied().collect();
    let mut out = String::from(header);
    out.push_str("//! Every ARI operation as a method, grouped by resource: `client.channels().originate(..)`.\n\n");
    out.push_str("use crate::{Client, Error};\n\n");
    let mut accessors = String::new();
    let mut groups = String::new();
    let mut count = 0;
    for resource in &spec.resources {
        let group = pascal(&resource.name);
        let accessor = snake(&resource.name);
        let description = resource.description();
        let _ = writeln!(
            accessors,
            "    /// Operations of the `{}` resource ({}).",
            resource.name,
            description.trim_end_matches('.')
        );
        let _ = writeln!(
            accessors,
            "    pub fn {accessor}(&self) -> {group}<'_> {{\n        {group} {{ client: self }}\n    }}\n"
        );
        let _ = writeln!(
            groups,
            "/// Operations of the `{}` resource; from [`Client::{accessor}`].",
            resource.name
        );
        if let Some(example) = group_example(resource, &accessor) {
            groups.push_str(&example);
        }
        let _ = writeln!(
            groups,
            "#[derive(Debug, Clone, Copy)]\npub struct {group}<'a> {{\n    client: &'a Client,\n}}\n"
        );
        let _ = writeln!(groups, "impl {group}<'_> {{");
        for api in &resource.apis {
            for operation in &api.operations {
                if operation.upgrade.as_deref() == Some("websocket") {
                    continue;
                }
                let params = format!(
                    "ari_model::operations::{}::{}",
                    snake(&resource.name),
                    pascal(&operation.nickname)
                );
                let method = method_name(&resource.name, &operation.nickname);
                groups.push_str(&doc_lines(&operation.summary, "    "));
                let _ = writeln!(
                    groups,
                    "    ///\n    /// `{} /ari{}`; parameters: [`{params}`].",
                    operation.http_method, api.path
                );
                let _ = writeln!(groups, "    ///\n    /// # Errors");
                // Written as is (not through doc_lines): these links are ours.
                let _ = writeln!(
                    groups,
                    "    /// [`Error::Api`] for an error status; transport, time-out and decode errors as [`Error`] says."
                );
                if !operation.error_responses.is_empty() {
                    let _ = writeln!(groups, "    /// Documented statuses:");
                    for error in &operation.error_responses {
                        groups.push_str(&doc_lines(
                            &format!("- {}: {}", error.code, error.reason),
                            "    ",
                        ));
                    }
                }
                let place = format!("{}.{}", resource.name, operation.nickname);
                if operation.response_class == "binary" {
                    let _ = writeln!(
                        groups,
                        "    pub async fn {method}<W: tokio::io::AsyncWrite + Unpin + ?Sized>(&self, params: {params}, writer: &mut W) -> Result<u64, Error> {{\n        self.client.execute_to_writer(&params, writer).await\n    }}\n"
                    );
                } else {
                    let response = response_type(&place, &operation.response_class, &model_names)?
                        .map_or_else(
                            || "()".to_owned(),
                            |t: Ty| t.rust().replace("crate::", "ari_model::"),
                        );
                    let _ = writeln!(
                        groups,
                        "    pub async fn {method}(&self, params: {params}) -> Result<{response}, Error> {{\n        self.client.execute(&params).await\n    }}\n"
                    );
                }
                count += 1;
            }
        }
        groups.push_str("}\n\n");
    }
    out.push_str("impl Client {\n");
    out.push_str(&accessors);
    out.push_str("}\n\n");
    out.push_str(&groups);
    Ok((out, count))
}
