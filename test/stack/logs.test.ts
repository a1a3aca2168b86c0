// The service's log stream, as the container ships it: JSON lines on stdout, and at the default
// level no line per request unless LOG_REQUESTS asks for Fastify's two.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort, httpGet, waitFor } from '../../harness/net'
import { killAll } from '../../harness/pm2'
import { ROOT } from '../../harness/stack'

const REQUESTS = 7

/** Runs the built server (no PM2), sends REQUESTS requests to /items/1, stops it; its stdout. */
async function logsOf(extra: Record<string, string>): Promise<Array<Record<string, unknown>>> {
  const port = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'server.js')], {
    env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', ...extra },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let stdout = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  try {
    const base = `http://127.0.0.1:${port}`
    await waitFor('the server to listen', async () => stdout.includes('Server listening'))
    for (let i = 0; i < REQUESTS; i++) assert.equal((await httpGet(`${base}/items/1`)).status, 200)
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  } finally {
    if (child.pid) await killAll([child.pid])
  }
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

const perRequest = (lines: Array<Record<string, unknown>>) =>
  lines.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed')

test('at the default level every line is JSON and no line is written per request', async () => {
  const lines = await logsOf({})
  assert.ok(lines.length > 0)
  assert.ok(lines.every((line) => typeof line.level === 'number' && typeof line.time === 'number'))
  assert.equal(perRequest(lines).length, 0)
  assert.ok(lines.some((line) => line.msg === 'shutting down'))
})

test("LOG_REQUESTS=true brings back Fastify's two lines per request", async () => {
  const lines = await logsOf({ LOG_REQUESTS: 'true' })
  assert.equal(perRequest(lines).length, 2 * REQUESTS)
})
