/**
 * @module protocol/room-record
 * A session's rooms as a record of room name -> offset (`hello.rooms`, a session's memberships).
 * Room names are chosen by clients, and any name of 1 to 128 characters is valid, `constructor`
 * and `__proto__` included. So such a record is read and written through its own properties only:
 * `room in rooms` or `rooms[room]` would find what every object inherits, and `rooms[room] = off`
 * would set the prototype for `__proto__` instead of adding a room.
 */
export type RoomRecord = Record<string, string>;

export function hasRoom(rooms: RoomRecord, room: string): boolean {
  return Object.hasOwn(rooms, room);
}

/** The offset recorded for `room`, if the record has that room. */
export function roomOffset(rooms: RoomRecord | undefined, room: string): string | undefined {
  return rooms !== undefined && Object.hasOwn(rooms, room) ? rooms[room] : undefined;
}

export function setRoom(rooms: RoomRecord, room: string, off: string): void {
  Object.defineProperty(rooms, room, { value: off, writable: true, enumerable: true, configurable: true });
}
