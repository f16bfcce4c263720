#!/usr/bin/env python3
"""Checks who may reach the NATS JetStream servers on the control-plane members.

The security groups must say what deploy/ and the READMEs say:

  * the NATS client port (modules/network var.nats_port) is open, on the control-plane
    group only, from the fjord-lb and control-plane groups only: never from the agent
    nodes, the NLB or an address range;
  * the NATS route port (var.nats_cluster_port) is open, on the control-plane group only,
    from the control-plane group only;
  * egress lets fjord-lb reach the client port, and the members both ports;
  * modules/network and modules/control_plane agree on both port numbers (the groups
    open what the servers listen on).

Every ingress rule in every module is read, so a wide rule elsewhere (all ports, all
protocols, a port range) that also covers a NATS port counts against it. A rule the check
cannot evaluate (count, for_each, a group it cannot name) is a failure, never a pass.

Usage: check_network.py [TERRAFORM_DIR]   (default: the directory above tests/)
Exit status 0 when every rule holds, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("check_network.py: python-hcl2 is not installed (run scripts/install-infra-tools.sh)")

GROUP_RE = re.compile(r"^\$\{aws_security_group\.([A-Za-z0-9_-]+)\.id\}$")
VPC_CIDR = "${aws_vpc.this.cidr_block}"


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(path: Path) -> dict:
    with path.open() as fh:
        return hcl2.load(fh)


def defaults(module: Path) -> dict[str, object]:
    out = {}
    for tf in sorted(module.glob("*.tf")):
        for block in load(tf).get("variable", []):
            for name, body in block.items():
                if "default" in body:
                    out[unquote(name)] = body["default"]
    return out


def number(expr, variables: dict, where: str, problems: list[str]):
    expr = unquote(expr)
    if isinstance(expr, int):
        return expr
    m = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", str(expr))
    if m and isinstance(variables.get(m.group(1)), int):
        return variables[m.group(1)]
    problems.append(f"{where}: cannot evaluate port {expr!r}")
    return None


def rules(root: Path, problems: list[str]) -> list[dict]:
    """Every security-group rule, as {direction, group, protocol, from, to, peer, where}."""
    out = []
    network = root / "modules/network"
    network_vars = defaults(network)
    for tf in sorted(root.rglob("*.tf")):
        if ".terraform" in tf.parts:
            continue
        doc = load(tf)
        for block in doc.get("resource", []):
            for rtype, resources in block.items():
                rtype = unquote(rtype)
                for rname, body in resources.items():
                    where = f"{tf.relative_to(root)}: {rtype}.{unquote(rname)}"
                    if rtype == "aws_security_group" and ("ingress" in body or "egress" in body):
                        problems.append(f"{where}: inline rules are not checked; use aws_vpc_security_group_*_rule")
                    if rtype == "aws_security_group_rule":
                        problems.append(f"{where}: not checked; use aws_vpc_security_group_ingress_rule or _egress_rule")
                    if rtype not in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"):
                        continue
                    direction = "ingress" if rtype.endswith("ingress_rule") else "egress"
                    if tf.parent != network:
                        problems.append(f"{where}: a rule outside modules/network, which this check cannot place")
                        continue
                    group_expr = unquote(body.get("security_group_id", ""))
                    groups = []
                    m = GROUP_RE.match(str(group_expr))
                    if m:
                        groups = [m.group(1)]
                    elif str(group_expr) == "${each.value}" and "for_each" in body and "instance_groups" in str(body["for_each"]):
                        groups = ["lb", "nodes", "control_plane"]  # local.instance_groups
                    else:
                        problems.append(f"{where}: cannot tell which group {group_expr!r} is")
                        continue
                    if "count" in body:
                        problems.append(f"{where}: count on a rule is not checked")
                        continue
                    protocol = str(unquote(body.get("ip_protocol", "")))
                    lo = hi = None
                    if protocol != "-1":
                        lo = number(body.get("from_port"), network_vars, where, problems)
                        hi = number(body.get("to_port"), network_vars, where, problems)
                        if lo is None or hi is None:
                            continue
                    peer_expr = body.get("referenced_security_group_id")
                    if peer_expr is not None:
                        pm = GROUP_RE.match(str(unquote(peer_expr)))
                        if not pm:
                            problems.append(f"{where}: cannot tell which group {peer_expr!r} is")
                            continue
                        peer = ("group", pm.group(1))
                    else:
                        cidr = next((body[k] for k in ("cidr_ipv4", "cidr_ipv6", "prefix_list_id") if k in body), None)
                        peer = ("cidr", str(unquote(cidr)))
                    for g in groups:
                        out.append({"direction": direction, "group": g, "protocol": protocol, "from": lo, "to": hi,
                                    "peer": peer, "where": where})
    return out


def covers(rule: dict, port: int) -> bool:
    if rule["protocol"] == "-1":
        return True
    return rule["protocol"] in ("tcp", "6") and rule["from"] <= port <= rule["to"]


def main(argv: list[str]) -> int:
    root = (Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    problems: list[str] = []
    network_vars = defaults(root / "modules/network")
    cp_vars = defaults(root / "modules/control_plane")
    ports = {}
    for var in ("nats_port", "nats_cluster_port"):
        if not isinstance(network_vars.get(var), int):
            problems.append(f"modules/network declares no var.{var} with a default")
            continue
        ports[var] = network_vars[var]
        if cp_vars.get(var) != network_vars[var]:
            problems.append(f"var.{var} is {network_vars[var]} in modules/network but {cp_vars.get(var)} in "
                            "modules/control_plane: the groups would open another port than the servers listen on")
    all_rules = rules(root, problems)
    if not any(r["direction"] == "ingress" for r in all_rules):
        problems.append("found no ingress rules at all; is this the terraform directory?")

    allowed_from = {"nats_port": {"lb", "control_plane"}, "nats_cluster_port": {"control_plane"}}
    summary = []
    for var, port in ports.items():
        touching = [r for r in all_rules if r["direction"] == "ingress" and covers(r, port)]
        sources = set()
        for r in touching:
            if r["group"] != "control_plane":
                problems.append(f"{r['where']}: opens {port} ({var}) on the {r['group']} group; NATS runs on the control plane only")
            if r["peer"][0] != "group":
                problems.append(f"{r['where']}: opens {port} ({var}) to {r['peer'][1]}; only security groups may reach it")
                continue
            if r["peer"][1] not in allowed_from[var]:
                problems.append(f"{r['where']}: opens {port} ({var}) to the {r['peer'][1]} group; "
                                f"only {', '.join(sorted(allowed_from[var]))} may reach it")
            sources.add(r["peer"][1])
        for needed in sorted(allowed_from[var] - sources):
            problems.append(f"no rule opens {port} ({var}) on the control_plane group to the {needed} group")
        # The clients' way out.
        for client in sorted(allowed_from[var]):
            out = [r for r in all_rules if r["direction"] == "egress" and r["group"] == client and covers(r, port)
                   and r["peer"] in (("group", "control_plane"), ("cidr", VPC_CIDR), ("cidr", "0.0.0.0/0"))]
            if not out:
                problems.append(f"no egress rule lets the {client} group reach {port} ({var}) on the control plane")
        summary.append(f"{port} from {', '.join(sorted(sources)) or 'nobody'}")

    for p in problems:
        print(f"check_network: {p}")
    if problems:
        print(f"check_network: FAILED: {len(problems)} problem(s)")
        return 1
    ingress = sum(r["direction"] == "ingress" for r in all_rules)
    print(f"check_network: ok: {ingress} ingress rules read; NATS on the control-plane group only: "
          f"{'; '.join(summary)}; egress allows it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
