//! Every Terraform module and example has a README whose inputs and outputs tables match its
//! `variable` and `output` blocks (`scripts/terraform-docs` writes them; this keeps them true).

use std::process::Command;

#[test]
fn module_readmes_list_every_input_and_output() {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/terraform-docs"
        ))
        .arg("--check")
        .output()
        .expect("python3 runs scripts/terraform-docs");

    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
