package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/runtime/supervisor"
)

// MaxReplayBodyBytes bounds the body of POST /api/v1/pipelines/{name}/dead-letters/replay.
const MaxReplayBodyBytes = 1 << 20

// ReplayRequest is the body of POST /api/v1/pipelines/{name}/dead-letters/replay: exactly one
// of Indexes, From with To, and All selects the dead letters, by their index in the browse.
type ReplayRequest struct {
	// Indexes lists the dead letters to replay.
	Indexes []int `json:"indexes,omitempty"`
	// From and To select the range [From, To).
	From *int `json:"from,omitempty"`
	To   *int `json:"to,omitempty"`
	// All selects every dead letter of the pipeline not replayed yet (every one, with Force).
	All bool `json:"all,omitempty"`
	// Force replays dead letters that were replayed before; without it their selection answers
	// 409.
	Force bool `json:"force,omitempty"`
}

// selection checks the request and turns it into the supervisor's selection.
func (q ReplayRequest) selection() (supervisor.ReplaySelection, error) {
	sel := supervisor.ReplaySelection{All: q.All, Force: q.Force}
	ways := 0
	if len(q.Indexes) > 0 {
		ways++
	}
	if q.From != nil || q.To != nil {
		ways++
	}
	if q.All {
		ways++
	}
	if ways != 1 {
		return sel, errors.New(`select the dead letters one way: {"indexes": [0, 4]}, {"from": 0, "to": 10} (to excluded) or {"all": true}`)
	}
	switch {
	case len(q.Indexes) > 0:
		if len(q.Indexes) > supervisor.MaxReplay {
			return sel, fmt.Errorf("%d indexes: at most %d per replay", len(q.Indexes), supervisor.MaxReplay)
		}
		seen := map[int]bool{}
		for _, i := range q.Indexes {
			if i < 0 {
				return sel, fmt.Errorf("index %d: indexes start at 0", i)
			}
			if !seen[i] {
				seen[i] = true
				sel.Indexes = append(sel.Indexes, i)
			}
		}
	case q.From != nil || q.To != nil:
		if q.From == nil || q.To == nil {
			return sel, errors.New(`a range needs both "from" and "to" (to excluded)`)
		}
		from, to := *q.From, *q.To
		if from < 0 || to <= from {
			return sel, fmt.Errorf("from %d, to %d: want 0 <= from < to (to excluded)", from, to)
		}
		if to-from > supervisor.MaxReplay {
			return sel, fmt.Errorf("from %d, to %d: at most %d dead letters per replay", from, to, supervisor.MaxReplay)
		}
		for i := from; i < to; i++ {
			sel.Indexes = append(sel.Indexes, i)
		}
	}
	return sel, nil
}

func (a *api) replay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var q ReplayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxReplayBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		msg := "the body must be a JSON object such as {\"indexes\": [0, 4]}, {\"from\": 0, \"to\": 10} or {\"all\": true}, with \"force\": true to replay again: " + err.Error()
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	sel, err := q.selection()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := a.o.Runtime.ReplayDeadLetters(r.Context(), name, sel)
	switch {
	case err == nil:
	case errors.Is(err, supervisor.ErrUnknownPipeline):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, supervisor.ErrNoDeadLetterFile):
		writeError(w, http.StatusConflict, err.Error()+": only the dead letters of a dead_letter sink of type file (without encode:) can be replayed")
		return
	case errors.Is(err, supervisor.ErrBadReplaySelection):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, supervisor.ErrAlreadyReplayed), errors.Is(err, supervisor.ErrReplayUnsupported),
		errors.Is(err, supervisor.ErrNotRunning):
		writeError(w, http.StatusConflict, err.Error())
		return
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	code := http.StatusOK
	if res.Error != "" {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, res)
}

// markReplayed sets the Replayed mark of the page's dead letters that were replayed.
func markReplayed(path string, page *DeadLetterPage) error {
	byIndex := map[int]int{}
	for k, d := range page.DeadLetters {
		byIndex[d.Index] = k
	}
	marks, err := supervisor.ReplayMarks(path, func(i int) ([]byte, bool) {
		k, ok := byIndex[i]
		if !ok {
			return nil, false
		}
		return []byte(strings.TrimSpace(string(page.DeadLetters[k].Envelope))), true
	})
	if err != nil {
		return err
	}
	for i, mk := range marks {
		page.DeadLetters[byIndex[i]].Replayed = &mk
	}
	return nil
}
