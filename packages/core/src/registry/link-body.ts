import {
  type DeclareGroupKeyBody,
  type EmptyBody,
  LINK_TYPES,
  type LinkBodies,
  type LinkType,
  MAX_GROUP_KEY_BYTES,
  type RegisterPrimaryBody,
  type TransferPrimaryBody,
} from './link.js';
import { badLink, base64UrlField, ed25519PublicKeyField, exactObject, safeInteger } from './strict-fields.js';

/** The strict parsers of link bodies, one per type: unknown fields are refused, sizes checked. */

function parseRegisterPrimary(value: unknown): RegisterPrimaryBody {
  const body = exactObject(value, 'body', ['identityKey', 'primaryKey']);
  const identityKey = ed25519PublicKeyField(body['identityKey'], 'body.identityKey');
  const primaryKey = ed25519PublicKeyField(body['primaryKey'], 'body.primaryKey');
  // The device's countersignature proves it holds a key other than the identity key; one key in both
  // roles would make the countersignature prove nothing.
  if (identityKey === primaryKey) throw badLink('body.primaryKey is the identity key');
  return { identityKey, primaryKey };
}

function parseDeclareGroupKey(value: unknown): DeclareGroupKeyBody {
  const body = exactObject(value, 'body', ['epoch', 'groupKey', 'deviceListHash']);
  return {
    epoch: safeInteger(body['epoch'], 'body.epoch', 1),
    groupKey: base64UrlField(body['groupKey'], 'body.groupKey', 1, MAX_GROUP_KEY_BYTES),
    deviceListHash: base64UrlField(body['deviceListHash'], 'body.deviceListHash', 32),
  };
}

function parseTransferPrimary(value: unknown): TransferPrimaryBody {
  const body = exactObject(value, 'body', ['newPrimaryKey']);
  return { newPrimaryKey: ed25519PublicKeyField(body['newPrimaryKey'], 'body.newPrimaryKey') };
}

function parseEmpty(value: unknown): EmptyBody {
  exactObject(value, 'body', []);
  return {};
}

const BODY_PARSERS: { [T in LinkType]: (value: unknown) => LinkBodies[T] } = {
  'register-primary': parseRegisterPrimary,
  'declare-group-key': parseDeclareGroupKey,
  'transfer-primary': parseTransferPrimary,
  'deregister-primary': parseEmpty,
  tombstone: parseEmpty,
};

/** True when `value` names one of the five link types. */
export function isLinkType(value: unknown): value is LinkType {
  return typeof value === 'string' && (LINK_TYPES as readonly string[]).includes(value);
}

/** Parses the body of a link of type `type`; throws `LK_REGISTRY_BAD_LINK` naming the field at fault. */
export function parseLinkBody<T extends LinkType>(type: T, value: unknown): LinkBodies[T] {
  return BODY_PARSERS[type](value);
}
