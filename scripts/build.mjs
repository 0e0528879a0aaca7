// `npm run build`: builds the addon from source into ./memsync.<platform>.node, the file the loader
// (native.js) tries first, and regenerates native.d.ts.
//
// On Linux glibc hosts it links against napi-rs's cross toolchain (glibc 2.17), so that a
// contributor's build, the test suite and a release all run the same portable binary; the toolchain
// comes from the npm registry on first use (~/.napi-rs/cross-toolchain).
//
//   --debug         a debug build
//   --if-missing    do nothing when this platform's .node already exists (`npm run demo`)
//   --tests         runs the core's Rust tests instead (scripts/test.sh), built like the release
//                   addon so that they reuse every dependency its build compiled; other arguments
//                   then go to `cargo test`
//   other arguments go to `napi build` (e.g. --target aarch64-unknown-linux-gnu)
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
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
const tests = take('--tests')

if (ifMissing && existsSync(join(root, `memsync.${platformSuffix()}.node`))) process.exit(0)

const linuxGnuHost = /^linux-(x64|arm64)-gnu$/.test(platformSuffix())
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
if (!existsSync(napi)) {
  console.error('memsync: the napi CLI is missing; run `npm install` in the checkout first.')
  process.exit(1)
}

/** Runs `command` in the checkout and exits with its status. */
function run (command, commandArgs, env = process.env) {
  const { status, error } = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env })
  if (error) throw error
  process.exit(status ?? 1)
}

if (tests) {
  // What `napi build --release` passes cargo for this machine: the host's target (napi always
  // names one, so its output is under target/<triple>/) and, with --use-napi-cross, the linker of
  // napi's cross toolchain; cargo compiles every dependency again when the linker differs. The
  // binding's dependencies are built too (feature napi-crates) but not the binding, which cannot
  // link into a test executable (napi-rs#1099).
  const triple = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1]
  const env = { ...process.env }
  if (linuxGnuHost) {
    // Where napi keeps its toolchain (its pickCrossToolchain). If it is not there, the tests still
    // build, with the default linker and their own dependencies.
    const { version } = createRequire(napi)('@napi-rs/cross-toolchain')
    const linker = join(homedir(), '.napi-rs', 'cross-toolchain', version, triple, 'bin', `${triple}-gcc`)
    if (existsSync(linker)) env[`CARGO_TARGET_${triple.toUpperCase().replaceAll('-', '_')}_LINKER`] = linker
  }
  // memsync's own code as a debug build compiles it (no optimization, its `debug_assert!`s and
  // overflow checks): a third of the time of the release settings (51 s against 148 s here), and
  // checked. These settings of this package alone leave the dependencies as the build compiled them.
  const debugSettings = ['opt-level=0', 'codegen-units=16', 'debug-assertions=true', 'overflow-checks=true']
  const profile = debugSettings.flatMap((setting) => ['--config', `profile.release.package.memsync.${setting}`])
  run('cargo', [...profile, 'test', '--release', '--target', triple, '--no-default-features', '--features', 'napi-crates', ...args], env)
}

const napiArgs = ['build', '--platform', '--no-js', '--dts', 'native.d.ts', ...args]
if (!debug) napiArgs.push('--release')
const targetAt = args.findIndex((arg) => arg === '--target' || arg === '-t')
const linuxGnuTarget = targetAt >= 0 ? /-linux-gnu$/.test(args[targetAt + 1] ?? '') : linuxGnuHost
if (linuxGnuHost && linuxGnuTarget) napiArgs.push('--use-napi-cross')
run(process.execPath, [napi, ...napiArgs])
