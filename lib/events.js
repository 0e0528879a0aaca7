'use strict'
// The events of the native replica (src/core/events.rs documents each one's array). A drain
// arrives as one flat JSON array of tokens, which costs V8's JSON.parse far less than an array
// per event, per change and per path: the events on every patch's path (own, changes, accepted)
// spell out their lists after their length, and every other event gives its field count after
// its tag. `parseEvents` rebuilds the arrays the rest of lib/ reads.

const native = require('../native.js')

/** The tags of the events named `names`, in order; throws unless the addon queues exactly those. */
function eventTags (names) {
  const tags = native.eventTags()
  if (Object.keys(tags).sort().join() !== [...names].sort().join()) {
    throw new Error(`memsync: the addon's events (${Object.keys(tags).join(', ')}) are not those lib/events.js decodes (${names.join(', ')})`)
  }
  return names.map((name) => tags[name])
}

const NAMES = ['own', 'changes', 'snapshot', 'ack', 'accepted', 'rejected', 'role', 'fail', 'call', 'reply', 'pong', 'grant', 'eventsDropped', 'emit', 'error', 'debug', 'warning', 'digest', 'document']
const TAGS = eventTags(NAMES)
const tag = (name) => TAGS[NAMES.indexOf(name)]
const OWN = tag('own')
const CHANGES = tag('changes')
const ACCEPTED = tag('accepted')

// A change list at `at` (its length, then each change: tag, path length, keys, operands) into
// `changes` as lib/changes.js reads them (['s', path, value]...); returns where it ends.
function readChanges (tokens, at, changes) {
  for (let c = 0; c < changes.length; c++) {
    const kind = tokens[at]
    const keys = tokens[at + 1]
    const path = tokens.slice(at + 2, at + 2 + keys)
    at += 2 + keys
    switch (kind) {
      case 's':
        changes[c] = ['s', path, tokens[at++]]
        break
      case 'u':
        changes[c] = ['u', path]
        break
      case 'p':
        changes[c] = ['p', path, tokens[at], tokens[at + 1], tokens[at + 2]]
        at += 3
        break
      case 'm': {
        const to = tokens[at]
        changes[c] = ['m', path, tokens.slice(at + 1, at + 1 + to)]
        at += 1 + to
        break
      }
      default:
        throw new Error(`memsync: the addon sent an unknown change '${kind}'`)
    }
  }
  return at
}

/** The events of a drain's text, each the array src/core/events.rs documents. */
function parseEvents (text) {
  const tokens = JSON.parse(text)
  const events = []
  let at = 0
  while (at < tokens.length) {
    const kind = tokens[at++]
    if (kind === OWN) {
      const count = tokens[at + 3]
      const changes = count < 0 ? null : new Array(count)
      const event = [OWN, tokens[at], tokens[at + 1], changes, tokens[at + 2]]
      at = changes === null ? at + 4 : readChanges(tokens, at + 4, changes)
      events.push(event)
    } else if (kind === CHANGES) {
      const received = tokens.slice(at + 2, at + 2 + tokens[at + 1])
      const version = tokens[at]
      at += 2 + received.length
      const changes = new Array(tokens[at])
      at = readChanges(tokens, at + 1, changes)
      events.push([CHANGES, version, changes, received])
    } else if (kind === ACCEPTED) {
      const count = tokens[at]
      events.push([ACCEPTED, tokens.slice(at + 1, at + 1 + count)])
      at += 1 + count
    } else {
      const count = tokens[at]
      const event = tokens.slice(at, at + 1 + count)
      event[0] = kind
      events.push(event)
      at += 1 + count
    }
  }
  return events
}

module.exports = { TAGS, parseEvents }
