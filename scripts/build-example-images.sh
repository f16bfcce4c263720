#!/usr/bin/env bash
# Builds the example functions as static binaries and packs each into a
# `FROM scratch` image, so the docker runtime can run them with no registry:
#
#   fjord-example/echo:$TAG   fjord-example/sleep:$TAG   fjord-example/env:$TAG   fjord-example/jobs:$TAG
#
# Usage: scripts/build-example-images.sh [TAG]      (TAG defaults to "test")
#
# The binaries are linked statically for the host's glibc target (crt-static),
# so the images need nothing else: no libc, no certificates (they do no DNS or
# TLS). Cargo builds them in their own target directory, because the static
# RUSTFLAGS would otherwise rebuild the whole workspace.
#
# Environment:
#   FJORD_STATIC_TARGET_DIR  cargo target directory for the static build
#                            (default: <repo>/target/static-examples)
#   FJORD_STATIC_TARGET      the target triple (default: x86_64-unknown-linux-gnu)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tag="${1:-test}"
target_dir="${FJORD_STATIC_TARGET_DIR:-$repo/target/static-examples}"
triple="${FJORD_STATIC_TARGET:-x86_64-unknown-linux-gnu}"

cd "$repo"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
    cargo build --quiet --release -p fjord-examples --target "$triple"

# Without the buildx plugin, ask for the classic builder rather than fail.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

context=$(mktemp -d)
trap 'rm -rf "$context" "$context.log"' EXIT
for example in echo sleep env jobs; do
    binary="$target_dir/$triple/release/fjord-$example"
    if ! ldd "$binary" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
        echo "$binary is dynamically linked; a FROM scratch image cannot run it" >&2
        exit 1
    fi
    rm -rf "${context:?}"/*
    cp "$binary" "$context/function"
    cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY function /function
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/function"]
DOCKERFILE
    if ! docker build --quiet --tag "fjord-example/$example:$tag" "$context" >"$context.log" 2>&1; then
        cat "$context.log" >&2
        exit 1
    fi
    echo "built fjord-example/$example:$tag"
done
