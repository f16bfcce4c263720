#!/usr/bin/env python3
"""Checks who may read each secret the deployment keeps in SSM Parameter Store.

  * every aws_ssm_parameter of the root module is a SecureString under the deployment's
    KMS key (aws_kms_key.fjord), and is one this check knows the readers of;
  * the roles of modules/iam may read exactly the parameters listed in READERS below:
    the admin token, the NATS route password and the secrets key the control plane
    only, the NATS token the control plane and fjord-lb, the join token all three. The
    role policies' Allow and Deny statements are read, and so is the Session Manager
    policy (AmazonSSMManagedInstanceCore, attached when enable_session_manager is on),
    which allows ssm:GetParameter and ssm:GetParameters on every parameter: no role may
    read more than its list with it, and none less than its list without it;
  * every parameter a module's instances fetch at boot (an argument `*_parameter` of
    modules control_plane, node_group and front_door) is readable by that module's role;
  * the secrets key is random_id.secrets_key, 32 bytes, stored as .hex: the 64
    hexadecimal digits --secrets-key-file takes.

A statement, resource or attachment the check cannot evaluate is a failure, never a pass.

Usage: check_secrets.py [TERRAFORM_DIR]   (default: the directory above tests/)
Exit status 0 when every rule holds, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("check_secrets.py: python-hcl2 is not installed (run scripts/install-infra-tools.sh)")

ROLES = ("control-plane", "node", "lb")
# aws_ssm_parameter name -> the roles that may read it.
READERS = {
    "admin_token": {"control-plane"},
    "join_token": {"control-plane", "node", "lb"},
    "nats_token": {"control-plane", "lb"},
    "nats_route_password": {"control-plane"},
    "secrets_key": {"control-plane"},
}
# The module whose instances run with each role.
MODULE_ROLE = {"control_plane": "control-plane", "node_group": "node", "front_door": "lb"}
# Actions that return a parameter's value.
READ_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory")
# What AmazonSSMManagedInstanceCore allows of them, on "*".
SESSION_MANAGER_READS = ("ssm:GetParameter", "ssm:GetParameters")


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load_dir(path: Path) -> list[dict]:
    docs = []
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as fh:
            docs.append(hcl2.load(fh))
    return docs


def blocks(docs: list[dict], kind: str, rtype: str) -> dict[str, dict]:
    out = {}
    for doc in docs:
        for block in doc.get(kind, []):
            for t, named in block.items():
                if unquote(t) == rtype:
                    for name, body in named.items():
                        out[unquote(name)] = body
    return out


def action_matches(pattern: str, action: str) -> bool:
    regex = "^" + re.escape(pattern.lower()).replace(r"\*", ".*") + "$"
    return re.match(regex, action.lower()) is not None


def main(argv: list[str]) -> int:
    root = (Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    problems: list[str] = []
    root_docs = load_dir(root)
    iam_docs = load_dir(root / "modules/iam")

    params = blocks(root_docs, "resource", "aws_ssm_parameter")
    if not params:
        problems.append("no aws_ssm_parameter in the root module; is this the terraform directory?")
    for name, body in params.items():
        if unquote(body.get("type")) != "SecureString":
            problems.append(f"aws_ssm_parameter.{name}: type is {unquote(body.get('type'))!r}, not SecureString")
        if body.get("key_id") != "${aws_kms_key.fjord.arn}":
            problems.append(f"aws_ssm_parameter.{name}: not encrypted with aws_kms_key.fjord (key_id {body.get('key_id')!r})")
        if name not in READERS:
            problems.append(f"aws_ssm_parameter.{name}: a parameter this check does not know; add who may read it to READERS")
    for name in sorted(set(READERS) - set(params)):
        problems.append(f"aws_ssm_parameter.{name} is missing")

    # The secrets key: what --secrets-key-file takes.
    key = blocks(root_docs, "resource", "random_id").get("secrets_key")
    if key is None or key.get("byte_length") != 32:
        problems.append("random_id.secrets_key with byte_length = 32 is missing")
    if "secrets_key" in params and params["secrets_key"].get("value") != "${random_id.secrets_key.hex}":
        problems.append("aws_ssm_parameter.secrets_key: value is not random_id.secrets_key.hex (64 hexadecimal digits)")

    # Module arguments: which iam variable is which parameter, which module fetches which.
    modules = {}
    for doc in root_docs:
        for block in doc.get("module", []):
            for name, body in block.items():
                modules[unquote(name)] = body
    if "iam" not in modules:
        problems.append('no module "iam" in the root module')
    arn_var = {}
    for arg, value in modules.get("iam", {}).items():
        m = re.fullmatch(r"\$\{aws_ssm_parameter\.([A-Za-z0-9_]+)\.arn\}", str(value))
        if m:
            arn_var[arg] = m.group(1)

    # Role policies: which document each role gets.
    statements: dict[str, list[dict]] = {r: [] for r in ROLES}
    documents = blocks(iam_docs, "data", "aws_iam_policy_document")
    for name, body in blocks(iam_docs, "resource", "aws_iam_role_policy").items():
        rm = re.fullmatch(r'\$\{aws_iam_role\.this\["([a-z-]+)"\]\.(id|name)\}', str(body.get("role")))
        dm = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.([A-Za-z0-9_]+)\.json\}", str(body.get("policy")))
        if not rm or not dm or rm.group(1) not in ROLES or dm.group(1) not in documents:
            problems.append(f"aws_iam_role_policy.{name}: cannot tell its role and policy document")
            continue
        statements[rm.group(1)].extend(documents[dm.group(1)].get("statement", []))
    for name, body in blocks(iam_docs, "resource", "aws_iam_role_policy_attachment").items():
        if "AmazonSSMManagedInstanceCore" in str(body.get("policy_arn")) and "local.roles" in str(body.get("for_each")):
            for role in ROLES:  # on by default (enable_session_manager), off at will
                statements[role].append({"effect": "Allow", "actions": list(SESSION_MANAGER_READS), "resources": ["*"],
                                         "session_manager": True})
        else:
            problems.append(f"aws_iam_role_policy_attachment.{name}: a managed policy this check cannot read")
    for name in blocks(iam_docs, "resource", "aws_iam_policy"):
        problems.append(f"aws_iam_policy.{name}: not checked; use aws_iam_role_policy")

    # Per role, per action, the parameters allowed and denied; with the Session Manager
    # policy (readers) and without it (sure_readers).
    readers: dict[str, set[str]] = {p: set() for p in params}
    sure_readers: dict[str, set[str]] = {p: set() for p in params}
    for role, with_sm in [(r, w) for r in ROLES for w in (True, False)]:
        allowed = {a: set() for a in READ_ACTIONS}
        denied = {a: set() for a in READ_ACTIONS}
        for st in statements[role]:
            if st.get("session_manager") and not with_sm:
                continue
            effect = unquote(st.get("effect", "Allow"))
            actions = [unquote(a) for a in st.get("actions", [])]
            if "not_actions" in st or "not_resources" in st:
                problems.append(f"role {role}: a statement with not_actions or not_resources is not checked")
                continue
            hit = [a for a in READ_ACTIONS if any(action_matches(p, a) for p in actions)]
            if not hit:
                continue
            targets: set[str] = set()
            for res in st.get("resources", []):
                res = unquote(res)
                m = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", str(res))
                if res == "*":
                    targets |= set(params)
                elif m and m.group(1) in arn_var:
                    targets.add(arn_var[m.group(1)])
                else:
                    problems.append(f"role {role}: cannot tell which parameter {res!r} is")
            for a in hit:
                (denied if effect == "Deny" else allowed)[a].update(targets)
        for a in READ_ACTIONS:
            for p in allowed[a] - denied[a]:
                (readers if with_sm else sure_readers)[p].add(role)

    for p in sorted(params):
        want = READERS.get(p)
        if want is None:
            continue
        for role in sorted(readers[p] - want):
            problems.append(f"the {role} role may read aws_ssm_parameter.{p}, which only {', '.join(sorted(want))} may")
        for role in sorted(want - sure_readers[p]):
            problems.append(f"the {role} role may not read aws_ssm_parameter.{p} (without the Session Manager "
                            "policy), which it needs")

    # What each module's instances fetch at boot must be readable by their role.
    fetched = 0
    for module, role in MODULE_ROLE.items():
        if module not in modules:
            problems.append(f'no module "{module}" in the root module')
            continue
        for arg, value in modules[module].items():
            m = re.fullmatch(r"\$\{aws_ssm_parameter\.([A-Za-z0-9_]+)\.name\}", str(value))
            if not m:
                continue
            fetched += 1
            if role not in sure_readers.get(m.group(1), set()):
                problems.append(f"module.{module}.{arg}: its instances fetch aws_ssm_parameter.{m.group(1)}, "
                                f"which the {role} role may not read")

    for p in problems:
        print(f"check_secrets: {p}")
    if problems:
        print(f"check_secrets: FAILED: {len(problems)} problem(s)")
        return 1
    summary = "; ".join(f"{p} {', '.join(r for r in ROLES if r in readers[p])}" for p in sorted(params))
    print(f"check_secrets: ok: {len(params)} SecureString parameters under the deployment's key, read by "
          f"(Session Manager policy counted): {summary}; {fetched} fetched at boot, each readable by its role")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
