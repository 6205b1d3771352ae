#!/bin/sh
# Package both charts into a Helm chart repository folder (default deploy/helm/repo) with its
# index.yaml, for `helm repo add solray <URL>`: serve the folder over HTTP (GitHub Pages, any
# static server, or `python -m http.server` for a try) and pass its URL as the second argument.
#   deploy/helm/build-repo.sh [OUT_DIR] [URL]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/repo}
URL=${2:-}
HELM=${HELM:-helm}
mkdir -p "$OUT"
"$HELM" package "$HERE/solray-operator" "$HERE/solray-cluster" --destination "$OUT" >/dev/null
if [ -n "$URL" ]; then
    "$HELM" repo index "$OUT" --url "$URL"
else
    "$HELM" repo index "$OUT"
fi
echo "chart repository in $OUT: $(ls "$OUT" | tr '\n' ' ')"
