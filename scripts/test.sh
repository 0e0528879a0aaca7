#!/usr/bin/env bash
# The whole test suite: `npm test`. Builds the addon once (incremental), then the Rust tests of the
# pure core, the type tests of index.d.ts (ours, and code written for memsync 0.5) and the JS tests,
# whose default rendezvous directory is a temporary one (scripts/sandbox.sh).
set -euo pipefail
shopt -s globstar
cd "$(dirname "$0")/.."
npm run build --silent
source scripts/sandbox.sh
# The core's Rust tests, built like the addon so that they reuse its compiled dependencies.
node scripts/build.mjs --tests
npx tsc -p __test__
# Code written against memsync 0.5's typings compiles unchanged against ours.
npx tsc -p __test__/compat
node --test --test-concurrency=1 __test__/**/*.test.mjs
