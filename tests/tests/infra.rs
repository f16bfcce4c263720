//! The infrastructure code checked as far as this machine allows (no terraform providers can be
//! downloaded here): `terraform fmt`, python-hcl2 parsing, checkov, reference checks, and every
//! flag the systemd units and cloud-init pass to a daemon is one its `--help` lists.

use fjord_tests::bin;
use std::process::Command;

#[test]
fn terraform_and_deploy_files_pass_their_checks_against_the_real_flags() {
    let help_dir = tempfile::tempdir().unwrap();
    for daemon in ["fjord-control-plane", "fjord-node-agent", "fjord-lb"] {
        let out = Command::new(bin(daemon)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{daemon} --help failed");
        std::fs::write(help_dir.path().join(format!("{daemon}.txt")), &out.stdout).unwrap();
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/check-infra.sh"))
        .env("FJORD_HELP_DIR", help_dir.path())
        .current_dir(repo)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/check-infra.sh failed:\n{report}");
    assert!(report.contains("flags"), "the flags check did not run:\n{report}");
}
