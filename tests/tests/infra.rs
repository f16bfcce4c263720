//! The infrastructure code checked as far as this machine allows (no terraform providers can be
//! downloaded here): terraform fmt's layout (with terraform where it is installed, and always
//! with our own `check_fmt.py`), python-hcl2 parsing, checkov, reference checks, who may reach
//! NATS, user data within 16 KiB, every flag the systemd units and cloud-init pass to a daemon
//! is one its `--help` lists, the units pass systemd-analyze, and deploy/'s NATS cluster runs
//! for real (three nats-server from fjord-nats.service, and fjord-lb from its unit). The report
//! must show each check's own verdict, never a header alone, and must say which checks did not
//! run. Each new check is also shown to fail on a broken copy of what it checks.

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

fn systemd_analyze_installed() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Where scripts/install-infra-tools.sh put the Python venvs (scripts/test runs it first).
fn tool_python(venv: &str) -> PathBuf {
    let tools = std::env::var_os("FJORD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/fjord-tools"));
    let python = tools.join(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-infra-tools.sh",
        python.display()
    );
    python
}

/// A copy of terraform/ and deploy/ to break on purpose.
fn copy_of_infra() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["terraform", "deploy"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(repo().join(sub))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "copying {sub}");
    }
    dir
}

/// Replaces `from` (which must occur) with `to` in one file.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn terraform_and_deploy_files_pass_their_checks_against_the_real_flags() {
    let help = help_dir();
    let repo = repo();
    let out = Command::new("bash")
        .arg(repo.join("scripts/check-infra.sh"))
        .env("FJORD_HELP_DIR", help.path())
        .env("FJORD_LB_BIN", bin("fjord-lb"))
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
        .1
        .split(';')
        .next()
        .unwrap_or_default();
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
    // The NATS checks: the security groups, the user data size, and the cluster itself, with
    // fjord-lb (scripts/test installs nats-server, so this one always runs).
    let network = line_after(&report, "check_network: ok: ").unwrap_or_else(|| panic!("no network verdict:\n{report}"));
    assert!(
        network.contains("4222 from control_plane, lb; 6222 from control_plane"),
        "{network}"
    );
    assert!(
        line_after(&report, "check_user_data: ok: limit 16384: ").is_some(),
        "{report}"
    );
    let nats = line_after(&report, "check_nats: ok: ")
        .filter(|_| report.contains("fjord-lb included)"))
        .unwrap_or_else(|| panic!("check_nats did not run with fjord-lb:\n{report}"));
    assert!(!nats.is_empty());
    for verdict in [
        "formed JetStream cluster 'fjord'",
        "clients without the token or with a wrong one refused",
        "was killed with SIGKILL",
        "started again on its store and caught up",
        "a server with a wrong route password was refused",
        "created FJORD_CALLS, FJORD_DEAD, FJORD_CALL_RECORDS with 3 replicas",
    ] {
        assert!(report.contains(verdict), "no {verdict:?} in:\n{report}");
    }
    // terraform fmt and systemd-analyze either ran and passed or are reported as not run.
    let mut not_run = Vec::new();
    if terraform_installed() {
        assert!(report.contains("terraform fmt: ok: every file formatted"), "{report}");
    } else {
        assert!(report.contains("not run: terraform fmt"), "{report}");
        not_run.push("terraform fmt");
    }
    let units = std::fs::read_dir(repo.join("deploy"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "service"))
        .count();
    if systemd_analyze_installed() {
        assert!(
            report.contains(&format!("systemd-analyze: {units} of {units} units pass")),
            "{report}"
        );
    } else {
        assert!(report.contains("not run: systemd-analyze"), "{report}");
        not_run.push("systemd-analyze");
    }
    if not_run.is_empty() {
        assert!(report.contains("check-infra: all checks ran and passed"), "{report}");
    } else {
        let summary = line_after(&report, "check-infra: every check that ran passed; not run: ").unwrap();
        for step in not_run {
            assert!(summary.contains(step), "{report}");
        }
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

#[test]
fn the_network_check_fails_when_agents_or_the_vpc_can_reach_nats() {
    let copy = copy_of_infra();
    let groups = copy.path().join("terraform/modules/network/security_groups.tf");
    let text = std::fs::read_to_string(&groups).unwrap();
    // The lb's rule given to the agent nodes, and the VPC-wide gRPC rule widened over 4222.
    let (head, tail) = text.split_once("\"nats_from_lb\"").unwrap();
    let tail = tail.replacen("aws_security_group.lb.id", "aws_security_group.nodes.id", 1);
    std::fs::write(&groups, format!("{head}\"nats_from_lb\"{tail}")).unwrap();
    edit(
        &groups,
        "from_port         = var.admin_port",
        "from_port         = 4000",
    );
    let out = Command::new(tool_python("hcl2"))
        .arg(repo().join("terraform/tests/check_network.py"))
        .arg(copy.path().join("terraform"))
        .output()
        .unwrap();
    let report = report_of(&out);
    assert!(!out.status.success(), "{report}");
    for problem in [
        "nats_from_lb: opens 4222 (nats_port) to the nodes group",
        "no rule opens 4222 (nats_port) on the control_plane group to the lb group",
        "control_plane_from_vpc: opens 4222 (nats_port) to ${aws_vpc.this.cidr_block}",
        "control_plane_from_vpc: opens 6222 (nats_cluster_port) to ${aws_vpc.this.cidr_block}",
    ] {
        assert!(report.contains(problem), "no {problem:?} in:\n{report}");
    }
}

#[test]
fn the_user_data_check_fails_when_the_members_user_data_is_not_gzipped() {
    let copy = copy_of_infra();
    edit(
        &copy.path().join("terraform/modules/control_plane/main.tf"),
        "user_data_base64 = base64gzip(templatefile(",
        "user_data = (templatefile(",
    );
    let out = Command::new("python3")
        .arg(repo().join("terraform/tests/check_user_data.py"))
        .arg(copy.path().join("terraform"))
        .output()
        .unwrap();
    let report = report_of(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("modules/control_plane: user data is") && report.contains("over EC2's 16384-byte limit"),
        "{report}"
    );
}

#[test]
fn the_nats_check_fails_when_the_servers_take_clients_without_the_token() {
    let copy = copy_of_infra();
    let conf = copy.path().join("deploy/nats.conf");
    edit(&conf, "include \"client-secrets.conf\"", "");
    let out = Command::new(tool_python("nats"))
        .arg(repo().join("deploy/tests/check_nats.py"))
        .arg("--conf")
        .arg(&conf)
        .output()
        .unwrap();
    let report = report_of(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("check_nats: FAILED: a client with no token was let in"),
        "{report}"
    );
}
