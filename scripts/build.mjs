// `npm run build`: builds the addon from source into ./memsync.<platform>.node, the file the loader
// (native.js) tries first, and regenerates native.d.ts.
//
// On Linux glibc hosts it links against napi-rs's cross toolchain (glibc 2.17), so that a
// contributor's build, the test suite and a release all run the same portable binary; the toolchain
// comes from the npm registry on first use (~/.napi-rs/cross-toolchain).
//
//   --debug         a debug build
//   --if-missing    do nothing when this platform's .node already exists (`npm run demo`)
//   other arguments go to `napi build` (e.g. --target aarch64-unknown-linux-gnu)
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { platformSuffix } = createRequire(import.meta.url)('../lib/platform.js')

const args = process.argv.slice(2)
const take = (flag) => {
  const at = args.indexOf(flag)
  if (at >= 0) args.splice(at, 1)
  return at >= 0
}
const debug = take('--debug')
const ifMissing = take('--if-missing')

if (ifMissing && existsSync(join(root, `memsync.${platformSuffix()}.node`))) process.exit(0)

const napiArgs = ['build', '--platform', '--no-js', '--dts', 'native.d.ts', ...args]
if (!debug) napiArgs.push('--release')
const targetAt = args.findIndex((arg) => arg === '--target' || arg === '-t')
const linuxGnuHost = /^linux-(x64|arm64)-gnu$/.test(platformSuffix())
const linuxGnuTarget = targetAt >= 0 ? /-linux-gnu$/.test(args[targetAt + 1] ?? '') : linuxGnuHost
if (linuxGnuHost && linuxGnuTarget) napiArgs.push('--use-napi-cross')

const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
if (!existsSync(napi)) {
  console.error('memsync: the napi CLI is missing; run `npm install` in the checkout first.')
  process.exit(1)
}
const { status, error } = spawnSync(process.execPath, [napi, ...napiArgs], { cwd: root, stdio: 'inherit' })
if (error) throw error
process.exit(status ?? 1)
