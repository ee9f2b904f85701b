/**
 * @module ports/presence
 * Who has a live connection in which room, across instances.
 */
export interface Presence {
  /** Records a live connection of `sessionId` (owner `epoch`) in `room`. */
  add(room: string, sessionId: string, userId: string, instanceId: string, epoch: number): Promise<void>;
  /** Forgets it, unless a newer connection (higher epoch) of the session took its place. */
  remove(room: string, sessionId: string, epoch: number): Promise<void>;
  /** User ids with a live connection in `room`, each once. */
  list(room: string): Promise<string[]>;
  close(): Promise<void>;
}
