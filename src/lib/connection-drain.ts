// Graceful hand-over of keep-alive connections when a worker stops (pm2 reload, SIGTERM).
//
// `http.Server#close` closes every idle keep-alive connection at once, which races requests a
// client is writing at that moment (ECONNRESET). Instead, once draining:
//  - the worker stops listening (in cluster mode the primary hands new connections to others);
//  - every response on an open connection carries `Connection: close`, so a client finishes
//    that exchange and opens its next request elsewhere: no race for busy connections;
//  - a connection with nothing in flight and no bytes moved for a whole check interval is
//    closed: it is idle, and a client that still holds it would reconnect.
// At the deadline every connection without a request in flight is closed, including one whose
// client is still sending its headers slowly (it would hold the server open until the header
// timeout, beyond the shutdown grace). Requests in flight are Fastify's to finish.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'

export class ConnectionDrain {
  private readonly inFlight = new Map<Socket, number>()
  private draining = false

  constructor(
    private readonly server: Server,
    private readonly idleCheckMs = 250,
  ) {
    const inFlight = this.inFlight
    // One listener function for every response (no closure per request): `this` is the response.
    const onResponseClose = function (this: ServerResponse) {
      const socket = this.req.socket
      const count = inFlight.get(socket)
      if (count !== undefined) inFlight.set(socket, count - 1)
    }
    server.on('connection', (socket: Socket) => {
      inFlight.set(socket, 0)
      socket.once('close', () => inFlight.delete(socket))
    })
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if (this.draining) response.setHeader('Connection', 'close')
      inFlight.set(request.socket, (inFlight.get(request.socket) ?? 0) + 1)
      response.once('close', onResponseClose)
    })
  }

  /** Resolves once every connection is gone, or at the deadline. */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true
    const lastSeen = new Map<Socket, number>()
    const closeIdle = () => {
      for (const [socket, requests] of this.inFlight) {
        const traffic = socket.bytesRead + socket.bytesWritten
        if (requests === 0 && lastSeen.get(socket) === traffic) socket.destroy()
        else lastSeen.set(socket, traffic)
      }
    }
    const interval = setInterval(closeIdle, this.idleCheckMs)
    const closeAllWithoutRequest = () => {
      for (const [socket, requests] of this.inFlight) if (requests === 0) socket.destroy()
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        closeAllWithoutRequest()
        resolve()
      }, timeoutMs)
      // The plain net.Server close: stop listening, keep the open connections for now.
      NetServer.prototype.close.call(this.server, () => {
        clearTimeout(timer)
        resolve()
      })
    }).finally(() => clearInterval(interval))
  }
}
