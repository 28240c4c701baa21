#!/usr/bin/env bash
# Validates the Kubernetes manifests (`make k8s-validate`, run by CI): every resource against the
# Kubernetes API schemas with unknown fields rejected (kubernetes-validate, from PyPI, installed
# into a git-ignored virtualenv), and the kustomization listing exactly the files beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE="$ROOT/deployments/k8s/base"
VENV="$ROOT/.cache/tools/k8s-venv"
VERSION=1.31.0 # kubernetes-validate's version is the newest Kubernetes schema it carries

if [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null || true)" != "$VERSION" ]; then
    echo "==> installing kubernetes-validate $VERSION into ${VENV#"$ROOT"/}"
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        as_root=$([ "$(id -u)" -eq 0 ] || echo sudo)
        $as_root apt-get update -qq
        $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION"
fi

# The kustomization's resources are the manifests in the folder, no more and no fewer.
listed=$(sed -n '/^resources:/,/^[a-z]/s/^  - //p' "$BASE/kustomization.yaml" | sort)
present=$(cd "$BASE" && ls -1 *.yaml | grep -vx kustomization.yaml | sort)
if [ "$listed" != "$present" ]; then
    echo "error: deployments/k8s/base/kustomization.yaml lists other files than the folder holds" >&2
    diff <(echo "$listed") <(echo "$present") >&2 || true
    exit 1
fi

# shellcheck disable=SC2086 # the list is file names without spaces
(cd "$BASE" && "$VENV/bin/kubernetes-validate" --strict --quiet -k "$VERSION" $present)
echo "deployments/k8s: $(echo "$present" | wc -l) manifests valid against Kubernetes $VERSION"
