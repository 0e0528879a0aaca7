'use strict'
const { MemSync, MemErrors } = require('./lib/memsync.js')

module.exports = { MemSync, MemErrors }
