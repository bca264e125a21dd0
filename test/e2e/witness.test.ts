import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CosignatureVerifier,
  checkWitnessPolicy,
  consistencyProof,
  ed25519NoteSigner,
  encodeAddCheckpointRequest,
  formatSignerKey,
  leafHash,
  MemoryTree,
  type NoteSigner,
  openNote,
  parseCosignatureVerifierKey,
  parseNote,
  parseVerifierKey,
  signCheckpoint,
  utf8,
  type WitnessPolicy,
} from '@latchkey/core';
import { buildWitnessApp, type WitnessServer } from '@latchkey/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, MAIN, ROOT } from '../support/cli-process.js';
import { codeOf, latchkeyErrorOf } from '../support/errors.js';
import { freePort } from '../support/free-port.js';

/**
 * `latchkey witness serve` (issue 10, "Witnesses"): a C2SP tlog-witness over HTTP on 127.0.0.1. A log
 * built here (core's signed checkpoints over core's Merkle tree and its consistency proofs) submits
 * checkpoints; each refusal is asserted by status, LK_* code and bytes, each cosignature by core's
 * verifiers and witness policy. The race and the crash run the witness as real `latchkey` processes.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-witness-'));
  dirs.push(dir);
  return dir;
}

const ORIGIN = 'latchkey.test/log';
const WITNESS_NAME = 'witness.test/w1';

/** A log: its signing key, its vkey, and the tree its checkpoints commit to. */
interface TestLog {
  signer: NoteSigner;
  vkey: string;
  tree: MemoryTree;
}

function newLog(origin = ORIGIN, seed: Uint8Array = randomBytes(32)): TestLog {
  return { signer: ed25519NoteSigner(origin, seed), vkey: formatSignerKey(origin, seed).vkey, tree: new MemoryTree() };
}

function grow(tree: MemoryTree, size: number, salt = 'leaf'): void {
  while (tree.size < size) tree.append(leafHash(utf8(`${salt} ${tree.size}`)));
}

function checkpointOf(log: TestLog, size: number, origin = ORIGIN): string {
  return signCheckpoint({ origin, size, rootHash: log.tree.root(size), extensions: [] }, [log.signer]);
}

/** An add-checkpoint body from `oldSize` to `size` of the log's tree, with its consistency proof. */
function body(log: TestLog, oldSize: number, size: number, checkpoint = checkpointOf(log, size)): string {
  const proof = oldSize === 0 || oldSize >= size ? [] : consistencyProof(log.tree, oldSize, size);
  return encodeAddCheckpointRequest({ oldSize, proof, checkpoint });
}

interface Answer {
  status: number;
  contentType: string | null;
  text: string;
}

async function submit(url: string, requestBody: string): Promise<Answer> {
  const response = await fetch(`${url}/add-checkpoint`, { method: 'POST', body: requestBody });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

function codeIn(answer: Answer): string {
  return (JSON.parse(answer.text) as { code: string }).code;
}

/** The witness's cosignature verifier and a policy that requires it (one fresh cosignature). */
function policyFor(vkey: string): { witness: CosignatureVerifier; policy: WitnessPolicy } {
  const witness = parseCosignatureVerifierKey(vkey);
  return { witness, policy: { witnesses: [witness], quorum: 1, maxAgeSeconds: 600 } };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('latchkey witness: add-checkpoint over HTTP', () => {
  const log = newLog();
  let witness: WitnessServer;
  let url: string;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = join(tempDir(), 'data');
    witness = await buildWitnessApp({ dataDir, name: WITNESS_NAME, logs: [log.vkey], logger: false });
    url = await witness.app.listen({ host: '127.0.0.1', port: 0 });
    grow(log.tree, 60);
  });
  afterAll(async () => {
    await witness?.app.close();
  });

  it('cosigns a first checkpoint (old 0): a tlog-cosignature line that core verifies with its vkey', async () => {
    const checkpoint = checkpointOf(log, 10);
    const answer = await submit(url, body(log, 0, 10, checkpoint));
    expect(answer.status, answer.text).toBe(200);
    expect(answer.contentType).toBe('text/plain; charset=utf-8');
    expect(answer.text).toMatch(/^— witness\.test\/w1 [A-Za-z0-9+/]+={0,2}\n$/);
    const { witness: verifier, policy } = policyFor(witness.key.vkey);
    const opened = openNote(checkpoint + answer.text, [parseVerifierKey(log.vkey), verifier]);
    expect(opened.verified.map((s) => s.name)).toEqual([ORIGIN, WITNESS_NAME]);
    const counted = checkWitnessPolicy(parseNote(checkpoint + answer.text), policy, nowSeconds());
    expect(counted).toHaveLength(1);
    expect(Math.abs((counted[0]?.time ?? 0) - nowSeconds())).toBeLessThan(60);
  });

  it('cosigns a grown tree with a valid consistency proof, and the same checkpoint again', async () => {
    expect((await submit(url, body(log, 10, 25))).status).toBe(200);
    expect((await submit(url, body(log, 25, 25))).status).toBe(200);
  });

  it('409: an old size that is not the last one cosigned, answered with that size as text/x.tlog.size', async () => {
    for (const oldSize of [0, 10, 24]) {
      const answer = await submit(url, body(log, oldSize, 30));
      expect(answer.status).toBe(409);
      expect(answer.contentType).toBe('text/x.tlog.size');
      expect(answer.text).toBe('25\n');
    }
  });

  it('422: a rewritten history (a proof from another tree of 25), and another root for size 25', async () => {
    const forked = newLog(ORIGIN);
    forked.signer = log.signer;
    grow(forked.tree, 40, 'rewritten');
    const answer = await submit(url, body(forked, 25, 40));
    expect(answer.status).toBe(422);
    expect(codeIn(answer)).toBe('LK_LOG_WITNESS_INCONSISTENT');
    const sameSize = await submit(url, body(forked, 25, 25));
    expect([sameSize.status, codeIn(sameSize)]).toEqual([422, 'LK_LOG_WITNESS_INCONSISTENT']);
    // The true log's proof from 25, with one hash flipped, does not verify either.
    const proof = consistencyProof(log.tree, 25, 40);
    // A copy: the proof's hashes are the tree's own nodes, which the later tests still need intact.
    const first = Uint8Array.from(proof[0] as Uint8Array);
    first[0] = (first[0] as number) ^ 1;
    proof[0] = first;
    const flipped = encodeAddCheckpointRequest({ oldSize: 25, proof, checkpoint: checkpointOf(log, 40) });
    expect(codeIn(await submit(url, flipped))).toBe('LK_LOG_WITNESS_INCONSISTENT');
    // And nothing moved: the witness still holds 25.
    expect((await submit(url, body(log, 0, 40))).text).toBe('25\n');
  });

  it('404: a log it does not witness', async () => {
    const other = newLog('other.test/log');
    grow(other.tree, 5);
    const answer = await submit(url, body(other, 0, 5, checkpointOf(other, 5, 'other.test/log')));
    expect([answer.status, codeIn(answer)]).toEqual([404, 'LK_LOG_WITNESS_UNKNOWN_LOG']);
  });

  it("403: a checkpoint signed by another key under the log's name, or altered after signing", async () => {
    const forger = newLog(ORIGIN);
    forger.tree = log.tree;
    const wrongKey = await submit(url, body(forger, 25, 40));
    expect([wrongKey.status, codeIn(wrongKey)]).toEqual([403, 'LK_LOG_NOTE_UNVERIFIED']);
    const signed = checkpointOf(log, 40);
    const altered = signed.replace(/^(.*\n)40\n/, '$141\n');
    expect(altered).not.toBe(signed);
    const tampered = await submit(url, body(log, 25, 40, altered));
    expect([tampered.status, codeIn(tampered)]).toEqual([403, 'LK_LOG_NOTE_BAD_SIGNATURE']);
  });

  it('400: an old size above the checkpoint size, and a body that is not add-checkpoint', async () => {
    const above = await submit(url, body(log, 50, 40));
    expect([above.status, codeIn(above)]).toEqual([400, 'LK_LOG_WITNESS_OLD_SIZE_TOO_LARGE']);
    const garbage = await submit(url, 'old 25\nnot base64\n\nx');
    expect([garbage.status, codeIn(garbage)]).toEqual([400, 'LK_LOG_WITNESS_REQUEST_MALFORMED']);
  });

  it('hostile bodies: empty, not UTF-8, oversized, and the wrong method, each with its code', async () => {
    const post = async (payload?: Blob | string) => {
      const response = await fetch(`${url}/add-checkpoint`, {
        method: 'POST',
        ...(payload === undefined ? {} : { body: payload }),
      });
      return [response.status, ((await response.json()) as { code: string }).code];
    };
    expect(await post()).toEqual([400, 'LK_LOG_WITNESS_REQUEST_MALFORMED']);
    expect(await post(new Blob([Uint8Array.of(0x6f, 0x6c, 0x64, 0x20, 0x30, 0x0a, 0x0a, 0xff)]))).toEqual([
      400,
      'LK_LOG_WITNESS_REQUEST_MALFORMED',
    ]);
    expect(await post(`old 25\n\n${'x'.repeat(70 * 1024)}`)).toEqual([413, 'LK_BODY_TOO_LARGE']);
    const get = await fetch(`${url}/add-checkpoint`);
    expect([get.status, ((await get.json()) as { code: string }).code]).toEqual([404, 'LK_NOT_FOUND']);
    // Any media type is read as the raw body (tlog-witness names none): JSON's changes nothing.
    const typed = await fetch(`${url}/add-checkpoint`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(log, 10, 30),
    });
    expect([typed.status, await typed.text()]).toEqual([409, '25\n']);
  });

  it('20 concurrent submissions of different next checkpoints from one old size: one 200, nineteen 409', async () => {
    const sizes = Array.from({ length: 20 }, (_, i) => 26 + i);
    const answers = await Promise.all(sizes.map((size) => submit(url, body(log, 25, size))));
    const won = answers.filter((a) => a.status === 200);
    expect(won, JSON.stringify(answers.map((a) => [a.status, a.text]))).toHaveLength(1);
    const winner = sizes[answers.indexOf(won[0] as Answer)];
    for (const answer of answers.filter((a) => a.status !== 200)) {
      expect([answer.status, answer.text]).toEqual([409, `${winner}\n`]);
    }
  });

  it('keeps its key owner-only (0600) in a 0700 directory, and a bad --log vkey is LK_LOG_KEY_INVALID', async () => {
    expect((statSync(witness.key.file).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(dataDir).mode & 0o777).toString(8)).toBe('700');
    const code = await codeOf(buildWitnessApp({ dataDir, logs: [`${log.vkey}x`], logger: false }));
    expect(code).toBe('LK_LOG_KEY_INVALID');
  });
});

/** A `latchkey witness serve` process (spawned here: it must outlive cli-process's 30-second bound). */
interface WitnessProcess {
  child: ChildProcessWithoutNullStreams;
  url: string;
  output(): string;
  exited: Promise<void>;
}

async function startWitness(dataDir: string, logVkey: string): Promise<WitnessProcess> {
  const port = await freePort();
  const args = ['--import', 'tsx', MAIN, 'witness', 'serve', '--data', dataDir, '--name', WITNESS_NAME];
  args.push('--listen', `127.0.0.1:${port}`, '--log', logVkey, '--log-level', 'warn');
  const child = spawn(process.execPath, args, { cwd: ROOT });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  while (!output.includes(`listening on ${url}`)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the witness did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, url, output: () => output, exited };
}

async function kill(process: WitnessProcess): Promise<void> {
  process.child.kill('SIGKILL');
  await process.exited;
}

describe('latchkey witness serve: two processes on one state, and a SIGKILL', () => {
  const log = newLog();
  grow(log.tree, 40);
  let dataDir: string;
  let first: WitnessProcess;
  let second: WitnessProcess;

  beforeAll(async () => {
    dataDir = join(tempDir(), 'data');
    // Both start at once on an empty directory: one key must win, and both must use it.
    [first, second] = await Promise.all([startWitness(dataDir, log.vkey), startWitness(dataDir, log.vkey)]);
  }, 180_000);
  afterAll(async () => {
    for (const running of [first, second]) if (running !== undefined) await kill(running);
  });

  it('prints one vkey from both, and keeps the key file 0600', () => {
    const vkeys = [first, second].map((p) => /vkey: (\S+)/.exec(p.output())?.[1]);
    expect(vkeys[0]).toMatch(/^witness\.test\/w1\+[0-9a-f]{8}\+/);
    expect(vkeys[1]).toBe(vkeys[0]);
    expect((statSync(join(dataDir, 'witness.key')).mode & 0o777).toString(8)).toBe('600');
  });

  it('`latchkey witness key` prints the vkey the running witnesses print; a fresh directory needs --name', async () => {
    const home = tempDir();
    const key = await cli(['witness', 'key', '--data', dataDir], home);
    expect(key.code, key.stderr).toBe(0);
    expect(first.output()).toContain(`vkey: ${key.stdout}`);
    const fresh = await cli(['witness', 'key', '--data', join(tempDir(), 'none'), '--json'], home);
    expect(fresh.code).toBe(1);
    expect((JSON.parse(fresh.stdout) as { error: { code: string } }).error.code).toBe('LK_CONFIG_INVALID');
    const noLog = await cli(['witness', 'serve', '--data', dataDir, '--json'], home);
    expect(noLog.code).toBe(2);
    expect((JSON.parse(noLog.stdout) as { error: { code: string } }).error.code).toBe('LK_USAGE');
  }, 90_000);

  it('20 concurrent submissions from old 10 across both processes: exactly one wins', async () => {
    expect((await submit(first.url, body(log, 0, 10))).status).toBe(200);
    const sizes = Array.from({ length: 20 }, (_, i) => 11 + i);
    const answers = await Promise.all(
      sizes.map((size, i) => submit((i % 2 === 0 ? first : second).url, body(log, 10, size))),
    );
    const statuses = answers.map((a) => a.status);
    expect(
      statuses.filter((s) => s === 200),
      JSON.stringify(statuses),
    ).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
  });

  it('after SIGKILL and a restart it keeps what it cosigned: an inconsistent checkpoint is still refused', async () => {
    // Learn the size held now (409 answers it), then cosign one more step so the last write is fresh.
    const held = Number((await submit(first.url, body(log, 0, 40))).text);
    expect(held).toBeGreaterThan(10);
    expect((await submit(first.url, body(log, held, 35))).status).toBe(200);
    await Promise.all([kill(first), kill(second)]);

    const restarted = await startWitness(dataDir, log.vkey);
    first = restarted;
    second = restarted;
    const answer = await submit(restarted.url, body(log, 0, 40));
    expect([answer.status, answer.text]).toEqual([409, '35\n']);
    const forked = newLog(ORIGIN);
    forked.signer = log.signer;
    grow(forked.tree, 40, 'rewritten');
    const rewritten = await submit(restarted.url, body(forked, 35, 40));
    expect([rewritten.status, codeIn(rewritten)]).toEqual([422, 'LK_LOG_WITNESS_INCONSISTENT']);
    expect((await submit(restarted.url, body(log, 35, 40))).status).toBe(200);
  }, 180_000);

  it("a client's policy that requires this witness accepts its cosignature and refuses without it", async () => {
    const vkey = /vkey: (\S+)/.exec(first.output())?.[1] as string;
    const { policy } = policyFor(vkey);
    grow(log.tree, 45);
    const checkpoint = checkpointOf(log, 45);
    const cosigned = await submit(first.url, body(log, 40, 45, checkpoint));
    expect(cosigned.status).toBe(200);
    expect(checkWitnessPolicy(parseNote(checkpoint + cosigned.text), policy, nowSeconds())).toHaveLength(1);

    // The server shows a rewritten tree of 50: the witness refuses it, so there is no cosignature to
    // show, and the client's policy refuses the checkpoint the server publishes without one.
    const forked = newLog(ORIGIN);
    forked.signer = log.signer;
    grow(forked.tree, 50, 'rewritten');
    const forkedCheckpoint = checkpointOf(forked, 50);
    const refused = await submit(first.url, body(forked, 45, 50, forkedCheckpoint));
    expect(refused.status).toBe(422);
    const unmet = latchkeyErrorOf(() => checkWitnessPolicy(parseNote(forkedCheckpoint), policy, nowSeconds()));
    expect(unmet.code).toBe('LK_LOG_WITNESS_POLICY_UNMET');
    // Nor does the earlier cosignature, moved onto the forked checkpoint, count: it does not verify.
    const moved = `${forkedCheckpoint}${cosigned.text}`;
    const forged = latchkeyErrorOf(() => checkWitnessPolicy(parseNote(moved), policy, nowSeconds()));
    expect(forged.code).toBe('LK_LOG_NOTE_BAD_SIGNATURE');
  });
});
