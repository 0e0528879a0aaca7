// The Redis deployment the transport's tests run against, checked on its own: a primary with two
// replicas and three sentinels that replace a primary killed with SIGKILL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { primaryPortOf, redisMissing, sentinelDeployment, waitFor } from './support/redis.mjs'

const missing = redisMissing()

test('three sentinels promote a replica within seconds of a kill -9 of the primary', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const deployment = await sentinelDeployment(t)
  const old = deployment.primary.port
  for (const sentinel of deployment.sentinels) {
    assert.equal(await primaryPortOf(sentinel.port, deployment.master), old)
  }
  const killed = Date.now()
  await deployment.primary.kill()
  const replicaPorts = deployment.replicas.map((replica) => replica.port)
  await waitFor(async () => {
    const named = await Promise.all(deployment.sentinels.map((s) => primaryPortOf(s.port, deployment.master)))
    return named.every((port) => port === named[0] && replicaPorts.includes(port))
  }, 20000, 'every sentinel names a promoted replica')
  t.diagnostic(`failover took ${Date.now() - killed} ms (down-after 1000 ms)`)
})
