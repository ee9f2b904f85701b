/**
 * Room offsets (`<epoch>:<n>`) are issued by the server; one a client sends back that is not exactly
 * of that form is unusable (the client gets `gap` for the room), not read leniently.
 */
import { describe, expect, it } from 'vitest';
import { compareOffsets, parseOffset } from '../../runtime/store/offsets.ts';

describe('parseOffset', () => {
  it('reads an offset the server issued', () => {
    expect(parseOffset('lz3k9a1b2c:0')).toEqual({ epoch: 'lz3k9a1b2c', n: 0 });
    expect(parseOffset('lz3k9a1b2c:42')).toEqual({ epoch: 'lz3k9a1b2c', n: 42 });
  });

  it.each(['e:', 'e:1e1', 'e:+2', 'e:05', 'e: 5', 'e:0x10', 'e:3.5', 'e:-1', 'e:9007199254740993', ':5', 'e5', ''])('refuses %j', (off) => {
    expect(parseOffset(off)).toBeNull();
  });

  it('compares only offsets of one history', () => {
    expect(compareOffsets('e:3', 'e:5')).toBeLessThan(0);
    expect(compareOffsets('e:3', 'f:5')).toBeNull();
    expect(compareOffsets('e:05', 'e:5')).toBeNull();
  });
});
