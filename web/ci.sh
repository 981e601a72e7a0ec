#!/usr/bin/env bash
# The dashboard's CI: build it from source and test the fresh build. Run from anywhere with the project's virtualenv
# active (python and linewatch on PATH), as the README's test command does. Steps and what each needs:
#   chromium (Debian's, installed when missing), npm ci, API types regenerated from the service's OpenAPI schema,
#   type check, production build (checked against the committed build, which pip installs ship), bundle budget,
#   Vitest component tests, Playwright end to end (starts a real `linewatch serve` with a demo model, axe checks).
set -euo pipefail
cd "$(dirname "$0")"
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_PATH" ]; then
  step "installing Debian's chromium"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
export CHROMIUM_PATH

step "npm ci"
npm ci --no-audit --no-fund

step "API types from the OpenAPI schema"
(cd .. && python -m linewatch.api.openapi_dump web/openapi.json)
npx openapi-typescript openapi.json -o src/api/schema.d.ts

step "type check"
npx tsc --noEmit

step "build"
npx vite build
if git -C .. rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git -C .. status --porcelain -- src/linewatch/dashboard)" ]; then
  echo "The committed dashboard build (src/linewatch/dashboard) differs from a build of web/: run" >&2
  echo "'cd web && npm run build' and commit src/linewatch/dashboard." >&2
  git -C .. status --short -- src/linewatch/dashboard >&2
  exit 1
fi
node perf/bundle_budget.mjs

step "component tests (Vitest)"
npx vitest run

step "end to end (Playwright, chromium, real linewatch serve)"
npx playwright test

step "dashboard CI passed"
