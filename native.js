'use strict'
// Loads the native addon (native.d.ts lists what it exports). Two places may hold it:
// - memsync.<platform>.node beside this file: a source build of this checkout (`npm run build`);
// - the package memsync-<platform>, an optional dependency of memsync that npm installs only on
//   the platform it was built for.
// The first that loads wins; when none does, the error says why, for each place tried.

const path = require('node:path')
const { SUPPORTED_PLATFORMS, describePlatform, platformSuffix } = require('./lib/platform.js')
const { version } = require('./package.json')

function loadBinding () {
  const suffix = platformSuffix()
  const sourceBuild = path.join(__dirname, `memsync.${suffix}.node`)
  const packageName = `memsync-${suffix}`
  const failures = []

  try {
    return require(sourceBuild)
  } catch (err) {
    failures.push(`  ${sourceBuild} (a source build): ${reason(err, sourceBuild)}`)
  }
  if (SUPPORTED_PLATFORMS.includes(suffix)) {
    try {
      const installed = require(`${packageName}/package.json`).version
      if (installed !== version) {
        throw new Error(`version ${installed} is installed, but memsync ${version} needs the same version`)
      }
      return require(packageName)
    } catch (err) {
      failures.push(`  the package ${packageName} (memsync's prebuilt binary): ${reason(err, packageName)}`)
    }
  }
  throw noBinaryError(suffix, failures)
}

function reason (err, what) {
  const notFound = err.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${what}`)
  return notFound ? 'not found' : err.message.split('\n')[0]
}

function noBinaryError (suffix, failures) {
  const supported = SUPPORTED_PLATFORMS.includes(suffix)
  const lines = [
    `memsync could not load its native addon on this platform (${describePlatform()}).`,
    'Looked for:',
    ...failures,
    supported
      ? `memsync-${suffix} is installed with memsync as an optional dependency: reinstall memsync ` +
        'without --omit=optional (or --no-optional), with the same version for both packages.'
      : `memsync ships prebuilt binaries for ${SUPPORTED_PLATFORMS.join(', ')}; ${suffix} is not one of them.`,
    'To build it from source instead (Rust from https://rustup.rs, and Node.js 20 or later): ' +
      'clone the memsync repository, then run `npm install && npm run build` in it.'
  ]
  const err = new Error(lines.join('\n'))
  err.code = 'ERR_MEMSYNC_NATIVE'
  return err
}

module.exports = loadBinding()
