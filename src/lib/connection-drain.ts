// Graceful hand-over of keep-alive connections when a worker stops (pm2 reload, SIGTERM).
//
// `http.Server#close` closes every idle keep-alive connection at once, which races requests a
// client is writing at that moment (ECONNRESET). Instead, once draining:
//  - the worker stops listening (in cluster mode the primary hands new connections to others);
//  - every response not yet sent carries `Connection: close` (those in flight when the drain
//    starts, and every request still arriving on an open connection), so a client finishes
//    that exchange and opens its next request elsewhere: no race for busy connections;
//  - a connection with nothing in flight and no bytes moved for a whole check interval is
//    closed: it is idle, and a client that still holds it would reconnect. It is closed only
//    after the event loop has read the socket, so a request that has already arrived is
//    answered (with `Connection: close`) rather than reset.
// At `acceptMs` every connection without a request in flight is closed, including one whose
// client is still sending its headers slowly, so no request starts after it: every request the
// worker took ends by `acceptMs` plus the longest request. At `hardStopMs` whatever is still
// open is destroyed, so the stop (and the count handover after it) never outlasts the grace.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'

export interface DrainDeadlines {
  /** After this, no connection without a request in flight stays open. */
  acceptMs: number
  /** After this, every connection is destroyed, requests in flight included. */
  hardStopMs: number
  /** Told how many requests the hard stop cut off, if any. */
  onHardStop?: (requestsCut: number) => void
}

export class ConnectionDrain {
  /** Responses whose request arrived and whose connection has not closed them yet. */
  private readonly inFlight = new Set<ServerResponse>()
  private readonly sockets = new Set<Socket>()
  private draining = false

  constructor(
    private readonly server: Server,
    private readonly idleCheckMs = 250,
  ) {
    const inFlight = this.inFlight
    // One listener function for every response (no closure per request): `this` is the response.
    const onResponseClose = function (this: ServerResponse) {
      inFlight.delete(this)
    }
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    // Ahead of Fastify's handler: a response Fastify answers synchronously (a 404 from the
    // router, a 400 for a malformed request) is still unsent here, so it can be marked.
    server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
      if (this.draining) markForClose(response)
      inFlight.add(response)
      response.once('close', onResponseClose)
    })
  }

  /** Resolves once every connection is gone, or at `acceptMs`; the hard stop stays armed. */
  drain(deadlines: DrainDeadlines): Promise<void> {
    this.draining = true
    for (const response of this.inFlight) markForClose(response)

    const hardStop = setTimeout(() => {
      const cut = this.inFlight.size
      for (const socket of this.sockets) socket.destroy()
      if (cut > 0) deadlines.onHardStop?.(cut)
    }, deadlines.hardStopMs)
    hardStop.unref()

    const lastSeen = new Map<Socket, number>()
    const closeIdle = () => {
      const withRequests = this.busySockets()
      const idle: Socket[] = []
      for (const socket of this.sockets) {
        const traffic = trafficOf(socket)
        if (!withRequests.has(socket) && lastSeen.get(socket) === traffic) idle.push(socket)
        else lastSeen.set(socket, traffic)
      }
      this.closeAfterRead(idle, (socket) => lastSeen.get(socket) === trafficOf(socket))
    }
    const interval = setInterval(closeIdle, this.idleCheckMs)
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // A request already received is answered; a socket with none (or half of one) closes.
        this.closeAfterRead([...this.sockets], () => true).then(resolve)
      }, deadlines.acceptMs)
      // The plain net.Server close: stop listening, keep the open connections for now. Its
      // callback runs once the last connection is gone.
      NetServer.prototype.close.call(this.server, () => {
        clearTimeout(timer)
        clearTimeout(hardStop)
        resolve()
      })
    }).finally(() => clearInterval(interval))
  }

  /**
   * Destroys those of `sockets` still without a request in flight, and still `idle`, once the
   * event loop has read what arrived. Timers run before the loop reads sockets: a request a
   * client wrote on a kept-alive connection while this worker was busy is still unread when
   * the timer runs, and destroying its socket then resets it (ECONNRESET) instead of answering
   * it with `Connection: close`, as every other request during the drain is.
   */
  private closeAfterRead(sockets: Socket[], idle: (socket: Socket) => boolean): Promise<void> {
    return new Promise((resolve) =>
      setImmediate(() => {
        const withRequests = this.busySockets()
        for (const socket of sockets) {
          if (!withRequests.has(socket) && idle(socket)) socket.destroy()
        }
        resolve()
      }),
    )
  }

  private busySockets(): Set<Socket> {
    const sockets = new Set<Socket>()
    for (const response of this.inFlight) sockets.add(response.req.socket)
    return sockets
  }
}

function trafficOf(socket: Socket): number {
  return socket.bytesRead + socket.bytesWritten
}

/** `Connection: close` on a response that has not been sent; one already sent is left alone. */
function markForClose(response: ServerResponse): void {
  if (!response.headersSent) response.setHeader('Connection', 'close')
}
