// The Accept header parser: media ranges with their parameters and q-values, bad elements left out.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseAccept } from '../../packages/plugin/src/exposition/accept-header'

test('types and parameter names lower-cased, quoted values unquoted, q apart', () => {
  assert.deepEqual(
    parseAccept('Text/Plain ; Version=1.0.0 ; Escaping="allow-utf-8" ; Q=0.4, */*;q=0.2'),
    [
      {
        type: 'text',
        subtype: 'plain',
        params: { version: '1.0.0', escaping: 'allow-utf-8' },
        q: 0.4,
      },
      { type: '*', subtype: '*', params: {}, q: 0.2 },
    ],
  )
  assert.deepEqual(parseAccept('a/b;x="q\\"=1, c"'), [
    { type: 'a', subtype: 'b', params: { x: 'q"=1, c' }, q: 1 },
  ])
})

// Each bad element comes last: an unclosed quote runs to the end of the header.
test('malformed elements are left out, the others kept', () => {
  for (const element of [
    'a',
    'a/b/c',
    '*/b',
    'a/b;x',
    'a/b;x=1 2',
    'a/b;x="open',
    'a/b;x="end\\"',
    'a/b;q=1.5',
    'a/b;q=-1',
    '"a/b"',
  ]) {
    assert.deepEqual(
      parseAccept(`ok/fine, ${element}`).map((r) => `${r.type}/${r.subtype}`),
      ['ok/fine'],
      element,
    )
  }
})
