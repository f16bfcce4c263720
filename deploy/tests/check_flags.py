#!/usr/bin/env python3
"""Checks that deployment files pass each Fjord daemon only flags it has.

The systemd units, the environment file examples, deploy/cloud-init.yaml, the
terraform cloud-init templates and the READMEs all put command lines together
for fjord-control-plane, fjord-node-agent and fjord-lb. A renamed or
misspelt flag there only shows up when a machine boots and the daemon refuses
to start. This script compares them with each daemon's `--help` output.

Where a flag is attributed to a daemon:
  * on a command line that runs the daemon (a path ending in the daemon's
    name, ExecStart=, or the name as the first word of a command): every
    --flag after it on that logical line (backslash continuations joined),
    up to the next |, ;, && or ||;
  * in an assignment to a variable holding extra flags for a unit, whose
    prefix names the daemon: CP_*ARGS (control plane), AGENT_*ARGS (node
    agent), LB_*ARGS (fjord-lb).
Comments count too: a documented command line must work as well.

It also checks, for every unit in deploy/ (fjord-nats.service included), that
every ${VAR} its ExecStart needs, and every $VAR the NATS server's nats.conf
reads, is set in the unit's environment example and in each cloud-init file
that installs the unit, and that a cloud-init file embedding a unit, nats.conf
or one of deploy/'s scripts embeds it unchanged.

Credentials: every ${CREDENTIALS_DIRECTORY}/ID an ExecStart passes is loaded by a
LoadCredential=ID:PATH of the same unit, and every cloud-init file in deploy/ that installs
the unit writes each PATH root-only (0600), so a unit never waits at boot for a file its
cloud-init forgot. Runtime paths: a path under /run/ that an ExecStart passes lies inside a
RuntimeDirectory= or ReadWritePaths= of the unit (the rest of /run is read-only under
ProtectSystem=strict), and the node agent's --secrets-dir, which dockerd bind-mounts into
containers from outside the unit's mount namespace, is in its RuntimeDirectory=, never under
/tmp with PrivateTmp= nor /dev/shm with PrivateDevices=.

Help text comes from a directory holding fjord-control-plane.txt,
fjord-node-agent.txt and fjord-lb.txt (--help-dir or $FJORD_HELP_DIR), or
from one file per daemon (--control-plane-help, --node-agent-help,
--lb-help), e.g.  fjord-lb --help > help/fjord-lb.txt

Usage: check_flags.py [--help-dir DIR] [--control-plane-help FILE]
                      [--node-agent-help FILE] [--lb-help FILE] [--repo DIR]
Exit status 0 when every flag is known, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

DAEMONS = ("fjord-control-plane", "fjord-node-agent", "fjord-lb")
ARGS_PREFIX = {"CP": "fjord-control-plane", "AGENT": "fjord-node-agent", "LB": "fjord-lb"}
FLAG_RE = re.compile(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)")
ARGS_ASSIGN_RE = re.compile(r"\b(CP|AGENT|LB)_[A-Z0-9_]*ARGS=(.*)")
COMMAND_END_RE = re.compile(r"\|\||&&|[|;]")
LEADING_WORDS = {"#", "-", "$", "sudo", "exec", "env"}
ENV_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
# Set by systemd itself, not by the environment file.
SYSTEMD_PROVIDED = {"CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "RUNTIME_DIRECTORY"}
# A unit whose program reads $VAR from its environment through a configuration file.
CONFIG_OF_UNIT = {"fjord-nats": "nats.conf"}
# Files of deploy/ that cloud-init writes verbatim, by the path they are written to
# (besides the units, /etc/systemd/system/NAME.service).
EMBEDDED_FILES = {
    "/etc/fjord/nats.conf": "nats.conf",
    "/usr/local/sbin/fjord-nats-config": "fjord-nats-config",
    "/usr/local/sbin/fjord-nats-install": "fjord-nats-install",
}


def help_flags(path: Path) -> set[str]:
    flags = set(FLAG_RE.findall(path.read_text()))
    if not flags:
        raise ValueError(f"{path}: no --flags found; is this a --help output?")
    return flags


def logical_lines(text: str):
    """(first line number, text) with backslash-continued lines joined."""
    buf, start = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if start is None:
            start = n
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buf.append(stripped[:-1])
            continue
        buf.append(line)
        yield start, " ".join(buf)
        buf, start = [], None
    if buf:
        yield start, " ".join(buf)


def daemon_of_token(token: str, first: bool) -> str | None:
    """The daemon a shell word runs, if it runs one."""
    explicit = False
    if token.startswith("ExecStart="):
        token, explicit = token[len("ExecStart="):].lstrip("-@:+!"), True
    base = token.rsplit("/", 1)[-1]
    if base in DAEMONS and (explicit or first or "/" in token):
        return base
    return None


def uses(path: Path, text: str):
    """Yield (line number, daemon, flag) for every daemon flag in text."""
    for lineno, line in logical_lines(text):
        # Variables carrying extra flags for a unit.
        for m in ARGS_ASSIGN_RE.finditer(line):
            daemon = ARGS_PREFIX[m.group(1)]
            for flag in FLAG_RE.findall(m.group(2)):
                yield lineno, daemon, flag
        # Command lines running a daemon.
        for segment in COMMAND_END_RE.split(line):
            current, first = None, True
            for word in segment.split():
                word = word.strip("\"'`")
                if first and (word in LEADING_WORDS or (ENV_PREFIX_RE.fullmatch(word) and not word.startswith("ExecStart="))):
                    continue  # comment marks, list dashes, prompts, sudo, VAR=value prefixes
                daemon = daemon_of_token(word, first)
                first = False
                if daemon:
                    current = daemon
                elif current and word.startswith("--"):
                    yield lineno, current, word[2:].split("=", 1)[0]


def exec_start_vars(unit_text: str) -> set[str]:
    """${VAR} names an ExecStart= needs (plain $VAR may be empty)."""
    names: set[str] = set()
    for _, line in logical_lines(unit_text):
        if line.lstrip().startswith("ExecStart="):
            names.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", line))
    return names - SYSTEMD_PROVIDED


def config_vars(config_text: str) -> set[str]:
    """$VAR names a nats.conf reads from the environment (comments left out)."""
    code = "\n".join(line.split("#", 1)[0] for line in config_text.splitlines())
    return set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", code)) - SYSTEMD_PROVIDED


def embedded_file(text: str, target: str) -> str | None:
    """The content of a cloud-init write_files entry for the file at target."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in (f"- path: {target}", f"path: {target}"):
            for j in range(i + 1, min(i + 8, len(lines))):
                m = re.match(r"(\s*)content:\s*\|\s*$", lines[j])
                if not m:
                    continue
                body, indent = [], None
                for raw in lines[j + 1:]:
                    if raw.strip() and indent is None:
                        indent = len(raw) - len(raw.lstrip())
                    if raw.strip() and (len(raw) - len(raw.lstrip())) < (indent or 0):
                        break
                    body.append(raw[indent:] if indent and raw.strip() else raw.strip())
                return "\n".join(body).strip() + "\n"
    return None


def unit_settings(unit_text: str) -> dict[str, list[str]]:
    """Key=value settings of a unit (comments left out), each key's values in order."""
    out: dict[str, list[str]] = {}
    for _, line in logical_lines(unit_text):
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def write_files_modes(text: str) -> dict[str, str]:
    """Path -> permissions of each cloud-init write_files entry."""
    modes: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*-?\s*path:\s*(\S+)\s*$", line)
        if not m:
            continue
        for j in range(i + 1, min(i + 6, len(lines))):
            pm = re.match(r"\s*permissions:\s*[\"']?([0-7]+)[\"']?\s*$", lines[j])
            if pm:
                modes[m.group(1)] = pm.group(1)
                break
            if re.match(r"\s*-\s", lines[j]):
                break
    return modes


def check_unit_paths(daemon: str, unit: str, problems: list[str]) -> int:
    """Credentials and /run paths of one unit; returns how many credentials it loads."""
    settings = unit_settings(unit)
    creds = {}
    for value in settings.get("LoadCredential", []):
        cred_id, _, path = value.partition(":")
        creds[cred_id] = path
    exec_start = " ".join(settings.get("ExecStart", []))
    for cred_id in re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([A-Za-z0-9_.-]+)", exec_start):
        if cred_id not in creds:
            problems.append(f"deploy/{daemon}.service: ExecStart reads credential {cred_id!r}, which no LoadCredential= loads")
    runtime_dirs = [f"/run/{d}" for v in settings.get("RuntimeDirectory", []) for d in v.split()]
    writable = runtime_dirs + [w.lstrip("-") for v in settings.get("ReadWritePaths", []) for w in v.split()]
    for path in re.findall(r"(?<=\s)(/run/\S+)", exec_start):
        if not any(path == w or path.startswith(w.rstrip("/") + "/") for w in writable):
            problems.append(f"deploy/{daemon}.service: ExecStart passes {path}, outside every RuntimeDirectory= "
                            "and ReadWritePaths= (read-only under ProtectSystem=strict)")
    if daemon == "fjord-node-agent":
        m = re.search(r"--secrets-dir[ =](\S+)", exec_start)
        yes = lambda key: any(v.lower() in ("yes", "true", "1", "on") for v in settings.get(key, []))
        if not m:
            problems.append("deploy/fjord-node-agent.service: passes no --secrets-dir; the default, under /dev/shm, "
                            "is not where the unit says the secret files live")
        else:
            path = m.group(1)
            if not any(path.startswith(d + "/") for d in runtime_dirs):
                problems.append(f"deploy/fjord-node-agent.service: --secrets-dir {path} is not inside its "
                                "RuntimeDirectory= (a tmpfs that dockerd sees at the same path)")
        if yes("PrivateDevices"):
            problems.append("deploy/fjord-node-agent.service: PrivateDevices= gives the agent a /dev/shm "
                            "that dockerd does not see")
    return len(creds)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--help-dir", default=os.environ.get("FJORD_HELP_DIR"))
    ap.add_argument("--control-plane-help")
    ap.add_argument("--node-agent-help")
    ap.add_argument("--lb-help")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    args = ap.parse_args(argv)

    explicit = {
        "fjord-control-plane": args.control_plane_help,
        "fjord-node-agent": args.node_agent_help,
        "fjord-lb": args.lb_help,
    }
    known: dict[str, set[str]] = {}
    for daemon in DAEMONS:
        path = explicit[daemon] or (args.help_dir and os.path.join(args.help_dir, f"{daemon}.txt"))
        if not path:
            print(f"check_flags: no help text for {daemon}: give --help-dir, FJORD_HELP_DIR or --{daemon[6:]}-help",
                  file=sys.stderr)
            return 2
        try:
            known[daemon] = help_flags(Path(path))
        except (OSError, ValueError) as exc:
            print(f"check_flags: {exc}", file=sys.stderr)
            return 2

    repo = Path(args.repo).resolve()
    deploy, terraform = repo / "deploy", repo / "terraform"
    files = sorted(
        set(deploy.glob("*.service"))
        | set(deploy.glob("*.env.example"))
        | set(deploy.glob("cloud-init*.yaml"))
        | set(deploy.glob("*.md"))
        | set(terraform.rglob("*.tftpl"))
        | set(terraform.rglob("*.md"))
    )
    problems: list[str] = []
    counts = {d: 0 for d in DAEMONS}
    for f in files:
        text = f.read_text()
        rel = f.relative_to(repo)
        for lineno, daemon, flag in uses(f, text):
            counts[daemon] += 1
            if flag not in known[daemon]:
                problems.append(f"{rel}:{lineno}: {daemon} has no --{flag} (not in its --help)")

    # Units against their environment files and the cloud-init that installs them.
    units = sorted(set(DAEMONS) | {p.stem for p in deploy.glob("*.service")})
    credentials = credentials_written = 0
    for daemon in units:
        unit_path = deploy / f"{daemon}.service"
        if not unit_path.is_file():
            problems.append(f"deploy/{daemon}.service is missing")
            continue
        unit = unit_path.read_text()
        credentials += check_unit_paths(daemon, unit, problems)
        cred_files = [v.partition(":")[2] for v in unit_settings(unit).get("LoadCredential", [])]
        needed = exec_start_vars(unit)
        if daemon in CONFIG_OF_UNIT:
            needed |= config_vars((deploy / CONFIG_OF_UNIT[daemon]).read_text())
        example = deploy / f"{daemon}.env.example"
        if not example.is_file():
            problems.append(f"deploy/{daemon}.env.example is missing")
        else:
            have = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", example.read_text(), re.M))
            for name in sorted(needed - have):
                problems.append(f"{example.relative_to(repo)}: does not set {name}, which {daemon}.service needs")
        for f in files:
            if f.suffix not in (".yaml", ".tftpl"):
                continue
            text = f.read_text()
            if f"/etc/systemd/system/{daemon}.service" not in text:
                continue
            rel = f.relative_to(repo)
            for name in sorted(needed):
                if not re.search(rf"^\s*{name}=", text, re.M):
                    problems.append(f"{rel}: installs {daemon}.service but never sets {name}")
            # terraform's templates fetch their secrets at boot (terraform/tests/check_user_data.py).
            if f.suffix == ".yaml":
                modes = write_files_modes(text)
                for path in cred_files:
                    if path not in modes:
                        problems.append(f"{rel}: installs {daemon}.service but never writes {path}, a credential it loads")
                    elif modes[path] != "0600":
                        problems.append(f"{rel}: writes {path} with mode {modes[path]}, not 0600 (root-only)")
                    else:
                        credentials_written += 1
            body = embedded_file(text, f"/etc/systemd/system/{daemon}.service")
            if body is not None and "${indent(" not in body and body != unit.strip() + "\n":
                problems.append(f"{rel}: its copy of {daemon}.service differs from deploy/{daemon}.service")

    # deploy/'s other files, wherever a cloud-init file writes them whole.
    for f in files:
        if f.suffix not in (".yaml", ".tftpl"):
            continue
        text = f.read_text()
        for target, name in EMBEDDED_FILES.items():
            body = embedded_file(text, target)
            original = (deploy / name).read_text()
            if body is not None and "${indent(" not in body and body != original.strip() + "\n":
                problems.append(f"{f.relative_to(repo)}: its copy of {target} differs from deploy/{name}")

    for daemon, n in counts.items():
        if n == 0:
            problems.append(f"no flags for {daemon} found in any deployment file; is the scan broken?")

    for p in problems:
        print(f"check_flags: {p}")
    if problems:
        print(f"check_flags: FAILED: {len(problems)} problem(s)")
        return 1
    summary = ", ".join(f"{d} {n}" for d, n in counts.items())
    print(f"check_flags: ok: {len(files)} files; flags checked: {summary}; "
          f"{credentials} credentials loaded by the units, {credentials_written} written 0600 by deploy/'s cloud-init")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
