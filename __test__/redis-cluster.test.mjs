// The Redis transport on a Redis Cluster (redis+cluster://): every key of an object shares one
// hash tag, so an object lives on the primary of one slot; machines (each its own rendezvous
// directory) find that primary from any node and follow it through a failover.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { converge, rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { clusterDeployment, command, ownerOf, redisToolsMissing, waitFor } from './support/redis.mjs'
import { runCli } from './support/services.mjs'

const missing = redisToolsMissing()

/** The node of `nodes` that replicates `primary`, once it is in sync. */
async function replicaOf (nodes, primary) {
  let found
  await waitFor(async () => {
    for (const node of nodes) {
      const info = await command(node.port, 'INFO', 'replication')
      if (info.includes(`master_port:${primary.port}\r\n`) && info.includes('master_link_status:up')) found = node
    }
    return found !== undefined
  }, 10000, `a replica of the primary on ${primary.port}`)
  return found
}

/** Names of objects (their `{ms:<name>}` tag) served by `count` different primaries. */
async function namesOnDistinctPrimaries (primaries, count) {
  const names = new Map()
  for (let i = 0; names.size < count && i < 200; i++) {
    const name = uniqueName('sharded')
    const owner = await ownerOf(primaries, `{ms:${name}}:base`)
    if (owner && !names.has(owner)) names.set(owner, name)
  }
  assert.equal(names.size, count, `names found on ${count} different primaries`)
  return [...names.values()]
}

test('two machines share objects through a Redis Cluster; objects whose slots are on different primaries both work, and the memsync command reaches them', { skip: missing ?? false, timeout: 90000 }, async (t) => {
  const { primaries, url } = await clusterDeployment(t, { masters: 3 })
  // The URL names one node only: the others are found through it.
  const seed = `redis+cluster://127.0.0.1:${primaries[2].port}`
  const names = await namesOnDistinctPrimaries(primaries, 2)
  for (const [index, name] of names.entries()) {
    const config = { data: { n: 0 }, options: { transport: index === 0 ? url : seed } }
    const a = await spawnPeer(t, name, rendezvousDir(t), config, `${name}-a`)
    const b = await spawnPeer(t, name, rendezvousDir(t), config, `${name}-b`)
    await a.request('start')
    await b.request('start')
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await a.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
      assert.deepEqual(await b.request('patch', { update: { $inc: { n: 100 } } }), { ok: true })
    }
    const [state] = await converge([a, b])
    assert.deepEqual(state.data, { n: 1010 })
    assert.equal(state.version, 20)
    const result = await runCli(['status', '--transport', seed, name])
    assert.equal(result.code, 0, result.stderr)
    const { machines, ...status } = JSON.parse(result.stdout)
    assert.deepEqual(status, { name, transport: seed, version: 20, logEntries: 20, snapshotVersion: null })
    assert.deepEqual(machines.flatMap((m) => m.pids).sort(), [a.pid, b.pid].sort(), 'both machines present')
  }
  const owners = await Promise.all(names.map((name) => ownerOf(primaries, `{ms:${name}}:log`)))
  assert.notEqual(owners[0], owners[1], 'the two logs are on different primaries')
})

test('the bridges follow the slot to its replica after a CLUSTER FAILOVER (the old primary still up, now a replica) and after a kill -9 of the primary; every resolved patch survives', { skip: missing ?? false, timeout: 120000 }, async (t) => {
  const { nodes, primaries, url } = await clusterDeployment(t, { masters: 3, replicas: 1, nodeTimeoutMs: 1000 })
  const name = uniqueName('cluster-failover')
  // Durability 'primary': the promoted replica has no replica of its own to confirm a WAIT. A
  // bridge proposes again the patches it placed when the failover lost them, so every resolved
  // patch survives all the same.
  const config = { data: { log: [] }, options: { transport: url, timeout: 30000 } }
  // The bridges' NODE_DEBUG lines (reconnections, what the Cluster named) explain a failure.
  const env = { ...process.env, NODE_DEBUG: 'memsync' }
  const a = await spawnPeer(t, name, rendezvousDir(t), config, 'a', { env })
  const b = await spawnPeer(t, name, rendezvousDir(t), config, 'b', { env })
  await a.request('start')
  await b.request('start')
  const bridges = () => [a, b].map((peer) => `${peer.describe()}:\n${peer.stderr.split('\n').slice(-30).join('\n')}`).join('\n')
  const resolved = []
  let seq = 0
  const write = async (peer, who) => {
    const id = `${who}:${seq++}`
    const outcome = await peer.request('patch', { update: { $push: { log: id } } }, 30000)
    if (outcome.ok) resolved.push(id)
    assert.deepEqual(outcome, { ok: true }, `${id}\n${bridges()}`)
  }
  for (let i = 0; i < 10; i++) {
    await write(a, 'a')
    await write(b, 'b')
  }
  const key = `{ms:${name}}:log`
  const owner = await ownerOf(primaries, key)
  assert.ok(owner, 'a primary serves the object')
  const replica = await replicaOf(nodes, owner)

  // A manual failover: the old primary stays up and becomes a replica, so only the bridges'
  // check (ROLE, and the Cluster's map every second) tells them to move.
  assert.equal(await command(replica.port, 'CLUSTER', 'FAILOVER'), '+OK\r\n')
  const failedOverAt = Date.now()
  await write(a, 'a')
  await write(b, 'b')
  const followedMs = Date.now() - failedOverAt
  assert.equal(await ownerOf(nodes, key), replica, 'the replica serves the slot now')
  assert.ok(followedMs < 10000, `writes went on ${followedMs} ms after CLUSTER FAILOVER\n${bridges()}`)

  const killedAt = Date.now()
  await replica.kill('SIGKILL')
  // A patch started after the kill resolves once the old primary is promoted again and the
  // bridge found it.
  await write(a, 'a')
  const resumedMs = Date.now() - killedAt
  assert.equal(await ownerOf(nodes, key), owner, 'the first primary serves the slot again')
  // Node timeout 1 s, then the election: 2.3 to 3.3 s in five runs here.
  assert.ok(resumedMs < 10000, `writes resumed ${resumedMs} ms after the kill\n${bridges()}`)
  for (let i = 0; i < 5; i++) {
    await write(b, 'b')
    await write(a, 'a')
  }
  const [state] = await converge([a, b], { timeoutMs: 20000 }).catch((error) => assert.fail(`${error.message}\n${bridges()}`))
  for (const id of resolved) {
    assert.equal(state.data.log.filter((entry) => entry === id).length, 1, `${id} resolved, so it is there once`)
  }
})
