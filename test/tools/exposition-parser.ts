// A real parser for both exposition formats: the official Python client's, in one long-lived
// child process (Debian's python3-prometheus-client), asked one text at a time.
import { join } from 'node:path'
import type { TextFormat } from '../../packages/plugin/src/exposition/exposition'
import { PythonChild } from './python-child'

export interface ParsedFamily {
  name: string
  help: string
  type: string
  unit: string
  /** [sample name, labels, value] in text order. */
  samples: Array<[string, Record<string, string>, string]>
}

export class ExpositionParser {
  private readonly child = new PythonChild('exposition parser', [
    join(__dirname, 'exposition_parser.py'),
  ])

  /** The families in `text`; throws with the parser's message if it rejects the text. */
  async parse(text: string, format: TextFormat): Promise<ParsedFamily[]> {
    try {
      return (await this.child.ask<{ families: ParsedFamily[] }>({ format, text })).families
    } catch (err) {
      throw new Error(`${format} ${(err as Error).message}`)
    }
  }

  close(): void {
    this.child.close()
  }
}
