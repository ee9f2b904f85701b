/**
 * @module client/emitter
 * A tiny typed event emitter (no dependency, works in Node and browsers).
 */

/** A listener for one event of an event map. */
export type Listener<T> = (payload: T) => void;

/**
 * Typed events: `E` maps each event name to its payload type.
 * A listener that throws does not stop the others; the error is passed to {@link Emitter.onListenerError}.
 */
export class Emitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  /**
   * Adds a listener; returns a function that removes it.
   * @example
   * const off = client.on('msg', (m) => console.log(m.route, m.data));
   * off();
   */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /**
   * Adds a listener that runs once; returns a function that removes it.
   * @example
   * client.once('welcome', (w) => console.log('session', w.session));
   */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /**
   * Removes a listener added with {@link Emitter.on}.
   * @example
   * client.off('msg', onMsg);
   */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Calls every listener of `event` with `payload`, in the order they were added. */
  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E[K]>)(payload);
      } catch (err) {
        this.onListenerError(event, err);
      }
    }
  }

  /** Called when a listener throws; subclasses decide where the error goes. Default: dropped. */
  protected onListenerError(_event: keyof E, _error: unknown): void {}
}
