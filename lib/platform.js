'use strict'
// Which prebuilt binary this machine needs: the file memsync.<suffix>.node, shipped in the npm
// package memsync-<suffix> (an optional dependency of memsync, installed only where its os, cpu
// and libc match).

const { familySync, versionSync, MUSL } = require('detect-libc')

/** The platforms a release ships a binary for: package.json's napi.targets, one npm/<suffix>/ each. */
const SUPPORTED_PLATFORMS = Object.freeze([
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64'
])

function isMusl () {
  return process.platform === 'linux' && familySync() === MUSL
}

/** This machine's suffix, such as `linux-x64-gnu` or `darwin-arm64`, supported or not. */
function platformSuffix () {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
}

/** The platform in words for an error message: os, cpu and, on Linux, libc with its version. */
function describePlatform () {
  const { platform, arch } = process
  if (platform !== 'linux') return `os ${platform}, cpu ${arch}`
  const libc = familySync() ?? 'unknown'
  const version = versionSync()
  return `os ${platform}, cpu ${arch}, libc ${libc}${version ? ` ${version}` : ''}`
}

module.exports = { SUPPORTED_PLATFORMS, platformSuffix, describePlatform }
