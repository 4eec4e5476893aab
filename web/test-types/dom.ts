// Compiled by web/test/types.test.js with `tsc --strict --noEmit` and the DOM
// lib only: the browser's own WebSocket class must be accepted as-is.
import { decode } from '@msgpack/msgpack';
import { TickgateClient, type SymbolState, type TradingEvent } from '../tickgate.js';

const client = new TickgateClient('ws://127.0.0.1:8080/ws', { WebSocket });
const viaGlobal = new TickgateClient('ws://127.0.0.1:8080/ws', { WebSocket: globalThis.WebSocket });
client.on('quote', (state: SymbolState) => {
  const bid: number | undefined = state.quote.bid;
  const halted: boolean = state.trading === 'halted';
  console.log(state.symbol, bid, halted, state.tradingSince);
});
client.on('trading', (event: TradingEvent) => {
  const state: 'halted' | 'trading' = event.state;
  console.log(state, event.symbols.join(','), client.halted.has('AAPL'));
});
void client.connect().then(() => client.subscribe(['AAPL']));
viaGlobal.close();
// The binary encoding (tickgate.v1.bin), decoded with @msgpack/msgpack.
const binary = new TickgateClient('ws://127.0.0.1:8080/ws', { WebSocket, binary: { decode } });
void binary.connect();
