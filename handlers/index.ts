/**
 * @module handlers
 * The example app (SPEC section 4), written only against Tether's public API.
 */
import { defineApp } from '../runtime/index.ts';
import { chatJoin, chatLeave, chatSend } from './chat.ts';
import { counterGet, counterInc } from './counter.ts';
import { dmSend } from './dm.ts';
import { echo } from './echo.ts';
import { presenceList } from './presence.ts';
import { type AppState, initialState } from './state.ts';

export const app = defineApp<AppState>({
  initialState,
  routes: {
    echo,
    'counter.inc': counterInc,
    'counter.get': counterGet,
    'chat.join': chatJoin,
    'chat.leave': chatLeave,
    'chat.send': chatSend,
    'dm.send': dmSend,
    'presence.list': presenceList,
  },
});
