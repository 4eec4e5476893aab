// Must NOT compile (web/test/types.test.js checks that tsc refuses it): the
// option takes a WebSocket class, not any constructor.
import { TickgateClient } from '../tickgate.js';

class NotASocket {
  constructor(readonly url: string) {}
}
new TickgateClient('ws://127.0.0.1:8080/ws', { WebSocket: NotASocket });
