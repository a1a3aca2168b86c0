// Work in flight, shared by whoever asks for its key while it runs, and forgotten once it settles.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InFlight } from '../../packages/plugin/src/lib/in-flight'

/** A promise and the function that settles it. */
function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (err: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

test('asks for a key while its work runs share that work; the next ask after it starts afresh', async () => {
  const inFlight = new InFlight<string, number>()
  let started = 0
  const work = deferred<number>()
  const start = () => {
    started++
    return work.promise
  }
  const first = inFlight.share('a', start, undefined)
  const second = inFlight.share('a', start, undefined)
  assert.equal(second, first)
  assert.equal(started, 1)
  work.resolve(7)
  assert.equal(await first, 7)
  assert.equal(inFlight.get('a'), undefined)
  const again = inFlight.share('a', () => Promise.resolve(8), undefined)
  assert.notEqual(again, first)
  assert.equal(await again, 8)
})

test('failed work is forgotten too, and each key runs its own work', async () => {
  const inFlight = new InFlight<string, number>()
  const failing = deferred<number>()
  const failed = inFlight.share('a', () => failing.promise, undefined)
  const other = inFlight.share('b', () => Promise.resolve(2), undefined)
  assert.notEqual(other, failed)
  failing.reject(new Error('boom'))
  await assert.rejects(failed, /boom/)
  assert.equal(inFlight.get('a'), undefined)
  assert.equal(await other, 2)
})

test('the note given with the work is what a later caller reads beside it', () => {
  const inFlight = new InFlight<string, number, number>()
  const work = deferred<number>()
  inFlight.start('protobuf', work.promise, 2500)
  assert.equal(inFlight.get('protobuf')?.note, 2500)
  work.resolve(0)
})
