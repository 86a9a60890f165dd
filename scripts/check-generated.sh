#!/usr/bin/env bash
# Fails when the committed generated code differs from what `buf generate` makes now.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r internal/gen "$tmp/internal-gen"
cp -r web/src/gen "$tmp/web-gen"
npx buf generate
npx buf generate --template buf.gen.web.yaml
if ! diff -r "$tmp/internal-gen" internal/gen >/dev/null || ! diff -r "$tmp/web-gen" web/src/gen >/dev/null; then
  echo "generated code was out of date with proto/: run 'npm run gen' and commit the result" >&2
  git --no-pager diff --stat -- internal/gen web/src/gen >&2 || true
  exit 1
fi
echo "generated code is up to date"
