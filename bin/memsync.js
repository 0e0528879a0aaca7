#!/usr/bin/env node
'use strict'
// `memsync` / `npx memsync`: see lib/cli.js, or run `memsync --help`.
require('../lib/cli.js').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
