package http

import (
	"encoding/json"
	"fmt"
)

// pageState is the request state of one page of a cycle, and the source's position: a record's
// Position.Cursor is the state of its page and Position.Offset how many records of the page come
// before and with it, except for a page's last record, whose position is the state of the next
// page (or of the finished cycle) at offset 0. Resuming at a state requests its page again and
// skips Offset records.
type pageState struct {
	V     int    `json:"v"`
	Cycle int64  `json:"c"`           // start of the cycle, Unix milliseconds
	Since string `json:"s,omitempty"` // cursor sent in this cycle's requests
	// Max is the largest cursor field (raw JSON) seen in the cycle before this page; for a finished
	// cycle, its last value (with cursor.token: the token of its last response).
	Max    json.RawMessage `json:"m,omitempty"`
	Index  int64           `json:"i,omitempty"` // pages of the cycle before this one
	URL    string          `json:"u,omitempty"` // next-link and Link header pagination
	Page   int64           `json:"p,omitempty"`
	Offset int64           `json:"o,omitempty"`
	Token  string          `json:"t,omitempty"`
	Done   bool            `json:"d,omitempty"` // the cycle is over
	// ETag and LastModified are the validators of the cycle's first response, for the next cycle's
	// conditional request.
	ETag         string `json:"e,omitempty"`
	LastModified string `json:"l,omitempty"`
}

const stateVersion = 1

func (s *pageState) encode() []byte {
	s.V = stateVersion
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // only strings and numbers: cannot fail
	}
	return b
}

func decodeState(b []byte) (*pageState, error) {
	var s pageState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("http source: position %q is not one of this source's: %w", b, err)
	}
	if s.V != stateVersion {
		return nil, fmt.Errorf("http source: position of unknown version %d", s.V)
	}
	return &s, nil
}

// nextSince is the cursor of the cycle after the one s finished.
func (s *pageState) nextSince() string {
	if len(s.Max) > 0 {
		return cursorValue(s.Max).text()
	}
	return s.Since
}
