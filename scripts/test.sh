#!/usr/bin/env bash
# The whole test suite: `npm test`. Builds the addon once (incremental), then the Rust tests of the
# pure core, the type test of index.d.ts and the JS tests.
set -euo pipefail
shopt -s globstar
cd "$(dirname "$0")/.."
npm run build --silent
# The napi binding is a default feature; the core's tests link without Node (napi-rs#1099).
cargo test --no-default-features
npx tsc -p __test__
node --test --test-concurrency=1 __test__/**/*.test.mjs
