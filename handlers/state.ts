/**
 * @module handlers/state
 * The example app's per-session state.
 */
export interface AppState {
  count: number;
}

export const initialState = (): AppState => ({ count: 0 });
