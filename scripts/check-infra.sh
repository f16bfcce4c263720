#!/usr/bin/env bash
# Checks the infrastructure code: terraform/ and deploy/.
#
#   1. terraform fmt -check        (only where a terraform binary exists; the
#      report then says "not run: terraform fmt")
#   1b. terraform/tests/check_fmt.py: terraform fmt's layout rules (indentation,
#      `=` alignment, whitespace), checked without terraform, always
#   2. every .tf parses with python-hcl2
#   3. checkov finds no failed check; every skip in the code gives a reason
#   4. terraform/tests/check_refs.py: variables, module arguments, outputs,
#      locals and template variables all line up
#   4b. terraform/tests/check_network.py: NATS (4222) is open on the control
#      plane from fjord-lb and the members only, its routes (6222) between the
#      members only, and no wider rule covers either port
#   4c. terraform/tests/check_user_data.py: every instance's cloud-init fits
#      EC2's 16 KiB limit (gzipped where the module gzips it) and fetches every
#      secret its units read; rendered again by terraform where it is installed
#   4d. terraform/tests/check_secrets.py: each SSM parameter is a SecureString
#      under the deployment's key, readable by its roles only (the Session
#      Manager policy counted), and the secrets key is 32 random bytes in hex
#   5. deploy/tests/check_flags.py: every flag passed to a daemon is in its
#      --help, every credential a unit reads is loaded and written 0600 by
#      deploy/'s cloud-init, the agent's --secrets-dir is its RuntimeDirectory
#      (only when FJORD_HELP_DIR names a directory holding
#      fjord-control-plane.txt, fjord-node-agent.txt and fjord-lb.txt)
#   6. systemd-analyze verify on every unit in deploy/ (no unknown or malformed
#      setting; only programs the units install may be missing here), and
#      systemd-analyze security --offline: the exposure of each unit stays at or
#      below its limit (only where systemd-analyze exists)
#   7. deploy/tests/check_nats.py: three real nats-server processes started the
#      way fjord-nats.service starts them form a JetStream cluster, refuse clients
#      without the token and servers without the route password, and keep an R3
#      stream through the loss of its leader; with FJORD_LB_BIN (a fjord-lb
#      binary), fjord-lb started from its unit creates Fjord's streams there
#      (needs nats-server)
#
# Runs every step even after a failure, prints what failed, and exits non-zero
# if anything did. Tools come from scripts/install-infra-tools.sh (run here
# when they are missing).
#
# Environment:
#   FJORD_TOOLS_DIR   where install-infra-tools.sh put the venvs
#                     (default: $HOME/.cache/fjord-tools)
#   FJORD_HELP_DIR    directory of --help outputs for the flags check, e.g.
#                     for d in fjord-control-plane fjord-node-agent fjord-lb; do
#                       target/release/$d --help > "$FJORD_HELP_DIR/$d.txt"; done
#   FJORD_LB_BIN      a fjord-lb binary for check_nats.py's last step
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
tools="${FJORD_TOOLS_DIR:-$HOME/.cache/fjord-tools}"
hcl2_py="$tools/hcl2/bin/python"
checkov_bin="$tools/checkov/bin/checkov"
nats_py="$tools/nats/bin/python"

failed=()
not_run=()
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*"; failed+=("$1"); }
skip() { printf 'not run: %s\n' "$*"; not_run+=("$1"); }

if [ ! -x "$hcl2_py" ] || [ ! -x "$checkov_bin" ] || [ ! -x "$nats_py" ]; then
    step "installing tools (scripts/install-infra-tools.sh)"
    if ! FJORD_TOOLS_DIR="$tools" scripts/install-infra-tools.sh; then
        echo "FAILED: could not install the tools; see above" >&2
        exit 1
    fi
fi

step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
    # A missing ~/.terraformrc only makes terraform warn; keep the output clean.
    if TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff terraform; then
        echo "terraform fmt: ok: every file formatted"
    else
        fail "terraform fmt (run: terraform fmt -recursive terraform)"
    fi
else
    skip "terraform fmt (terraform is not installed: check_fmt.py below checks its layout rules)"
fi

step "terraform/tests/check_fmt.py: terraform fmt's layout rules, without terraform"
python3 terraform/tests/check_fmt.py terraform || fail "check_fmt.py (run: terraform fmt -recursive terraform, or fix the lines named)"

step "python-hcl2: parse every .tf"
parse_out=$("$hcl2_py" - <<'PY' 2>&1
import pathlib, sys
import hcl2
bad = 0
files = sorted(pathlib.Path("terraform").rglob("*.tf"))
for f in files:
    if ".terraform" in f.parts:
        continue
    try:
        with f.open() as fh:
            hcl2.load(fh)
    except Exception as exc:
        bad += 1
        print(f"{f}: {exc}")
print(f"{len(files) - bad} of {len(files)} files parse")
sys.exit(1 if bad or not files else 0)
PY
)
parse_rc=$?
echo "$parse_out"
[ "$parse_rc" = 0 ] || fail "python-hcl2 parse"

step "checkov --framework terraform"
# --skip-download: no Prisma Cloud calls (guidelines, mappings); nothing
# about the checks themselves changes.
if "$checkov_bin" --directory terraform --framework terraform --quiet --compact --skip-download; then
    echo "ok: no failed checks"
else
    fail "checkov"
fi
unexplained=$(grep -rnE --include='*.tf' 'checkov:skip=' terraform | grep -vE 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:[[:space:]]*[^[:space:]].{4,}' || true)
if [ -n "$unexplained" ]; then
    echo "$unexplained"
    fail "checkov skips without a written reason (#checkov:skip=CKV_...:reason)"
else
    echo "ok: every skip has a reason: $(grep -rhoE --include='*.tf' 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+' terraform | sed 's/checkov:skip=//' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
fi

step "terraform/tests/check_refs.py"
"$hcl2_py" terraform/tests/check_refs.py terraform || fail "check_refs.py"

step "terraform/tests/check_network.py: who may reach NATS"
"$hcl2_py" terraform/tests/check_network.py terraform || fail "check_network.py"

step "terraform/tests/check_user_data.py: user data within 16 KiB"
python3 terraform/tests/check_user_data.py terraform || fail "check_user_data.py"

step "terraform/tests/check_secrets.py: who may read each SSM parameter"
"$hcl2_py" terraform/tests/check_secrets.py terraform || fail "check_secrets.py"

step "deploy/tests/check_flags.py"
if [ -n "${FJORD_HELP_DIR:-}" ]; then
    python3 deploy/tests/check_flags.py --help-dir "$FJORD_HELP_DIR" || fail "check_flags.py"
else
    skip "check_flags.py (set FJORD_HELP_DIR to a directory holding fjord-control-plane.txt," \
        "fjord-node-agent.txt and fjord-lb.txt, each daemon's --help output)"
fi

step "systemd-analyze verify and security --offline: deploy/*.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # Exposure limits (0 = fully locked down, 10 = nothing), each unit's score under
    # systemd 252 (Debian 12), so dropping a hardening setting fails here; lower a
    # limit when a unit gains one. The node agent runs as root and drives Docker
    # (its unit says why it keeps less).
    declare -A max_exposure=([fjord-control-plane]=1.7 [fjord-lb]=1.9 [fjord-nats]=1.7 [fjord-node-agent]=7.2)
    units_ok=0
    units=(deploy/*.service)
    for unit in "${units[@]}"; do
        name=$(basename "$unit" .service)
        # The programs a unit runs are installed by the deploy files, so they may be
        # missing here; any other message is a fault in the unit.
        problems=$(systemd-analyze --man=no verify "./$unit" 2>&1 |
            grep -vE "^$name\.service: Command /usr/local/s?bin/[A-Za-z0-9_.-]+ is not executable: No such file or directory$" || true)
        limit=${max_exposure[$name]:-1.7}
        if [ -n "$problems" ]; then
            echo "$problems"
            fail "systemd-analyze verify $unit"
        elif ! exposure=$(systemd-analyze security --offline=yes --no-pager --threshold="${limit/./}" "./$unit" 2>&1 | tail -1); then
            echo "$exposure"
            fail "systemd-analyze security $unit (exposure above $limit)"
        else
            echo "$unit: ok: ${exposure#→ }"
            units_ok=$((units_ok + 1))
        fi
    done
    echo "systemd-analyze: $units_ok of ${#units[@]} units pass"
else
    skip "systemd-analyze (not installed)"
fi

step "deploy/tests/check_nats.py: a real three-server JetStream cluster, run as fjord-nats.service runs it"
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; then
    nats_args=()
    if [ -n "${FJORD_LB_BIN:-}" ]; then
        nats_args+=(--lb-bin "$FJORD_LB_BIN")
    else
        skip "check_nats.py's fjord-lb step (set FJORD_LB_BIN to a fjord-lb binary)"
    fi
    "$nats_py" deploy/tests/check_nats.py "${nats_args[@]}" || fail "check_nats.py"
else
    skip "check_nats.py (nats-server is not installed: apt-get install nats-server)"
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-infra: FAILED: ${failed[*]}"
    exit 1
fi
if [ "${#not_run[@]}" -gt 0 ]; then
    joined=$(printf '%s; ' "${not_run[@]}")
    echo "check-infra: every check that ran passed; not run: ${joined%; }"
else
    echo "check-infra: all checks ran and passed"
fi
