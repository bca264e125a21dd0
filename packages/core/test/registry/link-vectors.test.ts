import { readFileSync } from 'node:fs';
import {
  createLink,
  decodeSignedLink,
  encodeLink,
  encodeSignedLink,
  fromBase64Url,
  fromHex,
  fromUtf8,
  type LinkContent,
  linkHash,
  linkSigningMessage,
  signAndEncodeLink,
  toHex,
  utf8,
  verifyChain,
} from '@latchkey/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import {
  type RegistryLinkVector,
  type RegistryVectorFile,
  registryVectorText,
} from '../../vectors/generate-registry.js';
import { expectLatchkeyError } from '../vector-files.js';

/** Core's links against registry-links.json, which node:crypto and hand-written JSON produced (conventions §5). */

const text = readFileSync(new URL('../../vectors/registry-links.json', import.meta.url), 'utf8');
const file = JSON.parse(text) as RegistryVectorFile;
const seedOf = (name: string): Uint8Array => fromHex(file.keys.find((k) => k.name === name)?.seed ?? '');

function contentOf(v: RegistryLinkVector): LinkContent {
  const bytes = (field: string) => fromBase64Url(v.body[field] as string);
  switch (v.type) {
    case 'register-primary':
      return { type: v.type, identityKey: bytes('identityKey'), primaryKey: bytes('primaryKey') };
    case 'declare-group-key':
      return {
        type: v.type,
        epoch: v.body['epoch'] as number,
        groupKey: bytes('groupKey'),
        deviceListHash: bytes('deviceListHash'),
      };
    case 'transfer-primary':
      return { type: v.type, newPrimaryKey: bytes('newPrimaryKey') };
    default:
      return { type: v.type };
  }
}

function linkOf(v: RegistryLinkVector, index: number) {
  const previous = file.vectors[index - 1];
  return createLink(
    {
      account: fromBase64Url(file.account),
      seq: v.seq,
      ...(previous === undefined ? {} : { prev: fromHex(previous.linkHash) }),
      seen: { size: v.seenSize, root: fromBase64Url(v.seenRoot) },
      time: v.time,
    },
    contentOf(v),
  );
}

describe('registry-links.json', () => {
  it('is what generate-registry.ts computes now, and names its source', () => {
    expect(text).toBe(registryVectorText());
    expect(file.source).toMatch(/node:crypto/);
    expect(file.vectors.map((v) => v.type)).toEqual([
      'register-primary',
      'declare-group-key',
      'transfer-primary',
      'declare-group-key',
      'deregister-primary',
      'tombstone',
    ]);
  });

  it.each(file.vectors.map((v, i) => [v.name, v, i] as const))('%s: byte for byte', (_name, v, index) => {
    const link = linkOf(v, index);
    expect(fromUtf8(encodeLink(link))).toBe(v.link);
    expect(toHex(sha256(linkSigningMessage(link)))).toBe(v.signingMessageSha256);
    const signed = signAndEncodeLink(link, v.signers.map(seedOf));
    expect(fromUtf8(signed)).toBe(v.signedLink);
    expect(toHex(linkHash(signed))).toBe(v.linkHash);
    expect(encodeSignedLink(decodeSignedLink(utf8(v.signedLink)))).toEqual(signed);
  });

  it('the six links are a valid chain that ends tombstoned', () => {
    const result = verifyChain(file.vectors.map((v) => utf8(v.signedLink)));
    expect(result).toMatchObject({
      ok: true,
      state: { status: 'tombstoned', seq: 5, identityKey: file.keys[0]?.publicKey },
    });
  });

  it.each(file.mustFail)('refuses $name: $error', (v) => {
    expectLatchkeyError(() => decodeSignedLink(fromHex(v.hex)), v.error);
    expect(verifyChain([fromHex(v.hex)])).toMatchObject({ ok: false, code: v.error, at: 0 });
  });
});
