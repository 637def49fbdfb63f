"""The SQLite store's security events: one row each, or one row with a growing ``count``.

A mixin of :class:`~wsgisec.store.sqlite.SQLiteStore` (it uses the store's
``_connection()``, ``_errors()``, ``clock`` and ``_maybe_purge()``).
"""

from __future__ import annotations

import json

from .sqlite_connection import transaction


class EventRows:
    """``record_event``, ``events``, ``record_event_aggregated`` and ``purge_events``."""

    # -- events -------------------------------------------------------------------

    def record_event(self, event):
        with self._errors():
            self._connection().execute(
                "INSERT INTO events (time, kind, data) VALUES (?, ?, ?)",
                (event["time"], event["kind"], json.dumps(event, separators=(",", ":"))))
        self._maybe_purge()

    def events(self, since=None, until=None, kinds=None, limit=1000):
        query = "SELECT data FROM events WHERE 1 = 1"
        args: list = []
        if since is not None:
            query += " AND time >= ?"
            args.append(since)
        if until is not None:
            query += " AND time < ?"
            args.append(until)
        kinds = list(kinds or ())
        if kinds:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        with self._errors():
            rows = self._connection().execute(query, args).fetchall()
        return [json.loads(row[0]) for row in reversed(rows)]

    # -- bounded event growth (additive; see Store.record_event_aggregated) ---------

    _AGGREGATES = "events.aggregate"  # kv: aggregation key -> {"id": events row or None}

    def record_event_aggregated(self, event, key, window, cap):
        now = self.clock()
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                if key is not None:
                    row = connection.execute(
                        "SELECT value FROM kv WHERE ns = ? AND key = ? AND expires > ?",
                        (self._AGGREGATES, key, now)).fetchone()
                    if row is not None:
                        event_id = json.loads(row[0]).get("id")
                        if event_id is None:
                            return "capped"
                        # One row, its count raised in place: a flood is an UPDATE, not rows.
                        if connection.execute(
                                "UPDATE events SET data = json_set(data, '$.count', "
                                "coalesce(json_extract(data, '$.count'), 1) + 1, '$.last_time', ?) "
                                "WHERE id = ?", (event["time"], event_id)).rowcount:
                            return "counted"
                rows = connection.execute(
                    "INSERT INTO counters (ns, key, count, expires) VALUES ('events', 'rows', 1, ?) "
                    "ON CONFLICT (ns, key) DO UPDATE SET "
                    "count = CASE WHEN counters.expires <= ? THEN 1 ELSE counters.count + 1 END, "
                    "expires = CASE WHEN counters.expires <= ? THEN excluded.expires "
                    "ELSE counters.expires END RETURNING count", (now + window, now, now)).fetchone()[0]
                event_id = None
                if rows <= cap:
                    event_id = connection.execute(
                        "INSERT INTO events (time, kind, data) VALUES (?, ?, ?)",
                        (event["time"], event["kind"], json.dumps(event, separators=(",", ":")))).lastrowid
                if key is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO kv (ns, key, value, expires) VALUES (?, ?, ?, ?)",
                        (self._AGGREGATES, key, json.dumps({"id": event_id}), now + window))
        self._maybe_purge()
        return "stored" if event_id is not None else "capped"

    def purge_events(self, before):
        with self._errors():
            return self._connection().execute("DELETE FROM events WHERE time < ?", (before,)).rowcount
