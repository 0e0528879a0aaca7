'use strict'
// The events of the native replica (src/core/events.rs documents each one's array). A drain
// arrives as one flat JSON array of tokens, which costs V8's JSON.parse far less than an array
// per event, per change and per path: the events on every patch's path (own, changes, accepted)
// spell out their lists after their length, and every other event gives its field count after
// its tag. `parseEvents` makes the array src/core/events.rs documents of each event, except that
// a change list stays in the tokens, read in place (a ChangeList of lib/changes.js), and that a
// joined host's document, which comes beside the drain, is put in its snapshot's place.

const native = require('../native.js')
const { ChangeList } = require('./changes.js')

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
const SNAPSHOT = tag('snapshot')

/**
 * The events of a drain's text, each the array src/core/events.rs documents (change lists as
 * ChangeLists); `takeSnapshot()` gives the document of a snapshot whose data is null.
 */
function parseEvents (text, takeSnapshot) {
  const tokens = JSON.parse(text)
  const events = []
  let at = 0
  while (at < tokens.length) {
    const kind = tokens[at++]
    if (kind === OWN) {
      const count = tokens[at + 3]
      const changes = count < 0 ? null : new ChangeList(tokens, at + 4, count)
      events.push([OWN, tokens[at], tokens[at + 1], changes, tokens[at + 2]])
      at = changes === null ? at + 4 : changes.end
    } else if (kind === CHANGES) {
      const received = tokens.slice(at + 2, at + 2 + tokens[at + 1])
      const version = tokens[at]
      at += 2 + received.length
      const changes = new ChangeList(tokens, at + 1, tokens[at])
      events.push([CHANGES, version, changes, received])
      at = changes.end
    } else if (kind === ACCEPTED) {
      const count = tokens[at]
      events.push([ACCEPTED, tokens.slice(at + 1, at + 1 + count)])
      at += 1 + count
    } else {
      const count = tokens[at]
      const event = tokens.slice(at, at + 1 + count)
      event[0] = kind
      if (kind === SNAPSHOT && event[2] === null) event[2] = takeSnapshot()
      events.push(event)
      at += 1 + count
    }
  }
  return events
}

module.exports = { TAGS, parseEvents }
