// Starts and stops a real tickgate gateway for the web tests.
//
// The binary comes from $TICKGATE_BIN (default target/debug/tickgate under
// the repo root). It is started on port 0 and prints one JSON line,
// {"event":"listening","client":"127.0.0.1:PORT","admin":"127.0.0.1:PORT"},
// which tells us where it listens. Every process started here is stopped by
// PID: by the test's own teardown, and as a last resort when Node exits.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function gatewayBinary() {
  const configured = process.env.TICKGATE_BIN;
  if (configured) return isAbsolute(configured) ? configured : join(REPO_ROOT, configured);
  return join(REPO_ROOT, 'target', 'debug', 'tickgate');
}

const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts a gateway. `port` 0 picks a free one; pass the port of a stopped
 * gateway to restart it on the same address. `args` are extra flags.
 */
export async function startGateway({ port = 0, adminPort = 0, args = ['--sim-rate', '2000'], attempts = 20 } = {}) {
  const bin = gatewayBinary();
  if (!existsSync(bin)) throw new Error(`gateway binary not found at ${bin}: run \`cargo build\` or set TICKGATE_BIN`);
  let lastError;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await startOnce(bin, port, adminPort, args);
    } catch (err) {
      lastError = err;
      // Restarting on a fixed port can race the old socket's release.
      if (port === 0) break;
      await sleep(250);
    }
  }
  throw lastError;
}

function startOnce(bin, port, adminPort, args) {
  const child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  running.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  exited.then(() => running.delete(child));

  return new Promise((resolveStart, rejectStart) => {
    let buffered = '';
    let settled = false;
    const fail = (message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
      rejectStart(new Error(`${message}\n--- gateway stderr ---\n${stderr}`));
    };
    const timer = setTimeout(() => fail('gateway did not print its listening line within 20 s'), 20_000);
    child.once('exit', (code, signal) => fail(`gateway exited early (code ${code}, signal ${signal})`));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      if (settled) return; // keep draining so the pipe never fills
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        let event;
        try {
          event = JSON.parse(line);
        } catch {
          continue;
        }
        if (event?.event !== 'listening') continue;
        settled = true;
        clearTimeout(timer);
        const client = event.client;
        const clientPort = Number(client.slice(client.lastIndexOf(':') + 1));
        const admin = event.admin;
        resolveStart({
          pid: child.pid,
          process: child,
          port: clientPort,
          adminPort: Number(admin.slice(admin.lastIndexOf(':') + 1)),
          httpUrl: `http://${client}`,
          wsUrl: `ws://${client}/ws`,
          adminUrl: `http://${admin}`,
          exited,
          stderr: () => stderr,
          stop: () => stopProcess(child, exited),
          /** The admin listener's `GET /connections`: one row per client connection. */
          connections: async () => (await fetch(`http://${admin}/connections`)).json(),
          /**
           * SIGSTOP. kill() returns once the signal is queued, and a thread
           * running on another core may still serve a request before it
           * stops: the promise resolves once every thread of the process is
           * stopped (state `T` in /proc), so what a test sends after it
           * awaits this is not answered until `resume`.
           */
          pause: async () => {
            process.kill(child.pid, 'SIGSTOP');
            await waitFor(() => allThreadsStopped(child.pid), { what: `gateway ${child.pid} stopped` });
          },
          resume: () => process.kill(child.pid, 'SIGCONT'),
        });
        return;
      }
    });
  });
}

/** SIGTERM (the gateway closes clients with 1001), SIGKILL after 5 s. */
async function stopProcess(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  try {
    process.kill(child.pid, 'SIGCONT'); // a paused gateway cannot handle SIGTERM
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return exited;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, 5000);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/** Writes a TOML config to a fresh temp file for `--config`; returns its path. */
export function writeConfig(toml) {
  const path = join(mkdtempSync(join(tmpdir(), 'tickgate-web-test-')), 'tickgate.toml');
  writeFileSync(path, toml);
  return path;
}

/** Whether every thread of process `pid` is stopped (Linux /proc). */
function allThreadsStopped(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // The state follows the command name, which is in parentheses.
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    });
  } catch {
    return false;
  }
}

export function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

/** Polls `check` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(check, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
