//! The infrastructure code checked as far as this machine allows (no terraform providers can be
//! downloaded here): terraform fmt's layout (with terraform where it is installed, and always
//! with our own `check_fmt.py`), python-hcl2 parsing, checkov, reference checks, and every flag
//! the systemd units and cloud-init pass to a daemon is one its `--help` lists. The report must
//! show each check's own verdict, never a header alone, and must say which checks did not run.

use fjord_tests::bin;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Each daemon's `--help`, written where check_flags.py reads it.
fn help_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for daemon in ["fjord-control-plane", "fjord-node-agent", "fjord-lb"] {
        let out = Command::new(bin(daemon)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{daemon} --help failed");
        std::fs::write(dir.path().join(format!("{daemon}.txt")), &out.stdout).unwrap();
    }
    dir
}

fn report_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The line of `report` that starts with `prefix`, without the prefix.
fn line_after<'a>(report: &'a str, prefix: &str) -> Option<&'a str> {
    report.lines().find_map(|line| line.strip_prefix(prefix))
}

fn terraform_installed() -> bool {
    Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn terraform_and_deploy_files_pass_their_checks_against_the_real_flags() {
    let help = help_dir();
    let repo = repo();
    let out = Command::new("bash")
        .arg(repo.join("scripts/check-infra.sh"))
        .env("FJORD_HELP_DIR", help.path())
        .current_dir(&repo)
        .output()
        .unwrap();
    let report = report_of(&out);
    assert!(out.status.success(), "scripts/check-infra.sh failed:\n{report}");

    // The flags check ran and found flags for every daemon in the deployment files.
    let flags = line_after(&report, "check_flags: ok: ").unwrap_or_else(|| panic!("no flags verdict:\n{report}"));
    let counts = flags
        .split_once("flags checked: ")
        .unwrap_or_else(|| panic!("no flag counts in {flags:?}"))
        .1;
    for daemon in ["fjord-control-plane", "fjord-node-agent", "fjord-lb"] {
        let n: u32 = counts
            .split(", ")
            .find_map(|c| c.strip_prefix(daemon)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count for {daemon} in {flags:?}"));
        assert!(n > 0, "no {daemon} flags checked: {flags:?}");
    }

    // The layout check ran over every .tf file there is.
    let tf_files = walk_tf(&repo.join("terraform"));
    assert!(tf_files > 0);
    assert_eq!(
        line_after(&report, "check_fmt: ok: "),
        Some(format!("{tf_files} files in canonical layout").as_str()),
        "{report}"
    );
    // terraform fmt itself either ran and passed or is reported as not run.
    if terraform_installed() {
        assert!(report.contains("terraform fmt: ok: every file formatted"), "{report}");
        assert!(report.contains("check-infra: all checks ran and passed"), "{report}");
    } else {
        assert!(report.contains("not run: terraform fmt"), "{report}");
        let summary = line_after(&report, "check-infra: every check that ran passed; not run: ").unwrap();
        assert!(summary.contains("terraform fmt"), "{report}");
    }
}

fn walk_tf(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with(".terraform"))
        .map(|p| match p.is_dir() {
            true => walk_tf(&p),
            false => usize::from(p.extension().is_some_and(|e| e == "tf")),
        })
        .sum()
}

#[test]
fn the_layout_check_names_each_line_terraform_fmt_would_change() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "resource \"aws_instance\" \"x\" {\n  ami = var.ami\n  instance_type = var.type\n\
               tags = {\n    Name = \"x\"\n  }\n  subnet_id =  var.subnet \n}\n";
    std::fs::write(dir.path().join("bad.tf"), bad).unwrap();
    let good = "resource \"aws_instance\" \"x\" {\n  ami           = var.ami\n  instance_type = var.type\n\
                \x20 tags = {\n    Name = \"x\"\n  }\n  subnet_id = var.subnet\n}\n";
    std::fs::write(dir.path().join("good.tf"), good).unwrap();
    let check = |file: &str| {
        Command::new("python3")
            .arg(repo().join("terraform/tests/check_fmt.py"))
            .arg(dir.path().join(file))
            .output()
            .unwrap()
    };

    let out = check("good.tf");
    assert!(out.status.success(), "{}", report_of(&out));
    let out = check("bad.tf");
    let report = report_of(&out);
    assert!(!out.status.success(), "{report}");
    for (line, what) in [
        (2, "`=` at column 7"),
        (4, "indented 0 spaces, terraform fmt indents 2"),
        (7, "one space after `=`"),
        (7, "trailing whitespace"),
    ] {
        assert!(
            report.contains(&format!("bad.tf:{line}: {what}")),
            "line {line} should be reported ({what}):\n{report}"
        );
    }
    if terraform_installed() {
        // The same verdicts as terraform's own.
        for (file, formatted) in [("good.tf", true), ("bad.tf", false)] {
            let out = Command::new("terraform")
                .args(["fmt", "-check"])
                .arg(dir.path().join(file))
                .env("TF_CLI_CONFIG_FILE", "/dev/null")
                .output()
                .unwrap();
            assert_eq!(out.status.success(), formatted, "terraform fmt -check {file}");
        }
    }
}

#[test]
fn the_flags_check_fails_on_a_flag_the_daemon_does_not_have() {
    let help = help_dir();
    // The control plane's --help without --data-dir, which the systemd unit passes.
    let path = help.path().join("fjord-control-plane.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("--data-dir"));
    std::fs::write(&path, text.replace("--data-dir", "--state-dir")).unwrap();
    let out = Command::new("python3")
        .arg(repo().join("deploy/tests/check_flags.py"))
        .arg("--help-dir")
        .arg(help.path())
        .current_dir(repo())
        .output()
        .unwrap();
    let report = report_of(&out);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("--data-dir"), "{report}");
}
