/**
 * HeldStream keeps a stream's frames behind the `res` of a request still writing into it, in order,
 * and lets through at once what an answered request already covers.
 */
import { describe, expect, it } from 'vitest';
import { HeldStream } from '../../runtime/actor/held-stream.ts';

function stream() {
  const sent: string[] = [];
  const held = new HeldStream<number>((a, b) => a - b);
  const send = (frame: string) => void sent.push(frame);
  return { held, sent, send };
}

describe('HeldStream', () => {
  it('sends at once while no request of the connection writes into the stream', () => {
    const { held, sent, send } = stream();
    held.offer(1, 'm1', true, send);
    expect(sent).toEqual(['m1']);
    expect(held.idle).toBe(true);
  });

  it('holds frames while a request is unanswered, and sends them in order once it is', () => {
    const { held, sent, send } = stream();
    held.hold();
    held.offer(5, 'm5 (the request\'s own, read from the store)', true, send);
    held.offer(null, 'gap', false, send);
    held.offer(6, 'm6', true, send);
    expect(sent).toEqual([]);
    held.release(5, send);
    expect(sent).toEqual(['m5 (the request\'s own, read from the store)', 'gap', 'm6']);
    expect(held.idle).toBe(true);
  });

  it('with a later request still unanswered, lets through only what the answered one covers', () => {
    const { held, sent, send } = stream();
    held.hold(); // request A
    held.hold(); // request B, behind A
    held.offer(3, 'm3', true, send);
    held.offer(4, 'm4', true, send);
    held.release(3, send); // A is answered: it wrote 3
    expect(sent).toEqual(['m3']); // 4 may be B's own: it waits for B's res
    held.offer(2, 'm2 (late duplicate)', true, send); // behind m4 in the queue: order is kept
    expect(sent).toEqual(['m3']);
    held.release(4, send);
    expect(sent).toEqual(['m3', 'm4', 'm2 (late duplicate)']);
  });

  it('sends a frame the last answer covers at once when nothing is queued', () => {
    const { held, sent, send } = stream();
    held.hold();
    held.hold();
    held.release(7, send);
    held.offer(6, 'm6', true, send);
    held.offer(7, 'm7', true, send);
    held.offer(8, 'm8', true, send);
    expect(sent).toEqual(['m6', 'm7']);
    held.release(undefined, send); // the second commit failed: nothing known, nothing held any more
    expect(sent).toEqual(['m6', 'm7', 'm8']);
  });
});
