package lease

import "context"

// PID returns the server process id of the held lease's connection, 0 once lost.
func (h *Held) PID() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return 0
	}
	return h.conn.PgConn().PID()
}

// Unlock releases the advisory lock while keeping the session, which only a bug could do: it
// shows that writes check the lock, not just the connection.
func (h *Held) Unlock(key int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", key)
	return err
}
