/**
 * @module actor/connection
 * The session actor: one per WebSocket connection. It reads frames, runs the session's requests one
 * at a time through the pipeline, and delivers direct and room messages in order, each once.
 */
import type { Socket } from 'node:net';
import { WebSocket as WebSocketClass } from 'ws';
import type { WebSocket } from 'ws';
import type { Hook } from '../app/define-app.ts';
import type { CloseName } from '../errors.ts';
import { CloseCodes, wireError } from '../errors.ts';
import type { Bus } from '../ports/bus.ts';
import { channels } from '../ports/bus.ts';
import type { DirectMessage, RoomMessage } from '../ports/messages.ts';
import { DECIDE, runStages } from '../pipeline/compose.ts';
import { handlerContext } from '../pipeline/context.ts';
import { unavailable } from '../pipeline/stages/answers.ts';
import { commit } from '../pipeline/stages/commit.ts';
import { prefetchLimit } from '../pipeline/stages/rate-limit.ts';
import { checkReturned } from '../pipeline/stages/result-check.ts';
import type { Answer, CommittedResult, PipelineDeps, PipelineRequest, SessionView } from '../pipeline/types.ts';
import { decodeFrame } from '../protocol/decode.ts';
import { encodeError, encodeFail, encodeFrame, encodeOk, encodeRecorded, PONG } from '../protocol/encode.ts';
import type { HelloFrame, ReqFrame } from '../protocol/frames.ts';
import { hasRoom, roomOffset } from '../protocol/room-record.ts';
import type { LocalRouter, Routable } from '../server/local-router.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { compareOffsets } from '../store/offsets.ts';
import { type Opened, openSession } from './open-session.ts';
import { DirectFeed, type FeedSink, RoomFeed } from './feeds.ts';
import { HeldStream, type Send } from './held-stream.ts';
import { RecentIds } from './recent-ids.ts';

export interface ConnectionDeps extends PipelineDeps {
  bus: Bus;
  router: LocalRouter;
  metrics: Metrics;
}

type Phase = 'hello' | 'opening' | 'open' | 'closed';
type Job = { kind: 'req'; req: PipelineRequest; receivedAt: number } | { kind: 'hook'; hook: Hook<unknown> } | { kind: 'bad'; message: string };

const EMPTY_READS = Object.freeze({}) as Record<string, never>;
const ANSWERED = Promise.resolve();

/** A decided request waiting for its turn to be answered; `answer` is null while it commits. */
interface AnswerSlot {
  req: PipelineRequest;
  receivedAt: number;
  answer: Answer | null;
  /** The streams of this connection the request writes into, held until its `res` is out. */
  writes?: Writes;
}

/**
 * The streams of this connection a request writes into or opens: rooms it broadcasts to or joins,
 * its own outbox. Their frames wait for its `res` (a room's first messages must not overtake the
 * `res` of the join that let them in).
 */
interface Writes {
  rooms: string[];
  self: boolean;
}

const compareSeqs = (a: number, b: number): number => a - b;

function lastWritten<M>(messages: M[] | undefined, match: (m: M) => boolean): M | undefined {
  if (!messages) return undefined;
  for (let i = messages.length - 1; i >= 0; i--) if (match(messages[i]!)) return messages[i];
  return undefined;
}

/** Encoded `msg` frames of room messages, shared by every local member; gone with the message. */
const encodedRoomFrames = new WeakMap<RoomMessage, string>();

function uncork(conn: Connection, socket: Socket): void {
  conn.corked = false;
  socket.uncork();
}

/** ws closes an oversized frame with 1009 but no reason; every close should say why. Shared, not per socket. */
function closeWithReason(this: WebSocket, code?: number, reason?: string | Buffer): void {
  WebSocketClass.prototype.close.call(this, code, reason ?? (code === CloseCodes.tooLarge.code ? CloseCodes.tooLarge.reason : undefined));
}
const INTERNAL: Answer = { kind: 'res', response: { ok: false, error: wireError('internal', 'internal error') } };

export class Connection implements Routable, FeedSink {
  private phase: Phase = 'hello';
  private session: (SessionView & { token: string }) | null = null;
  private direct: DirectFeed | null = null;
  private readonly roomFeeds = new Map<string, RoomFeed>();
  /** Streams a request of this connection is writing into (see held-stream.ts); absent when none. */
  private directHold: HeldStream<number> | null = null;
  private readonly roomHolds = new Map<string, HeldStream<string>>();
  private readonly sendHeld: Send = (frame, isMsg) => (isMsg ? this.sendMsg(frame) : this.sendText(frame));
  private readonly mailbox: Job[] = [];
  private running = false;
  /** Requests decided and not yet answered, oldest first: answers leave in this order. */
  private answering: AnswerSlot[] = [];
  /** An answer at the front is being finished asynchronously (a join): the rest wait. */
  private finishing = false;
  private answeredWaiters: (() => void)[] = [];
  private commitsInFlight = 0;
  /** onClosed ran: what the connection held is freed (it runs once, whichever comes first). */
  private freed = false;
  /** The request being decided right now: a copy of it arriving meanwhile is a re-send. */
  private decidingId: string | null = null;
  private reloadNeeded = false;
  private reading = true;
  private strikes = 0;
  private helloTimer: NodeJS.Timeout | null;
  private idleWaiters: (() => void)[] = [];
  /**
   * Heartbeat ticks since the last sign of life from the peer (pong or any frame). A counter, not
   * a timestamp: every frame resets it, and reading a clock per frame costs more.
   */
  private silentTicks = 0;
  /** Resolves once `hello` has been decided (open or closed), for drain. */
  private opened: Promise<void>;
  private markOpened!: () => void;

  constructor(private readonly ws: WebSocket, readonly ip: string, private readonly deps: ConnectionDeps) {
    this.opened = new Promise((resolve) => (this.markOpened = resolve));
    this.helloTimer = setTimeout(() => this.closeWith('policy', 'no hello in time'), deps.config.helloTimeoutMs);
    ws.on('pong', () => (this.silentTicks = 0));
    ws.close = closeWithReason;
  }

  /** A method, not a field read, so TypeScript does not narrow it across awaits. */
  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  get sessionId(): string {
    return this.session?.id ?? '';
  }

  get epoch(): number {
    return this.session?.epoch ?? 0;
  }

  /** One frame from the socket. Nothing a client sends may throw out of here. */
  onFrame(data: unknown): void {
    if (!this.reading || this.phase === 'closed') return;
    this.silentTicks = 0;
    if (typeof data !== 'string') return this.badFrame('binary frames are not accepted; send JSON text frames');
    const decoded = decodeFrame(data);
    if (!decoded.ok) return this.badFrame(decoded.message);
    const frame = decoded.frame;
    switch (frame.t) {
      case 'ping':
        this.sendText(PONG);
        return;
      case 'hello':
        if (this.phase !== 'hello') return this.badFrame('hello was already sent');
        this.phase = 'opening';
        if (this.helloTimer) clearTimeout(this.helloTimer);
        this.helloTimer = null;
        this.open(frame).catch((err) => {
          this.deps.log.error({ err }, 'hello failed');
          this.closeWith('tryAgainLater', 'store unavailable');
        });
        return;
      case 'req': {
        if (this.phase === 'hello') return this.badFrame('req before hello');
        const req: PipelineRequest = { frame, session: this.session!, ip: this.ip };
        // The limiter does not depend on state: ask it now, so its round trip overlaps earlier
        // requests. Not for an id that may be a re-send (dedupe answers those without tokens).
        if (this.deps.requestsLimited && this.session && !this.session.recorded.has(frame.id) && frame.id !== this.decidingId && this.mailbox.length < 64 && !this.mailbox.some((j) => j.kind === 'req' && j.req.frame.id === frame.id)) {
          prefetchLimit(req, this.deps);
        }
        this.mailbox.push({ kind: 'req', req, receivedAt: performance.now() });
        this.runMailbox();
        return;
      }
      case 'ack':
        if (this.phase === 'hello') return this.badFrame('ack before hello');
        if (this.session) this.deps.store.ack(this.session.id, frame.seq, this.session.epoch).catch(() => {});
        return;
    }
  }

  /** The socket closed (for any reason): free what it held. */
  onClosed(): void {
    if (this.freed || (this.phase === 'closed' && this.session === null)) return;
    this.freed = true;
    const wasOpen = this.phase === 'open' || this.phase === 'opening';
    this.phase = 'closed';
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.mailbox.length = 0;
    this.resolveIdle();
    this.markOpened();
    const session = this.session;
    if (!session) return;
    this.direct?.close();
    for (const feed of this.roomFeeds.values()) feed.close();
    this.deps.router.removeSession(this);
    for (const room of Object.keys(session.rooms)) {
      this.deps.router.leaveRoom(room, this);
      this.deps.presence.remove(room, session.id, session.epoch).catch((err) => this.deps.log.warn({ err }, 'presence remove failed'));
    }
    if (wasOpen) void this.disconnect(session);
  }

  /**
   * Heartbeat tick (every HEARTBEAT_MS): end a peer that has not answered the ping sent two
   * intervals ago (nor sent anything since), else ping again.
   */
  heartbeat(): void {
    if (this.isClosed()) return;
    // silent through two ticks: nothing since the ping of two ticks ago (or since the connection opened)
    if (this.silentTicks >= 2) {
      // Free the session's rooms and presence now, not when the close event comes round: the peer
      // (and anyone it told) may ask about it before this process has handled its own close.
      this.onClosed();
      this.ws.terminate();
      return;
    }
    this.silentTicks++;
    try {
      this.ws.ping();
    } catch {
      // the socket is closing; its close event frees it
    }
  }

  /** Drain: stop reading, finish and answer what was received, then close 1012. */
  async drain(): Promise<void> {
    this.reading = false;
    // A hello in progress finishes first, so requests queued behind it are answered too.
    if (this.phase === 'opening') await this.opened;
    if (this.phase === 'open') await this.idle();
    this.closeWith('draining');
  }

  takenOver(epoch: number): void {
    if (!this.session || epoch <= this.session.epoch || this.phase === 'closed') return;
    this.closeWith('takenOver');
  }

  resync(): void {
    this.direct?.resync();
    for (const feed of this.roomFeeds.values()) feed.resync();
  }

  offerDirect(message: DirectMessage): void {
    this.direct?.offer(message);
  }

  offerRoom(message: RoomMessage): void {
    this.roomFeeds.get(message.room)?.offer(message);
  }

  // ---- hello, resume and replay ----

  private async open(hello: HelloFrame): Promise<void> {
    const { deps } = this;
    const opened = await openSession(hello, {
      store: deps.store,
      clock: deps.clock,
      instanceId: deps.config.instanceId,
      authSecret: deps.config.authSecret,
      initialState: () => deps.app.initialState(),
    });
    if (opened.outcome) deps.metrics.session(opened.outcome);
    if (opened.kind === 'refuse') return this.closeWith(opened.close, opened.why);
    if (this.isClosed()) {
      await deps.store.release(opened.record.id, opened.epoch);
      return;
    }
    const { record } = opened;
    this.session = {
      id: record.id,
      userId: record.userId,
      epoch: opened.epoch,
      state: record.state,
      rooms: { ...record.rooms },
      token: opened.token,
      recorded: new RecentIds(opened.recentRequestIds, 2 * deps.config.dedupeMax),
    };
    this.direct = new DirectFeed(deps.store, this);
    for (const room of Object.keys(record.rooms)) this.roomFeeds.set(room, new RoomFeed(deps.store, this, room));
    // Subscribe before replaying, so nothing falls between replay and live; feeds buffer meanwhile.
    await Promise.all([deps.router.addSession(this), ...Object.keys(record.rooms).map((room) => deps.router.joinRoom(room, this))]);
    deps.bus.publish(channels.session(record.id), { kind: 'takeover', session: record.id, epoch: opened.epoch }).catch(() => {});
    if (this.isClosed()) return;
    this.sendText(encodeFrame({ t: 'welcome', session: record.id, token: opened.token, resumed: opened.resumed, seq: record.lastSeq, instance: deps.config.instanceId }));
    await this.replay(hello, opened);
    if (this.isClosed()) return;
    for (const room of Object.keys(record.rooms)) {
      deps.presence.add(room, record.id, record.userId, deps.config.instanceId, opened.epoch).catch((err) => deps.log.warn({ err }, 'presence add failed'));
    }
    const hook = opened.resumed ? deps.app.onResume : deps.app.onConnect;
    if (hook) this.mailbox.unshift({ kind: 'hook', hook });
    this.phase = 'open';
    this.markOpened();
    deps.log.debug({ session: record.id, resumed: opened.resumed }, 'session open');
    this.runMailbox();
  }

  /** Direct messages first, then each room, each with `gap` first where history does not reach. */
  private async replay(hello: HelloFrame, opened: Opened): Promise<void> {
    const { store } = this.deps;
    const session = this.session!;
    const afterSeq = hello.seq ?? 0;
    const rooms = Object.entries(session.rooms).map(([room, joinedAt]) => ({ room, after: roomOffset(hello.rooms, room) ?? joinedAt }));
    const [direct, ...roomReplays] = await Promise.all([store.readOutbox(session.id, afterSeq), ...rooms.map((r) => store.readRoom(r.room, r.after))]);
    if (this.isClosed()) return;
    this.deps.metrics.replayed('direct', direct!.messages.length);
    this.deps.metrics.replayed('room', roomReplays.reduce((sum, r) => sum + r.messages.length, 0));
    if (direct!.gap) this.sendText(encodeFrame({ t: 'gap' }));
    for (const m of direct!.messages) this.sendMsg(encodeFrame({ t: 'msg', route: m.route, data: m.data, seq: m.seq }));
    const directPosition = direct!.messages.at(-1)?.seq ?? (direct!.gap ? opened.record.lastSeq : afterSeq);
    const roomPositions: (string | null)[] = [];
    rooms.forEach(({ room, after }, i) => {
      const replay = roomReplays[i]!;
      if (replay.gap) this.sendText(encodeFrame({ t: 'gap', room }));
      for (const m of replay.messages) this.sendMsg(encodeFrame({ t: 'msg', route: m.route, data: m.data, room, off: m.off }));
      roomPositions.push(replay.messages.at(-1)?.off ?? (replay.gap ? null : after));
    });
    // Live traffic only after the whole replay, in the order SPEC gives.
    this.direct!.start(directPosition);
    rooms.forEach(({ room }, i) => this.roomFeeds.get(room)?.start(roomPositions[i]!));
  }

  // ---- FeedSink: where the feeds deliver ----

  sendDirect(m: DirectMessage): void {
    const frame = encodeFrame({ t: 'msg', route: m.route, data: m.data, seq: m.seq });
    if (this.directHold) this.directHold.offer(m.seq, frame, true, this.sendHeld);
    else this.sendMsg(frame);
  }

  sendRoom(m: RoomMessage): void {
    // One room message reaches every local member as the same object: encode it once for all.
    let frame = encodedRoomFrames.get(m);
    if (frame === undefined) encodedRoomFrames.set(m, (frame = encodeFrame({ t: 'msg', route: m.route, data: m.data, room: m.room, off: m.off })));
    const hold = this.roomHolds.get(m.room);
    if (hold) hold.offer(m.off, frame, true, this.sendHeld);
    else this.sendMsg(frame);
  }

  sendGap(room?: string): void {
    const frame = encodeFrame(room === undefined ? { t: 'gap' } : { t: 'gap', room });
    const hold = room === undefined ? this.directHold : this.roomHolds.get(room);
    if (hold) hold.offer(null, frame, false, this.sendHeld);
    else this.sendText(frame);
  }

  feedFailed(err: unknown, room?: string): void {
    this.deps.log.warn({ err, room }, 'reading the store for a feed failed; retrying');
  }

  // ---- the mailbox: requests decided one at a time, in arrival order ----
  //
  // Request N+1 is decided (its handler run) on the state request N left, as soon as N's handler
  // has run: N's commit need not have come back, and a request that arrives while earlier ones
  // commit is decided at once too. Commits go out in order on one Redis connection, so the ones
  // that happen are always a prefix; each `res` still waits for its own commit, and answers leave
  // in order (the `answering` queue). A join or leave is a barrier (later handlers must see the new
  // rooms), a re-sent id waits for the commits in flight, and a commit whose outcome is unknown
  // makes the actor reload the session from the store before it decides anything else. While every
  // stage is synchronous (the common case) a request is decided without a promise of its own.

  private runMailbox(): void {
    if (this.running || this.phase !== 'open') return;
    this.running = true;
    this.processAll();
  }

  private processAll(): void {
    while (this.mailbox.length > 0 && this.phase === 'open') {
      const job = this.mailbox.shift()!;
      let waiting: Promise<void> | void = undefined;
      try {
        if (job.kind === 'req') waiting = this.decide(job.req, job.receivedAt);
        else if (job.kind === 'hook') waiting = this.whenAnswered().then(() => this.processHook(job.hook));
        else waiting = this.badFrameInTurn(job.message);
      } catch (err) {
        this.deps.log.error({ err }, 'mailbox failed');
      }
      if (waiting) {
        waiting.catch((err: unknown) => this.deps.log.error({ err }, 'mailbox failed')).then(() => this.processAll());
        return;
      }
    }
    this.running = false;
    this.checkIdle();
  }

  /** Runs the deciding stages; returns a promise only when the next request must wait for it. */
  private decide(req: PipelineRequest, receivedAt: number): Promise<void> | void {
    const session = this.session!;
    req.session = session; // a request that arrived during hello had no session yet
    this.decidingId = req.frame.id;
    this.deps.metrics.messageReceived(req.frame.route);
    if (this.reloadNeeded) return this.decideWhenAnswered(req, receivedAt);
    if (session.recorded.has(req.frame.id)) {
      if (this.commitsInFlight > 0) return this.decideWhenAnswered(req, receivedAt);
    } else req.unseenId = true; // decided at once: the dedupe stage need not look again
    return this.runDeciding(req, receivedAt);
  }

  /** A re-sent id (its record may be in a commit still in flight) or a reload waits for every answer first. */
  private async decideWhenAnswered(req: PipelineRequest, receivedAt: number): Promise<void> {
    await this.whenAnswered();
    if (this.isClosed()) return;
    if (this.reloadNeeded) {
      const reloaded = await this.reload();
      // the store is away: try again later; the store no longer has the session: see `finish`
      if (reloaded !== 'ok') return this.answerInOrder(req, receivedAt, reloaded === 'lost' ? { kind: 'lost' } : unavailable());
    }
    await this.runDeciding(req, receivedAt);
  }

  private runDeciding(req: PipelineRequest, receivedAt: number): Promise<void> | void {
    let answer: ReturnType<typeof runStages>;
    try {
      answer = runStages(req, this.deps, DECIDE);
    } catch (err) {
      answer = this.pipelineThrew(req, err);
    }
    if (answer instanceof Promise) {
      return answer.then(
        (a) => this.decided(req, receivedAt, a),
        (err: unknown) => this.decided(req, receivedAt, this.pipelineThrew(req, err)),
      );
    }
    return this.decided(req, receivedAt, answer);
  }

  private pipelineThrew(req: PipelineRequest, err: unknown): Answer {
    this.deps.log.error({ err, route: req.frame.route }, 'pipeline threw');
    return INTERNAL;
  }

  /** The deciding stages are done: answer now, or commit. */
  private decided(req: PipelineRequest, receivedAt: number, answer: Answer | undefined): Promise<void> | void {
    if (answer) {
      this.answerInOrder(req, receivedAt, answer);
      // a strike (rate_limited) counts towards ABUSE_MAX_STRIKES when it is sent: decide nothing more until then
      return answer.kind === 'res' && answer.strike ? this.whenAnswered() : undefined;
    }
    // The next request builds on this one's outcome at once.
    if (!req.rejected && !req.route?.readOnly && req.result?.state !== undefined) this.session!.state = req.result.state;
    const slot = this.queueAnswer(req, receivedAt);
    slot.writes = this.holdWrites(req);
    this.commitsInFlight++;
    let committing: Promise<Answer | undefined>;
    try {
      committing = Promise.resolve(commit(req, this.deps));
    } catch (err) {
      committing = Promise.reject(err);
    }
    committing.then(
      (a) => {
        this.commitsInFlight--;
        // known now, not when the answer's turn comes: the next request must not be decided on guesswork
        if (req.outcomeUnknown) this.reloadNeeded = true;
        this.settle(slot, a ?? INTERNAL);
      },
      (err: unknown) => {
        this.commitsInFlight--;
        this.deps.log.error({ err }, 'commit stage threw');
        this.settle(slot, INTERNAL);
      },
    );
    // a barrier: this is the newest answer, so "all answered" is "this one answered"
    const effects = req.effects;
    if (effects && (effects.joins.length > 0 || effects.leaves.length > 0 || effects.close)) return this.whenAnswered();
  }

  /** Holds the streams of this connection that the request writes into (see held-stream.ts). */
  private holdWrites(req: PipelineRequest): Writes | undefined {
    const effects = req.rejected ? undefined : req.effects;
    if (!effects || effects.sends.length + effects.broadcasts.length + effects.joins.length === 0) return undefined;
    const rooms = [...new Set([...effects.broadcasts.map((b) => b.room), ...effects.joins])];
    const self = effects.sends.some((m) => m.to === this.session!.id);
    if (rooms.length === 0 && !self) return undefined;
    for (const room of rooms) {
      let hold = this.roomHolds.get(room);
      if (!hold) this.roomHolds.set(room, (hold = new HeldStream(compareOffsets)));
      hold.hold();
    }
    if (self) (this.directHold ??= new HeldStream(compareSeqs)).hold();
    return { rooms, self };
  }

  /** The request's `res` is out: what it wrote (`commit`; none if it failed) and everything before may follow. */
  private releaseWrites(writes: Writes, commit: CommittedResult | undefined): void {
    for (const room of writes.rooms) {
      const hold = this.roomHolds.get(room);
      if (!hold) continue;
      // a commit's offsets in one room increase: its last is its newest
      hold.release(lastWritten(commit?.broadcast, (m) => m.room === room)?.off, this.sendHeld);
      if (hold.idle) this.roomHolds.delete(room);
    }
    if (writes.self && this.directHold) {
      this.directHold.release(lastWritten(commit?.sent, (m) => m.to === this.session!.id)?.seq, this.sendHeld);
      if (this.directHold.idle) this.directHold = null;
    }
  }

  /** Queues `answer` to be sent once every earlier request has been answered. */
  private answerInOrder(req: PipelineRequest, receivedAt: number, answer: Answer): void {
    this.settle(this.queueAnswer(req, receivedAt), answer);
  }

  private queueAnswer(req: PipelineRequest, receivedAt: number): AnswerSlot {
    const slot: AnswerSlot = { req, receivedAt, answer: null };
    this.answering.push(slot);
    return slot;
  }

  private settle(slot: AnswerSlot, answer: Answer): void {
    slot.answer = answer;
    this.sendAnswers();
  }

  /** Sends the settled answers at the front of the queue, in order; one that must wait (a join) holds the rest. */
  private sendAnswers(): void {
    if (this.finishing) return;
    while (this.answering.length > 0) {
      const slot = this.answering[0]!;
      if (slot.answer === null) return;
      this.answering.shift();
      let waiting: Promise<void> | void = undefined;
      try {
        waiting = this.finish(slot.req, slot.answer, slot.receivedAt, slot.writes);
      } catch (err) {
        this.deps.log.error({ err }, 'answering failed');
      }
      if (waiting) {
        this.finishing = true;
        waiting
          .catch((err: unknown) => this.deps.log.error({ err }, 'answering failed'))
          .then(() => {
            this.finishing = false;
            this.sendAnswers();
          });
        return;
      }
    }
    const waiters = this.answeredWaiters;
    this.answeredWaiters = [];
    for (const resolve of waiters) resolve();
    this.checkIdle();
  }

  private allAnswered(): boolean {
    return this.answering.length === 0 && !this.finishing;
  }

  /** Settles once every request decided so far has been answered. */
  private whenAnswered(): Promise<void> {
    if (this.allAnswered()) return ANSWERED;
    return new Promise((resolve) => this.answeredWaiters.push(resolve));
  }

  private finish(req: PipelineRequest, answer: Answer, receivedAt: number, writes?: Writes): Promise<void> | void {
    if (this.isClosed()) return;
    if (answer.kind === 'stale') return this.closeWith('takenOver', 'this instance lost ownership');
    // nothing of the request was written; the client's resume finds no session and starts a new one
    if (answer.kind === 'lost') return this.closeWith('tryAgainLater', 'the store lost this session; reconnect to start a new one');
    // memberships changed: the res waits until this instance hears the joined rooms
    const commit = answer.commit;
    if (commit?.rooms) return this.applyCommit(commit).then(() => this.respond(req, answer, receivedAt, writes), (err: unknown) => this.joinFailed(req, answer, receivedAt, writes, err));
    this.respond(req, answer, receivedAt, writes);
  }

  /** A request's join committed but not taken on here: the res still goes (it is true), then see `closeForResume`. */
  private joinFailed(req: PipelineRequest, answer: Extract<Answer, { kind: 'res' }>, receivedAt: number, writes: Writes | undefined, err: unknown): void {
    this.respond(req, answer, receivedAt, writes);
    this.closeForResume(err);
  }

  /**
   * A join is committed, but this instance could not subscribe to the room or list the member
   * (Redis away): the connection closes, so the client resumes, and its resume replays whatever
   * the room got meanwhile and lists it again.
   */
  private closeForResume(err: unknown): void {
    this.deps.log.warn({ err, session: this.session?.id }, 'joining a room failed after its commit; closing so the client resumes');
    this.closeWith('tryAgainLater', 'could not join the room here; resume to catch up');
  }

  private respond(req: PipelineRequest, answer: Extract<Answer, { kind: 'res' }>, receivedAt: number, writes?: Writes): void {
    if (this.isClosed()) return;
    const { deps } = this;
    const { frame } = req;
    const r = answer.response;
    const json = answer.commit?.responseJson;
    this.sendText(json !== undefined ? encodeRecorded(frame.id, json) : r.ok ? encodeOk(frame.id, r.data) : encodeFail(frame.id, r.error));
    deps.metrics.messageSent('res');
    deps.metrics.handlerDuration(frame.route, (performance.now() - receivedAt) / 1000);
    for (const scope of answer.refusedBy ?? []) deps.metrics.rateLimited(scope);
    if (answer.strike) this.strike();
    else this.strikes = 0;
    if (writes) this.releaseWrites(writes, answer.commit);
    if (answer.commit) this.deliver(answer.commit);
    if (answer.close) this.closeApp(answer.close);
  }

  /**
   * After a commit whose outcome is unknown, the cached state may be ahead of or behind the store:
   * take the store's. Waits for every commit in flight first, so it reads their outcome too.
   */
  private async reload(): Promise<'ok' | 'lost' | 'unavailable'> {
    await this.whenAnswered();
    const session = this.session!;
    try {
      const record = await this.deps.store.load(session.id);
      // a store that lost data (restarted empty): no reload will ever find it
      if (!record) return 'lost';
      session.state = record.state;
      this.reloadNeeded = false;
      return 'ok';
    } catch {
      return 'unavailable';
    }
  }

  /** A `close` effect of the app. */
  private closeApp({ code, reason }: { code: number; reason: string }): void {
    try {
      this.ws.close(code, reason);
    } catch (err) {
      this.deps.log.error({ err, code }, 'app close failed');
      this.ws.terminate();
    }
    this.stopTaking();
  }

  private async processHook(hook: Hook<unknown>): Promise<void> {
    const session = this.session!;
    let ran;
    try {
      ran = await this.commitHook(hook, session, true);
    } catch (err) {
      this.deps.log.warn({ err }, 'hook commit failed');
      this.reloadNeeded = true;
      return;
    }
    if (!ran) return;
    if (ran.state !== undefined) session.state = ran.state;
    try {
      await this.applyCommit(ran.outcome);
    } catch (err) {
      this.deliver(ran.outcome);
      this.closeForResume(err);
      return;
    }
    this.deliver(ran.outcome);
    if (ran.close) this.closeApp(ran.close);
  }

  /**
   * Runs a lifecycle hook and commits what it returned. Without a connection (`onDisconnect`)
   * joins and closes mean nothing, so they are dropped; the rest still commits.
   * @returns null when the hook threw, returned bad effects, or lost the owner epoch
   */
  private async commitHook(hook: Hook<unknown>, session: SessionView, connected: boolean) {
    let returned: unknown;
    try {
      returned = hook(session.state, handlerContext(session, this.deps.config.instanceId, this.deps.clock.now(), '', EMPTY_READS));
    } catch (err) {
      this.deps.log.error({ err }, 'lifecycle hook threw');
      return null;
    }
    const checked = checkReturned(returned, false);
    if ('problem' in checked) {
      this.deps.log.error({ problem: checked.problem }, 'hook returned something the runtime cannot take; its result is dropped');
      return null;
    }
    const { result, effects, json } = checked;
    const { joins, leaves, sends, broadcasts } = effects;
    const outcome = await this.deps.store.commit({ sessionId: session.id, epoch: session.epoch, state: result.state, stateJson: json.state, joins: connected ? joins : [], leaves, sends, broadcasts });
    return outcome.ok ? { outcome, state: result.state, close: connected ? effects.close : undefined } : null;
  }

  /**
   * Takes on the committed memberships (the state moved on when the request was decided). A join
   * is complete, and its `res` may go, once this instance hears the room: every message committed
   * after the join will then reach the member.
   */
  private async applyCommit(commit: CommittedResult): Promise<void> {
    const session = this.session!;
    if (!commit.rooms) return;
    const before = session.rooms;
    const after = commit.rooms;
    session.rooms = after;
    const joined = Object.keys(after).filter((room) => !hasRoom(before, room));
    const left = Object.keys(before).filter((room) => !hasRoom(after, room));
    for (const room of left) {
      this.roomFeeds.get(room)?.close();
      this.roomFeeds.delete(room);
      this.deps.router.leaveRoom(room, this);
      this.deps.presence.remove(room, session.id, session.epoch).catch(() => {});
    }
    await Promise.all(
      joined.map(async (room) => {
        const feed = new RoomFeed(this.deps.store, this, room);
        this.roomFeeds.set(room, feed);
        await this.deps.router.joinRoom(room, this);
        feed.start(roomOffset(after, room)!);
        await this.deps.presence.add(room, session.id, session.userId, this.deps.config.instanceId, session.epoch);
      }),
    );
    // Catch up on anything committed between the join and the subscription.
    for (const room of joined) this.roomFeeds.get(room)?.resync();
  }

  /** Announces the committed messages; the res went out first, so it precedes them on this socket. */
  private deliver(commit: CommittedResult): void {
    if (commit.sent.length + commit.broadcast.length === 0) return;
    const { bus, log } = this.deps;
    const at = Date.now();
    for (const msg of commit.sent) bus.publish(channels.session(msg.to), { kind: 'direct', msg, at }).catch((err) => log.warn({ err }, 'publish failed'));
    for (const msg of commit.broadcast) bus.publish(channels.room(msg.room), { kind: 'room', msg, at }).catch((err) => log.warn({ err }, 'publish failed'));
  }

  private async disconnect(session: SessionView): Promise<void> {
    const hook = this.deps.app.onDisconnect;
    try {
      if (hook) {
        const ran = await this.commitHook(hook, session, false);
        if (ran) this.deliver(ran.outcome);
      }
      await this.deps.store.release(session.id, session.epoch);
    } catch (err) {
      this.deps.log.warn({ err, session: session.id }, 'disconnect bookkeeping failed');
    }
  }

  // ---- sending and closing ----

  private sendText(text: string): void {
    if (this.ws.readyState !== 1) return;
    // Everything sent until the current tick's microtasks are done leaves in one write (one
    // syscall) instead of one per frame: answers to a burst of requests finish together.
    if (!this.corked) {
      const socket = (this.ws as unknown as { _socket?: Socket })._socket;
      if (socket) {
        this.corked = true;
        socket.cork();
        process.nextTick(uncork, this, socket);
      }
    }
    this.ws.send(text);
  }

  /** @internal for `uncork` */
  corked = false;

  private sendMsg(text: string): void {
    this.sendText(text);
    this.deps.metrics.messageSent('msg');
  }

  /**
   * Answers leave in the order their frames came, since strikes count "in a row" as the client sent
   * them: behind a hello still opening, or requests not yet answered, a bad frame waits its turn
   * (and an admitted request before it resets the count first).
   */
  private badFrame(message: string): void {
    if (this.phase === 'opening' || this.running || this.mailbox.length > 0 || !this.allAnswered()) {
      this.mailbox.push({ kind: 'bad', message });
      this.runMailbox();
      return;
    }
    this.answerBadFrame(message);
  }

  /** A bad frame's turn in the mailbox: its answer goes once every earlier request is answered. */
  private badFrameInTurn(message: string): Promise<void> | void {
    if (this.allAnswered()) return this.answerBadFrame(message);
    return this.whenAnswered().then(() => {
      if (!this.isClosed()) this.answerBadFrame(message);
    });
  }

  private answerBadFrame(message: string): void {
    this.sendText(encodeError(wireError('bad_frame', message)));
    this.strike();
  }

  private strike(): void {
    this.strikes += 1;
    const max = this.deps.config.abuseMaxStrikes;
    if (max > 0 && this.strikes >= max) this.closeWith('abuse');
  }

  private closeWith(name: CloseName, why?: string): void {
    const { code, reason } = CloseCodes[name];
    if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close(code, why ? `${reason}: ${why}`.slice(0, 120) : reason);
    this.stopTaking();
  }

  /** Closing: nothing more is read, and requests not yet decided are dropped unanswered (the client re-sends them after resuming). */
  private stopTaking(): void {
    this.reading = false;
    if (this.phase !== 'closed') {
      const wasOpen = this.phase === 'open' || this.phase === 'opening';
      // Drop queued requests now: after a takeover their commits would fail the epoch check anyway.
      this.mailbox.length = 0;
      if (!wasOpen) this.phase = 'closed';
    }
  }

  /** Nothing queued, being decided or waiting to be answered. */
  private isIdle(): boolean {
    return !this.running && this.mailbox.length === 0 && this.answering.length === 0 && !this.finishing;
  }

  private idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private checkIdle(): void {
    if (this.isIdle()) this.resolveIdle();
  }

  private resolveIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
