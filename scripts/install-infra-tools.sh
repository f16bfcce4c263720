#!/usr/bin/env bash
# Installs the tools that scripts/check-infra.sh uses to check terraform/ and deploy/.
#
#   * a Python venv with python-hcl2 (parses the .tf files for the reference checker)
#   * a Python venv with checkov (static security analysis of the terraform)
#   * a Python venv with nats-py: the NATS client deploy/tests/check_nats.py drives a real
#     three-server JetStream cluster with
#   * a Python venv with moto[server]: the local AWS mock that fjord-aws's tests
#     (aws/tests/moto.rs) start as $FJORD_TOOLS_DIR/moto/bin/moto_server
#   * a Python venv with grpcio, grpcio-reflection and grpcio-tools: the gRPC clients that
#     tests/tests/grpc_api.rs runs as $FJORD_TOOLS_DIR/grpc/bin/python: one that learns the API
#     through server reflection, and examples/clients/python with stubs generated from the .proto
#   * terraform itself, only when it is missing and Debian packages it
#
# The Python tools pin incompatible versions of the same dependencies, so each
# gets its own venv. Running the script again does nothing that is already done.
#
# Environment:
#   FJORD_TOOLS_DIR   where the venvs go (default: $HOME/.cache/fjord-tools)
#   PYTHON            interpreter used to create the venvs (default: python3)
#   HCL2_VERSION      python-hcl2 requirement (default: any)
#   CHECKOV_VERSION   checkov requirement (default: any)
#   MOTO_VERSION      moto requirement (default: any)
#   NATS_PY_VERSION   nats-py requirement (default: any)
set -euo pipefail

TOOLS_DIR="${FJORD_TOOLS_DIR:-$HOME/.cache/fjord-tools}"
PYTHON="${PYTHON:-python3}"
HCL2_SPEC="python-hcl2${HCL2_VERSION:+==$HCL2_VERSION}"
CHECKOV_SPEC="checkov${CHECKOV_VERSION:+==$CHECKOV_VERSION}"
MOTO_SPEC="moto[server]${MOTO_VERSION:+==$MOTO_VERSION}"
NATS_PY_SPEC="nats-py${NATS_PY_VERSION:+==$NATS_PY_VERSION}"

log() { printf '[install-infra-tools] %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "error: $PYTHON not found; install python3 (with the venv module) first" >&2
    exit 1
fi

mkdir -p "$TOOLS_DIR"

# make_venv NAME IMPORT_CHECK PIP_SPEC...
#   Creates $TOOLS_DIR/NAME unless it exists and IMPORT_CHECK already succeeds in it.
make_venv() {
    local name="$1" check="$2"
    shift 2
    local spec="$*"
    local dir="$TOOLS_DIR/$name"
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
        log "$name: already installed in $dir"
        return 0
    fi
    log "$name: creating venv in $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
    "$dir/bin/python" -c "$check"
    log "$name: installed $spec"
}

make_venv hcl2 'import hcl2' "$HCL2_SPEC"
make_venv checkov 'import checkov' "$CHECKOV_SPEC"
make_venv nats 'import nats.js' "$NATS_PY_SPEC"
# moto's server extra brings flask; the check imports it so a venv without the extra is redone.
make_venv moto 'import moto.server, flask' "$MOTO_SPEC"
make_venv grpc 'import grpc, grpc_reflection.v1alpha.reflection_pb2, grpc_tools.protoc, google.rpc.error_details_pb2' grpcio grpcio-reflection grpcio-tools grpcio-status
log "moto: server at $TOOLS_DIR/moto/bin/moto_server (fjord-aws tests read FJORD_MOTO_SERVER to override)"

if command -v terraform >/dev/null 2>&1; then
    log "terraform: found $(command -v terraform)"
else
    apt_ok=0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        # apt-cache only knows packages after an update; do it once per run, and
        # only here, where terraform is actually missing.
        apt-get update -qq >/dev/null 2>&1 || true
        if apt-cache show terraform >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq terraform && apt_ok=1
        fi
    fi
    if [ "$apt_ok" = 1 ]; then
        log "terraform: installed from Debian"
    else
        log "terraform: not installed and no Debian package available;" \
            "check-infra.sh will skip 'terraform fmt -check'"
    fi
fi

log "done; tools in $TOOLS_DIR"
