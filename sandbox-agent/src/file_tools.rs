//! The file tools' inputs and their one dispatcher, shared by the worker (host runs, and
//! containers without the agent) and the agent (inside the container): one piece of code
//! decides what `read`, `write`, `edit` and `apply_patch` do wherever they run.

use serde::Deserialize;
use serde_json::Value;

use crate::fs::{self, Workspace};
use crate::patch;

/// The tools [`run`] serves.
pub const FILE_TOOLS: [&str; 4] = ["read", "write", "edit", "apply_patch"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadInput {
    path: String,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteInput {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EditInput {
    path: String,
    old_text: String,
    new_text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchInput {
    patch: String,
}

/// One call of a file tool (blocking I/O): the text for the model, or why it failed.
pub fn run(ws: &Workspace, tool: &str, input: &Value) -> Result<String, String> {
    match tool {
        "read" => parse::<ReadInput>(tool, input)
            .and_then(|i| fs::read(ws, &i.path, i.offset, i.limit).map_err(|e| e.0)),
        "write" => parse::<WriteInput>(tool, input).and_then(|i| {
            ws.write_text(&i.path, &i.content)
                .map(|_| format!("wrote {} bytes to {}", i.content.len(), i.path))
                .map_err(|e| e.0)
        }),
        "edit" => parse::<EditInput>(tool, input)
            .and_then(|i| fs::edit(ws, &i.path, &i.old_text, &i.new_text).map_err(|e| e.0)),
        "apply_patch" => parse::<PatchInput>(tool, input)
            .and_then(|i| patch::apply_patch(ws, &i.patch).map_err(|e| e.0)),
        _ => Err(format!("unknown file tool {tool:?}")),
    }
}

/// A tool's JSON input as `T`, or the error the model sees.
pub fn parse<T: for<'de> Deserialize<'de>>(tool: &str, input: &Value) -> Result<T, String> {
    serde_json::from_value(input.clone()).map_err(|e| format!("invalid input for {tool}: {e}"))
}
