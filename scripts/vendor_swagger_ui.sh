#!/usr/bin/env bash
# Refresh (or check) the Swagger UI assets served at /api/v1/docs.
#
# The files come from the npm package swagger-ui-dist at the version pinned below (the
# API docs page must work offline and behind strict egress, so nothing loads from a
# CDN). Every file is checked against the sha256 list recorded next to the assets, so a
# refresh that brings different bytes fails until the list is updated on purpose.
#
#   scripts/vendor_swagger_ui.sh            fetch with `npm pack`, verify, install
#   scripts/vendor_swagger_ui.sh --check    verify the installed files only (no network)
#   scripts/vendor_swagger_ui.sh --record   fetch, install and rewrite the sha256 list
#                                           (after changing VERSION on purpose)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="5.35.0"
DEST="src/snoozeql/api/static/swagger"
SUMS="$DEST/SHA256SUMS"
FILES=(
  swagger-ui-bundle.js
  swagger-ui-bundle.js.LICENSE.txt
  swagger-ui.css
  favicon-32x32.png
  LICENSE
  NOTICE
)

mode="${1:-install}"
if [[ "$mode" == "--check" ]]; then
  (cd "$DEST" && sha256sum --quiet -c SHA256SUMS)
  grep -q "swagger-ui-dist@$VERSION" "$DEST/VERSION" || { echo "VERSION mismatch" >&2; exit 1; }
  echo "swagger-ui-dist@$VERSION assets match $SUMS"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tar -xzf "$work/swagger-ui-dist-$VERSION.tgz" -C "$work"
for f in "${FILES[@]}"; do
  cp "$work/package/$f" "$work/$f"
done
if [[ "$mode" == "--record" ]]; then
  (cd "$work" && sha256sum "${FILES[@]}") > "$SUMS"
else
  (cd "$work" && sha256sum --quiet -c "$OLDPWD/$SUMS")
fi
for f in "${FILES[@]}"; do
  cp "$work/$f" "$DEST/$f"
done
echo "swagger-ui-dist@$VERSION" > "$DEST/VERSION"
echo "installed swagger-ui-dist@$VERSION into $DEST"
