// `npm run package`: the tarballs a release publishes, in dist/ (or the directory of `--out`):
//   memsync-<platform>-<version>.tgz  one per binary: package.json (os, cpu, libc) and the .node only
//   memsync-<version>.tgz             the JS package, with no scripts (nothing runs at install), and
//                                     the platform packages packed beside it as optionalDependencies
//                                     at the same version
//
// By default it builds this machine's binary (`npm run build`, incremental; `--no-build` packs the
// checkout's memsync.<platform>.node as it is) and packs that one, so
// the main package names only this platform's: a name that no registry holds would make `npm ci`
// refuse the lockfile of a project that installs the two tarballs. The release workflow passes
// `--binaries <dir>` with every platform's memsync.<platform>.node, and gets every platform package;
// a missing binary is an error there.
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { SUPPORTED_PLATFORMS, platformSuffix } = require('../lib/platform.js')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { values } = parseArgs({ options: {
  binaries: { type: 'string' },
  out: { type: 'string' },
  'no-build': { type: 'boolean' }
} })
const dist = resolve(values.out ?? join(root, 'dist'))

function run (command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`)
  return result
}

function pack (dir) {
  const { stdout } = run('npm', ['pack', dir, '--pack-destination', dist, '--json', '--silent'], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const [{ filename }] = JSON.parse(stdout)
  console.log(join(dist, filename))
}

// npm's provenance requires package.json's repository to name the repository that built it.
function repository () {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo } = process.env
  return server && repo ? { type: 'git', url: `git+${server}/${repo}.git` } : undefined
}

function packPlatform (suffix, binary, staging) {
  const npmDir = join(root, 'npm', suffix)
  const platformPkg = JSON.parse(readFileSync(join(npmDir, 'package.json'), 'utf8'))
  if (platformPkg.version !== pkg.version) {
    throw new Error(`npm/${suffix}/package.json is at ${platformPkg.version}, memsync at ${pkg.version}`)
  }
  const dir = join(staging, suffix)
  cpSync(npmDir, dir, { recursive: true })
  copyFileSync(binary, join(dir, `memsync.${suffix}.node`))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...platformPkg, repository: repository() }, null, 2))
  pack(dir)
}

function packMain (staging, platforms) {
  const dir = join(staging, 'memsync')
  mkdirSync(dir)
  for (const entry of [...pkg.files, 'README.md']) cpSync(join(root, entry), join(dir, entry), { recursive: true })
  const { scripts, devDependencies, overrides, napi, ...published } = pkg
  published.repository = repository()
  published.optionalDependencies = Object.fromEntries(platforms.map((suffix) => [`memsync-${suffix}`, pkg.version]))
  writeFileSync(join(dir, 'package.json'), JSON.stringify(published, null, 2))
  pack(dir)
}

const staging = mkdtempSync(join(tmpdir(), 'memsync-package-'))
try {
  mkdirSync(dist, { recursive: true })
  const platforms = values.binaries ? SUPPORTED_PLATFORMS : [platformSuffix()]
  if (values.binaries) {
    const binaries = resolve(values.binaries)
    for (const suffix of platforms) {
      const binary = join(binaries, `memsync.${suffix}.node`)
      if (!existsSync(binary)) throw new Error(`${binary} is missing: a release needs every platform's binary`)
      packPlatform(suffix, binary, staging)
    }
  } else {
    const [suffix] = platforms
    if (!SUPPORTED_PLATFORMS.includes(suffix)) throw new Error(`memsync has no platform package for ${suffix}`)
    const binary = join(root, `memsync.${suffix}.node`)
    if (!values['no-build']) run(process.execPath, [join(root, 'scripts', 'build.mjs')])
    else if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`npm run build\` first`)
    packPlatform(suffix, binary, staging)
  }
  packMain(staging, platforms)
} finally {
  rmSync(staging, { recursive: true, force: true })
}
