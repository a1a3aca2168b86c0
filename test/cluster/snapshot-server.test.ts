// The sibling socket's own timeouts: a client that says nothing is dropped, a render slower than
// that timeout still reaches a client that asked, and a probe that hangs up never holds a close;
// protobuf's bytes pass it unchanged; and a gather's receive buffers are reused, never shared.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Gauge, Registry } from 'prom-client'
import { renderRegistry } from '../../packages/plugin/src/exposition/exposition'
import { ReceiveBuffers } from '../../packages/plugin/src/gather/receive-buffers'
import { fetchExposition } from '../../packages/plugin/src/gather/snapshot-client'
import { SnapshotServer } from '../../packages/plugin/src/gather/snapshot-server'

const base = mkdtempSync(join(tmpdir(), 'snap-'))
after(() => rmSync(base, { recursive: true, force: true }))
const header = { workerId: '3', pid: process.pid, instance: `${process.pid}-0badc0de` }

test('a render slower than the idle timeout still reaches the gatherer that asked', async () => {
  // The idle timeout is 2 s; this render takes longer, as one under load may.
  const server = new SnapshotServer(join(base, 'slow.sock'), header, async () => {
    await new Promise((resolve) => setTimeout(resolve, 2500))
    return 'slow_total 1\n'
  })
  await server.listen()
  try {
    const answer = await fetchExposition(
      join(base, 'slow.sock'),
      '3',
      'prometheus',
      new AbortController().signal,
    )
    assert.equal(Buffer.from(answer.body).toString('utf8'), 'slow_total 1\n')
  } finally {
    await server.close()
  }
})

test('close ends the connection of a peer that connected and said nothing', async () => {
  const server = new SnapshotServer(join(base, 'quiet.sock'), header, async () => 'x 1\n')
  await server.listen()
  const peer = connect({ path: join(base, 'quiet.sock') })
  await new Promise((resolve) => peer.once('connect', resolve))
  const peerClosed = new Promise<boolean>((resolve) => peer.once('close', () => resolve(true)))
  peer.on('error', () => {})
  await server.close()
  // The server ended it itself: the peer never wrote or closed anything.
  assert.equal(await peerClosed, true)
  assert.equal(peer.bytesWritten, 0)
})

test('protobuf bytes cross the socket as they are, newlines and all; malformed ones are refused', async () => {
  const registry = new Registry()
  new Gauge({ name: 'g', help: 'a\nhelp', labelNames: ['v'], registers: [registry] }).set(
    { v: 'x\ny\u00ff' },
    0.1,
  )
  const bytes = await renderRegistry(registry, 'protobuf')
  assert.ok(bytes.includes(0x0a), 'the render holds newline bytes')
  let answer: Uint8Array = bytes
  const server = new SnapshotServer(join(base, 'bytes.sock'), header, async (format) =>
    format === 'protobuf' ? answer : 'text 1\n',
  )
  await server.listen()
  const fetch = (format: 'protobuf' | 'prometheus') =>
    fetchExposition(join(base, 'bytes.sock'), '3', format, new AbortController().signal)
  try {
    const got = await fetch('protobuf')
    assert.ok(got.body instanceof Uint8Array)
    assert.deepEqual(Buffer.from(got.body), bytes)
    assert.equal(Buffer.from((await fetch('prometheus')).body).toString('utf8'), 'text 1\n')
    // A length prefix promising more than follows.
    answer = Uint8Array.of(5, 0x0a, 1)
    await assert.rejects(fetch('protobuf'), /malformed protobuf answer from worker 3/)
  } finally {
    await server.close()
  }
})

test('siblings asking meanwhile share one render and receive its text intact', async () => {
  let renders = 0
  const text = 'label_total{v="é€😀"} 1\n'
  const server = new SnapshotServer(join(base, 'shared.sock'), header, async () => {
    renders++
    await new Promise((resolve) => setTimeout(resolve, 50))
    return text
  })
  await server.listen()
  try {
    const signal = new AbortController().signal
    const answers = await Promise.all([
      server.renderShared('prometheus'),
      ...Array.from({ length: 4 }, () =>
        fetchExposition(join(base, 'shared.sock'), '3', 'prometheus', signal).then((a) =>
          Buffer.from(a.body).toString('utf8'),
        ),
      ),
    ])
    assert.equal(renders, 1)
    assert.deepEqual(answers, Array(5).fill(text))
  } finally {
    await server.close()
  }
})

test('an answer is read whole into a buffer that the next read reuses once released, and no two reads share', async () => {
  // Larger than a first buffer and than one socket read: the buffer grows as it is read.
  const lines = Array.from({ length: 20_000 }, (_, i) => `big_total{n="${i}"} ${i}\n`)
  const text = lines.join('')
  assert.ok(Buffer.byteLength(text) > 256 * 1024)
  const server = new SnapshotServer(join(base, 'reuse.sock'), header, async () => text)
  await server.listen()
  const buffers = new ReceiveBuffers(60_000)
  const fetch = () =>
    fetchExposition(
      join(base, 'reuse.sock'),
      '3',
      'prometheus',
      new AbortController().signal,
      buffers,
    )
  try {
    const first = await fetch()
    assert.equal(Buffer.from(first.body).toString('utf8'), text)
    // Two reads while the first holds its buffer: three distinct memories, each intact.
    const [second, third] = await Promise.all([fetch(), fetch()])
    const memories = new Set(
      [first, second, third].map((answer) => (answer.body as Uint8Array).buffer),
    )
    assert.equal(memories.size, 3)
    for (const answer of [second, third]) {
      assert.equal(Buffer.from(answer.body).toString('utf8'), text)
      answer.release()
    }
    first.release()
    // Released, the last buffer given back is read into again, with no new allocation.
    const again = await fetch()
    assert.equal((again.body as Uint8Array).buffer, (first.body as Uint8Array).buffer)
    assert.equal(Buffer.from(again.body).toString('utf8'), text)
    again.release()
  } finally {
    buffers.clear()
    await server.close()
  }
})

test('an answer shorter or longer than its header announces is refused', async () => {
  const path = join(base, 'cut.sock')
  let answer = ''
  const server = createServer((socket) => socket.once('data', () => socket.end(answer)))
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const fetch = () => fetchExposition(path, '3', 'prometheus', new AbortController().signal)
  try {
    const headerOf = (bytes: number) => `${JSON.stringify({ ...header, bytes })}\n`
    answer = `${headerOf(20)}cut_total 1\n`
    await assert.rejects(fetch(), /the answer of worker 3 ended after 12 of 20 bytes/)
    answer = `${headerOf(5)}cut_total 1\n`
    await assert.rejects(fetch(), /ended after 12 of 5 bytes/)
    // An older release announces no length: its answer is taken as it ends.
    answer = `${JSON.stringify(header)}\ncut_total 1\n`
    assert.equal(Buffer.from((await fetch()).body).toString('utf8'), 'cut_total 1\n')
  } finally {
    await new Promise((resolve) => server.close(resolve))
  }
})
