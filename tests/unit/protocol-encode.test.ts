/**
 * A `res` built from a recorded response's JSON is the same text as one serialized from scratch,
 * so clients cannot tell which path answered them.
 */
import { describe, expect, it } from 'vitest';
import { encodeFail, encodeOk, encodeRecorded } from '../../runtime/protocol/encode.ts';

describe('encodeRecorded', () => {
  it.each([undefined, null, 0, 'x"y', { a: [1, { b: '\u2028' }] }])('matches encodeOk for data %j', (data) => {
    const json = JSON.stringify(data === undefined ? { ok: true } : { ok: true, data });
    expect(encodeRecorded('id "1"', json)).toBe(encodeOk('id "1"', data));
  });

  it('matches encodeFail', () => {
    const error = { code: 'handler_error' as const, message: 'no', detail: 'nope' };
    expect(encodeRecorded('r', JSON.stringify({ ok: false, error }))).toBe(encodeFail('r', error));
  });
});
