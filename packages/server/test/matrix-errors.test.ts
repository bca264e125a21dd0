import { LatchkeyError } from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { matrixErrorOf, redactAccessToken } from '../src/modules/backup/matrix-routes.js';

/**
 * The Matrix routes' error mapping where no route reaches it today: the backup routes are not
 * rate-limited, but the day a limit is added it must come out as the spec's M_LIMIT_EXCEEDED (with
 * retry_after_ms, which matrix-js-sdk's backup loop waits for). Everything else is tested over HTTP
 * with matrix-js-sdk in test/interop/matrix-client-backup.test.ts.
 */
describe('Matrix error mapping', () => {
  it('answers our rate limit as M_LIMIT_EXCEEDED with retry_after_ms', () => {
    expect(matrixErrorOf(new LatchkeyError('LK_RATE_LIMITED', 'Slow down.', { retryAfterSeconds: 30 }))).toEqual({
      status: 429,
      body: { errcode: 'M_LIMIT_EXCEEDED', error: 'Slow down.', retry_after_ms: 30_000 },
    });
    expect(matrixErrorOf(new LatchkeyError('LK_RATE_LIMITED')).body).toEqual({
      errcode: 'M_LIMIT_EXCEEDED',
      error: 'Too many attempts; wait and try again.',
    });
  });

  it('keeps current_version only when the service named one', () => {
    expect(matrixErrorOf(new LatchkeyError('LK_WRONG_BACKUP_VERSION', undefined, { currentVersion: '3' }))).toEqual({
      status: 403,
      body: { errcode: 'M_WRONG_ROOM_KEYS_VERSION', error: 'Wrong backup version.', current_version: '3' },
    });
    expect(matrixErrorOf(new LatchkeyError('LK_BACKUP_NOT_FOUND', undefined, { currentVersion: '3' }))).toEqual({
      status: 404,
      body: { errcode: 'M_NOT_FOUND', error: 'Unknown backup version.' },
    });
  });

  it('redacts every access_token in a logged URL and nothing else', () => {
    expect(redactAccessToken('/_matrix/client/v3/room_keys/version')).toBe('/_matrix/client/v3/room_keys/version');
    expect(redactAccessToken('/a?access_token=abc&version=1&ACCESS_TOKEN=def#x')).toBe(
      '/a?access_token=[redacted]&version=1&ACCESS_TOKEN=[redacted]#x',
    );
    expect(redactAccessToken('/a?my_access_token=abc')).toBe('/a?my_access_token=abc');
  });
});
