package webhook

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connectors/internal/jsontext"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// ServeHTTP takes one request of records. The steps are ordered so that a request that cannot be
// taken costs as little as possible: the method, the bearer token, the pipeline's state and the
// pending bound (from Content-Length) are checked before the body is read.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.cfg.Path:
	case s.cfg.HealthPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			answer(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		switch {
		case !s.accepting():
			answer(w, http.StatusServiceUnavailable, "not taking requests: the pipeline is not running")
		case s.saturated():
			answer(w, http.StatusServiceUnavailable, "saturated: the pipeline is behind")
		default:
			answer(w, http.StatusOK, "")
		}
		return
	default:
		answer(w, http.StatusNotFound, "no such path")
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		answer(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if want := s.cfg.Auth.Bearer; want != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			answer(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
	}
	if !s.accepting() {
		s.busy(w, http.StatusServiceUnavailable, "the pipeline is not taking records now")
		return
	}
	est := r.ContentLength
	if est > s.cfg.MaxBody {
		answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over max_body (%d)", est, s.cfg.MaxBody))
		return
	}
	if est < 0 {
		est = s.cfg.MaxBody
	}
	if !s.reserve(0, est) {
		s.busy(w, s.cfg.BusyStatus, "the pipeline is behind")
		return
	}
	status, msg, n := s.take(r, w, est)
	if status == http.StatusOK {
		writeJSON(w, status, map[string]any{"accepted": n})
		return
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		s.busy(w, status, msg)
		return
	}
	answer(w, status, msg)
}

// take reads, checks and parses the body of a request for which est bytes are reserved, and hands
// its records on. It returns the status to answer and, for success, the number of records.
func (s *Source) take(r *http.Request, w http.ResponseWriter, est int64) (status int, msg string, n int) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		s.release(0, est)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body over max_body (%d bytes)", s.cfg.MaxBody), 0
		}
		return http.StatusBadRequest, "reading the body: " + err.Error(), 0
	}
	if s.hmacHash != nil && !s.signed(r, body) {
		s.release(0, est)
		return http.StatusUnauthorized, "missing or wrong signature in " + s.cfg.Auth.HMAC.Header, 0
	}
	recs, err := parse(body, r.Header.Get("Content-Type"))
	if err != nil {
		s.release(0, est)
		return http.StatusBadRequest, err.Error(), 0
	}
	if int64(len(recs)) > s.cfg.MaxPending {
		s.release(0, est)
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("%d records in one request; max_pending is %d", len(recs), s.cfg.MaxPending), 0
	}
	now := time.Now()
	hdrs := s.forwarded(r.Header)
	var size int64
	for i := range recs {
		recs[i].Time, recs[i].Headers = now, hdrs
		size += int64(recs[i].Size())
	}
	if !s.resize(est, int64(len(recs)), size) {
		s.release(0, est)
		return s.cfg.BusyStatus, "the pipeline is behind", 0
	}
	if len(recs) == 0 {
		return http.StatusOK, "", 0
	}
	if s.durable {
		if err := s.store.append(recs); err != nil {
			s.release(int64(len(recs)), size)
			if errors.Is(err, errClosed) {
				return http.StatusServiceUnavailable, "the source is closing", 0
			}
			s.log.Error("webhook source: records not stored", "err", err)
			return http.StatusInternalServerError, "the records could not be stored", 0
		}
		return http.StatusOK, "", len(recs)
	}
	wt, err := s.enqueue(recs)
	if err != nil {
		s.release(int64(len(recs)), size)
		return http.StatusServiceUnavailable, "the source is closing", 0
	}
	timer := time.NewTimer(s.cfg.DeliveryTimeout)
	defer timer.Stop()
	select {
	case <-wt.done:
		if wt.err != nil {
			return http.StatusServiceUnavailable, "the pipeline stopped before the records were delivered", 0
		}
		return http.StatusOK, "", len(recs)
	case <-timer.C:
		return http.StatusServiceUnavailable, "the records were not delivered within delivery_timeout", 0
	case <-r.Context().Done():
		return http.StatusServiceUnavailable, "the client went away", 0
	}
}

// signed checks the HMAC signature of the body.
func (s *Source) signed(r *http.Request, body []byte) bool {
	h := s.cfg.Auth.HMAC
	v, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get(h.Header)), h.Prefix)
	if !ok || v == "" {
		return false
	}
	var got []byte
	var err error
	if h.Encoding == "base64" {
		got, err = base64.StdEncoding.DecodeString(v)
	} else {
		got, err = hex.DecodeString(v)
	}
	if err != nil {
		return false
	}
	mac := hmac.New(s.hmacHash, []byte(h.Secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// forwarded returns the configured request headers as record headers.
func (s *Source) forwarded(h http.Header) []connector.Header {
	var out []connector.Header
	for _, name := range s.headers {
		for _, v := range h.Values(name) {
			out = append(out, connector.Header{Key: name, Value: []byte(v)})
		}
	}
	return out
}

// parse cuts a body into records: the elements of a JSON array, the lines of NDJSON (or of several
// JSON values one per line), or one JSON document. Values are slices of body.
func parse(body []byte, contentType string) ([]connector.Record, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	ndjson := strings.Contains(mt, "ndjson") || strings.Contains(mt, "jsonl") || strings.Contains(mt, "json-lines")
	doc := jsontext.TrimSpace(body)
	if len(doc) == 0 {
		return nil, nil
	}
	if !ndjson && json.Valid(doc) {
		if jsontext.FirstByte(doc) == '[' {
			elems := jsontext.SplitArray(doc)
			out := make([]connector.Record, len(elems))
			for i, e := range elems {
				out[i].Value = e
			}
			return out, nil
		}
		return []connector.Record{{Value: doc}}, nil
	}
	var out []connector.Record
	var bad error
	jsontext.Lines(doc, func(line []byte, n int) bool {
		if !json.Valid(line) {
			var v any
			err := json.Unmarshal(line, &v)
			bad = fmt.Errorf("line %d is not JSON: %v", n, err)
			return false
		}
		out = append(out, connector.Record{Value: line})
		return true
	})
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// busy answers a request that cannot be taken now with a status that asks to retry later.
func (s *Source) busy(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Retry-After", s.retryAfter)
	answer(w, status, msg)
}

func answer(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		writeJSON(w, status, map[string]any{"status": http.StatusText(status)})
		return
	}
	writeJSON(w, status, map[string]any{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
