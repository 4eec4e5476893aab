// Compiled by web/test/types.test.js with `tsc --strict --noEmit`, Node's
// types and @types/ws, without the DOM lib: the `ws` package's class must be
// accepted as the WebSocket option, as docs/web.md tells Node 20 users.
import WebSocket from 'ws';
import { TickgateClient, type TickgateError } from '../tickgate.js';

const client = new TickgateClient('ws://127.0.0.1:8080/ws', { WebSocket, resume: true });
client.on('error', (err: TickgateError) => console.warn(err.code, err.message));
client.on('trading', ({ state, symbols }) => console.log(state, symbols));
const aapl = client.get('AAPL');
if (aapl?.trading === 'halted') console.log('AAPL halted since', aapl.tradingSince);
if (aapl?.stale) console.log('AAPL stale:', aapl.staleReason);
void client.connect();
