//! `stepwise integrations list | show NAME | docs`: the built-in catalogue for people, from
//! `stepwise_integrations::reference` (the same content `GET /api/v1/integrations` serves).
//! No server and no database: the catalogue is compiled in.

use std::fmt::Write as _;
use std::process::ExitCode;

use stepwise_integrations::Registry;
use stepwise_integrations::reference::{
    self, ActionReference, Field, IntegrationKind, IntegrationSummary,
};

use super::integration_docs;
use crate::cli::IntegrationsCommand;

/// The exit code of `show` for a name that is neither an integration nor an action.
const UNKNOWN_NAME: u8 = 2;

pub fn run(command: IntegrationsCommand) -> anyhow::Result<ExitCode> {
    let registry = Registry::builtin();
    match command {
        IntegrationsCommand::List { json } => {
            let list = reference::list(&registry);
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", list_text(&list.integrations));
            }
            Ok(ExitCode::SUCCESS)
        }
        IntegrationsCommand::Show { name, json } => match reference::lookup(&registry, &name) {
            Ok(found) if json => {
                println!("{}", serde_json::to_string_pretty(&found)?);
                Ok(ExitCode::SUCCESS)
            }
            Ok(found) => {
                match &found.action {
                    Some(action) => print!("{}", action_text(&found.integration, action)),
                    None => print!("{}", integration_text(&found.integration)),
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(unknown) => {
                eprintln!("error: {unknown}");
                Ok(ExitCode::from(UNKNOWN_NAME))
            }
        },
        IntegrationsCommand::Docs { out, check } => {
            let pages = integration_docs::pages(&registry);
            if check {
                let stale = integration_docs::stale(&pages, &out)?;
                if stale.is_empty() {
                    println!("{}: up to date", out.display());
                    return Ok(ExitCode::SUCCESS);
                }
                for problem in &stale {
                    println!("{problem}");
                }
                println!(
                    "regenerate with `stepwise integrations docs --out {}`",
                    out.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            let written = integration_docs::write(&pages, &out)?;
            println!("{}: {written} pages written", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One block per integration: its name, then one line per action with its description.
fn list_text(integrations: &[IntegrationSummary]) -> String {
    let width = integrations
        .iter()
        .flat_map(|integration| &integration.actions)
        .map(|action| action.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for integration in integrations {
        let _ = writeln!(out, "{}", heading(integration));
        if integration.actions.is_empty() {
            let _ = writeln!(out, "  (no actions of its own)");
        }
        for action in &integration.actions {
            let _ = writeln!(out, "  {:width$}  {}", action.name, action.description);
        }
    }
    out.push_str("\nShow one with `stepwise integrations show <action>`.\n");
    out
}

/// `slack  Slack (provider; connections: oauth2, bearer)`.
fn heading(integration: &IntegrationSummary) -> String {
    match integration.kind {
        IntegrationKind::Provider => format!(
            "{}  {} (provider; connections: {})",
            integration.name,
            integration.display_name,
            integration.auth.join(", ")
        ),
        IntegrationKind::Builtin => format!(
            "{}  {} (built-in)",
            integration.name, integration.display_name
        ),
    }
}

fn integration_text(integration: &IntegrationSummary) -> String {
    let mut out = format!("{}\n", heading(integration));
    if !integration.categories.is_empty() {
        let _ = writeln!(out, "Categories: {}", integration.categories.join(", "));
    }
    if let Some(docs) = &integration.docs_url {
        let _ = writeln!(out, "API documentation: {docs}");
    }
    out.push_str("\nActions:\n");
    let width = integration
        .actions
        .iter()
        .map(|action| action.name.len())
        .max()
        .unwrap_or(0);
    if integration.actions.is_empty() {
        out.push_str("  (no actions of its own)\n");
    }
    for action in &integration.actions {
        let _ = writeln!(out, "  {:width$}  {}", action.name, action.description);
    }
    out
}

fn action_text(integration: &IntegrationSummary, action: &ActionReference) -> String {
    let mut out = format!("{}\n  {}\n\n", action.name, action.description);
    let _ = writeln!(out, "Integration: {}", heading(integration));
    if let Some(docs) = &integration.docs_url {
        let _ = writeln!(out, "API documentation: {docs}");
    }
    if action.needs_connection {
        let _ = writeln!(
            out,
            "Connection: required; set the step's `connection:` to a {} connection \
             (`stepwise connections create NAME --integration {} --kind {}`)",
            integration.name,
            integration.name,
            integration.auth.join("|")
        );
    }
    out.push_str("\nInput (with:):\n");
    out.push_str(&fields_text(&action.inputs, "required"));
    out.push_str("\nOutput (steps.<id>.output):\n");
    out.push_str(&fields_text(&action.outputs, "always"));
    out.push_str("\nExample step:\n");
    for line in action.example.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// One aligned line per field: path, type, `required` (or `always` for outputs), description.
fn fields_text(fields: &[Field], required: &str) -> String {
    if fields.is_empty() {
        return "  (none)\n".to_owned();
    }
    let path_width = fields.iter().map(|f| f.path.len()).max().unwrap_or(0);
    let type_width = fields.iter().map(|f| f.type_name.len()).max().unwrap_or(0);
    let flag_width = required.len();
    let mut out = String::new();
    for field in fields {
        let flag = if field.required { required } else { "" };
        let line = format!(
            "  {:path_width$}  {:type_width$}  {flag:flag_width$}  {}",
            field.path,
            field.type_name,
            field.description.as_deref().unwrap_or_default()
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
