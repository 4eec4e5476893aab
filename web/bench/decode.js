// Decode time per quote of the JSON and the binary encoding, in Node and in
// headless Chromium, on frames recorded from a real gateway in the same run.
//
//   node web/bench/decode.js [--frames 400] [--rounds 15] [--sim-rate 20000] [--delta]
//
// Starts the gateway ($TICKGATE_BIN or target/debug/tickgate; use a release
// build for figures) on its simulator, records the same number of update
// frames from a JSON connection and from a binary one (subprotocol
// tickgate.v1.bin), each subscribed to the whole universe, then times what a
// client does with each frame: `JSON.parse` for JSON, `decode` of
// @msgpack/msgpack plus tickgate.js's `expandBinary` for binary. Each side is
// timed over `rounds` passes of all its frames, alternating, and the median
// pass is reported as µs per quote. The two connections conflate
// independently, so their frames hold different numbers of quotes: the
// figures are per quote, not per frame.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { decode } from '@msgpack/msgpack';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

import { BINARY_SUBPROTOCOL, expandBinary } from '../tickgate.js';
import { startGateway } from '../test-support/gateway.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../test-support/dashboard.js';

const { values: opts } = parseArgs({
  options: {
    frames: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '15' },
    'sim-rate': { type: 'string', default: '20000' },
    delta: { type: 'boolean', default: false },
  },
});
const FRAMES = Number(opts.frames);
const ROUNDS = Number(opts.rounds);

/** Records `count` update frames (and every frame before them) from one connection. */
async function record(url, binary) {
  const socket = binary ? new WebSocket(url, [BINARY_SUBPROTOCOL]) : new WebSocket(url);
  const frames = [];
  let updates = 0;
  let quotes = 0;
  let bytes = 0;
  const ids = new Map();
  await new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('open', () => {
      socket.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: universe, delta: opts.delta }));
    });
    socket.on('message', (data, isBinary) => {
      const frame = isBinary ? new Uint8Array(data) : data.toString();
      const message = isBinary ? expandBinary(decode(frame), ids) : JSON.parse(frame);
      frames.push(frame);
      bytes += frame.length;
      if (message.type === 'update') {
        updates += 1;
        quotes += message.quotes.length;
        if (updates >= FRAMES) {
          socket.close();
          resolve();
        }
      }
    });
  });
  return { frames, quotes, bytes };
}

/** The simulator's universe (feeds/src/universe.txt: symbols separated by white space). */
const universe = readFileSync(new URL('../../feeds/src/universe.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => !line.trim().startsWith('#'))
  .flatMap((line) => line.trim().split(/\s+/))
  .filter(Boolean)
  .slice(0, 1000);

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** µs per quote, median of `rounds` alternating passes, in this process. */
function timeNode(json, binary) {
  const passes = { json: [], binary: [] };
  let sink = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    let start = performance.now();
    for (const frame of json.frames) sink += JSON.parse(frame).type.length;
    passes.json.push(((performance.now() - start) * 1000) / json.quotes);
    start = performance.now();
    const ids = new Map();
    for (const frame of binary.frames) sink += expandBinary(decode(frame), ids).type.length;
    passes.binary.push(((performance.now() - start) * 1000) / binary.quotes);
  }
  if (sink === 0) throw new Error('nothing decoded');
  return { json: median(passes.json), binary: median(passes.binary) };
}

/** The same passes inside headless Chromium. */
async function timeChromium(json, binary) {
  const require = createRequire(import.meta.url);
  const msgpack = readFileSync(require.resolve('@msgpack/msgpack/dist.umd/msgpack.min.js'), 'utf8');
  const expand = `${expandBinary.toString()}\nwindow.expandBinary = expandBinary;`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.addScriptTag({ content: msgpack });
    // expandBinary needs TickgateError only for broken frames; recorded ones are whole.
    await page.addScriptTag({ content: `class TickgateError extends Error {}\nconst SCALED_PRICES = new Set(['bid','ask','last','open','high','low','prev_close','change','price']);\n${expand}` });
    return await page.evaluate(
      ({ jsonFrames, binaryFrames, jsonQuotes, binaryQuotes, rounds }) => {
        const bins = binaryFrames.map((b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
        const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
        const passes = { json: [], binary: [] };
        let sink = 0;
        for (let round = 0; round < rounds; round += 1) {
          let start = performance.now();
          for (const frame of jsonFrames) sink += JSON.parse(frame).type.length;
          passes.json.push(((performance.now() - start) * 1000) / jsonQuotes);
          start = performance.now();
          const ids = new Map();
          for (const frame of bins) sink += window.expandBinary(window.MessagePack.decode(frame), ids).type.length;
          passes.binary.push(((performance.now() - start) * 1000) / binaryQuotes);
        }
        if (sink === 0) throw new Error('nothing decoded');
        return { json: median(passes.json), binary: median(passes.binary) };
      },
      {
        jsonFrames: json.frames,
        binaryFrames: binary.frames.map((b) => Buffer.from(b).toString('base64')),
        jsonQuotes: json.quotes,
        binaryQuotes: binary.quotes,
        rounds: ROUNDS,
      },
    );
  } finally {
    await browser.close();
  }
}

const gateway = await startGateway({ args: ['--sim-rate', opts['sim-rate']] });
try {
  const [json, binary] = await Promise.all([record(gateway.wsUrl, false), record(gateway.wsUrl, true)]);
  const node = timeNode(json, binary);
  const browser = await timeChromium(json, binary);
  const row = (name, r) => `| ${name} | ${r.json.toFixed(3)} | ${r.binary.toFixed(3)} | ${(r.json / r.binary).toFixed(2)}× |`;
  console.log(`frames: ${json.frames.length} JSON (${json.quotes} quotes, ${(json.bytes / json.quotes).toFixed(1)} B/quote), ` +
    `${binary.frames.length} binary (${binary.quotes} quotes, ${(binary.bytes / binary.quotes).toFixed(1)} B/quote)${opts.delta ? ', delta' : ''}`);
  console.log('| runtime | JSON µs/quote | binary µs/quote | binary speed-up |');
  console.log('|---|---:|---:|---:|');
  console.log(row(`Node ${process.version}`, node));
  console.log(row('headless Chromium', browser));
} finally {
  await gateway.stop();
}
