#!/usr/bin/env python3
"""Checks that every instance's user data fits EC2's 16 KiB limit.

EC2 refuses user data over 16384 bytes (before base64), and the cloud-init templates
embed whole files from deploy/ (units, nats.conf, scripts), so they grow with them. This
script renders each module's cloud-init.yaml.tftpl with the files it embeds and with the
longest values its variables allow, compresses it when the module sends it through
base64gzip() (cloud-init unpacks gzip), and compares the size with the limit.

It also checks that the user data fetches every secret the units it embeds read from
/etc/fjord/ (each LoadCredential= source, and each such path an ExecStart= passes), with
fetch_secret from the SSM parameter named after the file (lb-token is the join token), so a
new credential in a unit cannot be left without its fetch at boot.

Rendering covers what the templates use: ${name}, ${indent(N, name)} and the $${ escape;
anything else is reported, never guessed. Where terraform is installed, terraform itself
renders the same templates with the same values, and its text and compressed size must
agree with this script's.

Usage: check_user_data.py [TERRAFORM_DIR]   (default: the directory above tests/)
Exit status 0 when all fit, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIMIT = 16384
EXPR_RE = re.compile(r"\$\$\{|%%\{|[$%]\{(.*?)\}", re.S)


def render(template: str, values: dict[str, object], where: str, problems: list[str]) -> str:
    def one(m: re.Match) -> str:
        if m.group(0) in ("$${", "%%{"):
            return m.group(0)[1:]
        if m.group(0).startswith("%"):
            problems.append(f"{where}: template directive %{{{m.group(1)}}} is not supported by this check")
            return ""
        expr = m.group(1).strip()
        im = re.fullmatch(r"indent\(\s*(\d+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", expr)
        name = im.group(2) if im else expr
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.append(f"{where}: template expression ${{{expr}}} is not supported by this check")
            return ""
        if name not in values:
            problems.append(f"{where}: no sample value for {name!r}; add one to this check")
            return ""
        text = str(values[name])
        return text.replace("\n", "\n" + " " * int(im.group(1))) if im else text

    return EXPR_RE.sub(one, template)


def samples(root: Path, problems: list[str]) -> dict[str, dict[str, object]]:
    """Per module, the values its templatefile() call passes, at their longest."""
    repo = root.parent
    deploy = repo / "deploy"
    name = "fjord-" + "n" * 16  # the root module's var.name is at most 22 characters
    ip = "100.100.100.100"
    url = "https://" + "d" * 180 + "/fjord-0.1.0-x86_64-linux.tar.gz"
    install = render((root / "templates/install-release.sh.tftpl").read_text(),
                     {"release_url": url, "release_sha256": "f" * 64}, "install-release.sh.tftpl", problems)
    helpers = (root / "templates/imds.sh").read_text()
    cp_urls = [f"http://{ip}:7400"] * 3
    nats_urls = ",".join([f"nats://{ip}:4222"] * 3)
    return {
        "control_plane": {
            "member_id": 3,
            "listen": "0.0.0.0:7400",
            "advertise": f"{ip}:7400",
            "port": 7400,
            "initial_members": ",".join(f"{i}={ip}:7400" for i in (1, 2, 3)),
            "volume_id": "vol-0123456789abcdef0",
            "nats_volume_id": "vol-0123456789abcdef1",
            "admin_token_parameter": f"/{name}/admin-token",
            "join_token_parameter": f"/{name}/join-token",
            "nats_token_parameter": f"/{name}/nats-token",
            "nats_route_password_parameter": f"/{name}/nats-route-password",
            "secrets_key_parameter": f"/{name}/secrets-key",
            "nats_urls": nats_urls,
            "nats_replicas": 3,
            "nats_listen": "0.0.0.0:4222",
            "nats_cluster_listen": "0.0.0.0:6222",
            "nats_routes": ",".join([f"{ip}:6222"] * 3),
            "nats_max_file_store": "16380GB",
            "systemd_unit": (deploy / "fjord-control-plane.service").read_text(),
            "nats_unit": (deploy / "fjord-nats.service").read_text(),
            "nats_config": (deploy / "nats.conf").read_text(),
            "nats_config_script": (deploy / "fjord-nats-config").read_text(),
            "nats_install_script": (deploy / "fjord-nats-install").read_text(),
            "install_script": install,
            "helpers": helpers,
        },
        "front_door": {
            "listen": "0.0.0.0:65535",
            "control_plane": ",".join(cp_urls),
            "body_limit_bytes": 2**31,
            "token_parameter": f"/{name}/join-token",
            "nats_urls": nats_urls,
            "nats_replicas": 3,
            "nats_token_parameter": f"/{name}/nats-token",
            "systemd_unit": (deploy / "fjord-lb.service").read_text(),
            "install_script": install,
            "helpers": helpers,
        },
        "node_group": {
            "control_plane": ",".join(cp_urls),
            "port": 65535,
            "runtime": "process",
            "join_token_parameter": f"/{name}/join-token",
            "reserved_memory_mib": 1048576,
            "reserved_cpu_millis": 1048576,
            "nofile_limit": 1048576,
            # modules/node_group's default sysctls, one per line, with room for overrides.
            "sysctl_conf": "\n".join(f"net.ipv4.some_tunable_{i:02d} = 2097152" for i in range(24)),
            "systemd_unit": (deploy / "fjord-node-agent.service").read_text(),
            "install_script": install,
            "helpers": helpers,
        },
    }


# The SSM parameter each /etc/fjord/ file comes from, where its name differs from the file's.
PARAMETER_OF_FILE = {"lb-token": "join-token"}
FETCH_RE = re.compile(r"^\s*fetch_secret\s+'([^']*)'\s+(/etc/fjord/[A-Za-z0-9_.-]+)\s*$", re.M)


def unit_secret_files(unit: str) -> set[str]:
    """/etc/fjord/ files a unit reads secrets from: its LoadCredential= sources, and the
    /etc/fjord/ paths its ExecStart= passes (other than environment and configuration files)."""
    joined = re.sub(r"\\\n", " ", unit)
    files = set(re.findall(r"^LoadCredential=[^:\s]+:(/etc/fjord/\S+)\s*$", joined, re.M))
    for line in re.findall(r"^ExecStart=(.*)$", joined, re.M):
        files.update(p for p in re.findall(r"(?<=\s)(/etc/fjord/\S+)", line) if not p.endswith((".env", ".conf")))
    return files


def check_fetches(module: str, text: str, values: dict[str, object], problems: list[str]) -> int:
    """Every secret file of the embedded units is fetched, from the parameter named after it."""
    fetched = {path: param for param, path in FETCH_RE.findall(text)}
    needed: set[str] = set()
    for key, value in values.items():
        if key.endswith("unit") and isinstance(value, str):
            needed |= unit_secret_files(value)
    for path in sorted(needed):
        name = path.rsplit("/", 1)[-1]
        if path not in fetched:
            problems.append(f"modules/{module}: its units read {path}, but the user data never fetches it (fetch_secret)")
            continue
        want = PARAMETER_OF_FILE.get(name, name)
        if fetched[path].rsplit("/", 1)[-1] != want:
            problems.append(f"modules/{module}: fetches {path} from {fetched[path]}, not from the /<name>/{want} parameter")
    for path in sorted(set(fetched) - needed):
        problems.append(f"modules/{module}: fetches {path}, which none of its units reads")
    return len(needed)


def with_terraform(templates: dict[str, Path], values: dict[str, dict]) -> dict[str, dict] | None:
    """terraform's own rendering: {module: {sha256, gzip_b64_len}}, or None without terraform."""
    terraform = shutil.which("terraform")
    if not terraform:
        return None
    with tempfile.TemporaryDirectory() as d:
        Path(d, "values.json").write_text(json.dumps(values))
        lines = ["locals {", '  values = jsondecode(file("${path.module}/values.json"))']
        for module, path in templates.items():
            lines.append(f'  {module} = templatefile("{path}", local.values.{module})')
        lines.append("}")
        Path(d, "main.tf").write_text("\n".join(lines) + "\n")
        expr = "jsonencode({" + ", ".join(
            f"{m} = {{sha = sha256(local.{m}), gz = length(base64gzip(local.{m}))}}" for m in templates) + "})"
        out = subprocess.run([terraform, "console"], input=expr, capture_output=True, text=True, cwd=d,
                             env={"TF_CLI_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin", "HOME": d})
        if out.returncode != 0:
            raise RuntimeError(f"terraform console failed: {out.stderr.strip()}")
        return json.loads(json.loads(out.stdout.strip()))


def main(argv: list[str]) -> int:
    root = (Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    problems: list[str] = []
    values = samples(root, problems)
    templates = {m: root / "modules" / m / "cloud-init.yaml.tftpl" for m in values}
    sizes = {}
    rendered = {}
    secrets: dict[str, int] = {}
    for module, path in templates.items():
        main_tf = (root / "modules" / module / "main.tf").read_text()
        gzipped = 'base64gzip(templatefile("${path.module}/cloud-init.yaml.tftpl"' in main_tf
        text = render(path.read_text(), values[module], f"modules/{module}/cloud-init.yaml.tftpl", problems)
        rendered[module] = text
        secrets[module] = check_fetches(module, text, values[module], problems)
        raw = len(text.encode())
        size = len(gzip.compress(text.encode(), compresslevel=6, mtime=0)) if gzipped else raw
        sizes[module] = (size, raw, gzipped)
        if size > LIMIT:
            how = f"{size} bytes gzipped" if gzipped else f"{raw} bytes (sent uncompressed: base64gzip() would shrink it)"
            problems.append(f"modules/{module}: user data is {how}, over EC2's {LIMIT}-byte limit")

    cross = ""
    if not problems:
        try:
            tf = with_terraform(templates, values)
        except RuntimeError as exc:
            problems.append(str(exc))
            tf = None
        if tf is not None:
            for module, text in rendered.items():
                if tf[module]["sha"] != hashlib.sha256(text.encode()).hexdigest():
                    problems.append(f"modules/{module}: terraform renders the template differently from this check")
                size, _, gzipped = sizes[module]
                # base64 length * 3/4 is at least the compressed size (up to 2 bytes of padding).
                if gzipped and tf[module]["gz"] * 3 // 4 > LIMIT:
                    problems.append(f"modules/{module}: terraform's base64gzip() gives {tf[module]['gz'] * 3 // 4} bytes, over {LIMIT}")
            cross = "; terraform renders the same text"

    for p in problems:
        print(f"check_user_data: {p}")
    if problems:
        print(f"check_user_data: FAILED: {len(problems)} problem(s)")
        return 1
    parts = [f"{m} {s} bytes{' gzipped (' + str(r) + ' raw)' if g else ''}" for m, (s, r, g) in sizes.items()]
    fetches = ", ".join(f"{m} {n}" for m, n in secrets.items())
    print(f"check_user_data: ok: limit {LIMIT}: {', '.join(parts)}{cross}; secrets the units read, fetched at boot: {fetches}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
