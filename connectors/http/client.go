package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/sluicehq/sluice/connectors/internal/pause"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// client sends the source's requests: authentication, rate limit, retries with backoff and
// Retry-After, and a bound on the response size. It is used from the Read goroutine only.
type client struct {
	hc        *http.Client
	transport *http.Transport
	limiter   *rate.Limiter // nil: no limit
	attempts  int
	initial   time.Duration
	maxWait   time.Duration
	maxBytes  int64
	userAgent string
	headers   http.Header
	log       *slog.Logger

	bearer          string
	basicUser       string
	basicPass       string
	basic           bool
	keyName, keyVal string
	keyInQuery      bool
	oauth           *clientcredentials.Config
	oauthHTTP       *http.Client // fetches tokens
	tokens          oauth2.TokenSource

	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// response is a successful (2xx or 304) answer, its body read.
type response struct {
	status int
	header http.Header
	body   []byte
	url    *url.URL // the URL that answered, after redirects
}

func newClient(c *config, log *slog.Logger) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	cl := &client{
		transport: tr,
		attempts:  max(c.Retry.MaxAttempts, 1),
		initial:   c.Retry.InitialBackoff,
		maxWait:   c.Retry.MaxBackoff,
		maxBytes:  c.MaxResponseBytes,
		userAgent: c.UserAgent,
		headers:   http.Header{},
		log:       log,
		sleep:     pause.Sleep,
		bearer:    c.Auth.Bearer,
	}
	for k, v := range c.Headers {
		cl.headers.Set(k, v)
	}
	if c.RateLimit.PerSecond > 0 {
		cl.limiter = rate.NewLimiter(rate.Limit(c.RateLimit.PerSecond), max(c.RateLimit.Burst, 1))
	}
	if b := c.Auth.Basic; b.Username != "" || b.Password != "" {
		cl.basic, cl.basicUser, cl.basicPass = true, b.Username, b.Password
	}
	if k := c.Auth.APIKey; k.Name != "" {
		cl.keyName, cl.keyVal, cl.keyInQuery = k.Name, k.Value, k.In == "query"
	}
	var rt http.RoundTripper = tr
	if o := c.Auth.OAuth2; o.TokenURL != "" {
		params := url.Values{}
		for k, v := range o.Params {
			params.Set(k, v)
		}
		cl.oauth = &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: params}
		cl.oauthHTTP = &http.Client{Transport: tr, Timeout: c.Timeout}
		cl.resetToken()
		rt = &oauth2.Transport{Source: tokenSource{cl}, Base: tr}
	}
	cl.hc = &http.Client{Transport: rt, Timeout: c.Timeout}
	return cl
}

// tokenSource reads the client's current token source, which resetToken replaces.
type tokenSource struct{ c *client }

func (t tokenSource) Token() (*oauth2.Token, error) { return t.c.tokens.Token() }

// resetToken drops the cached OAuth2 token: the next request fetches a new one.
func (c *client) resetToken() {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.oauthHTTP)
	c.tokens = c.oauth.TokenSource(ctx)
}

func (c *client) close() { c.transport.CloseIdleConnections() }

// token fetches the OAuth2 token now (Open checks the credentials this way).
func (c *client) token(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { _, err := c.tokens.Token(); done <- err }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err == nil {
			return nil
		}
		if perm := refusedToken(err); perm != nil {
			return perm
		}
		return fmt.Errorf("http source: oauth2 token request: %w", unwrapURLError(err))
	}
}

// refusedToken turns a token request the endpoint refused with a 4xx into a permanent error.
func refusedToken(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
		re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
		return fmt.Errorf("http source: oauth2 token request refused (%d): %s: %w", re.Response.StatusCode, snippet(re.Body), connector.ErrPermanent)
	}
	return nil
}

// do sends one request, retrying what can be retried, and returns a 2xx or 304 response. target
// is the URL without the API key (what errors and logs show).
func (c *client) do(ctx context.Context, method string, target *url.URL, body []byte, extra http.Header) (*response, error) {
	reauthed := false
	var last error
	for attempt := 1; ; attempt++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, ctxErr(ctx, err)
			}
		}
		resp, retryAfter, err := c.once(ctx, method, target, body, extra)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusUnauthorized && c.oauth != nil && !reauthed {
			// The token may have been revoked before its expiry: fetch a new one, once.
			reauthed = true
			c.resetToken()
			attempt--
			continue
		}
		if errors.Is(err, connector.ErrPermanent) {
			return nil, err
		}
		last = err
		if attempt >= c.attempts {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", last, attempt)
		}
		wait := c.backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
		}
		c.log.Warn("http source: request failed; retrying", "err", err, "attempt", attempt, "wait", wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// statusError is an answer that is neither 2xx nor 304.
type statusError struct {
	method, url string
	status      int
	body        string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("http source: %s %s: %d %s", e.method, e.url, e.status, http.StatusText(e.status))
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

// once sends one attempt. A retryable failure comes back as a plain error (with the wait the
// server asked for, if any); one that retrying cannot fix wraps connector.ErrPermanent.
func (c *client) once(ctx context.Context, method string, target *url.URL, body []byte, extra http.Header) (*response, time.Duration, error) {
	u := *target
	if c.keyName != "" && c.keyInQuery {
		q := u.Query()
		q.Set(c.keyName, c.keyVal)
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, 0, fmt.Errorf("http source: %s %s: %w: %w", method, target.Redacted(), err, connector.ErrPermanent)
	}
	req.Header = c.headers.Clone()
	for k, vs := range extra {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, application/x-ndjson;q=0.9, */*;q=0.1")
	}
	switch {
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	case c.basic:
		req.SetBasicAuth(c.basicUser, c.basicPass)
	case c.keyName != "" && !c.keyInQuery:
		req.Header.Set(c.keyName, c.keyVal)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if perm := refusedToken(err); perm != nil {
			return nil, 0, perm
		}
		return nil, 0, fmt.Errorf("http source: %s %s: %w", method, target.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
		if err != nil {
			return nil, 0, fmt.Errorf("http source: %s %s: reading the response: %w", method, target.Redacted(), err)
		}
		if int64(len(data)) > c.maxBytes {
			return nil, 0, fmt.Errorf("http source: %s %s: the response is larger than max_response_bytes (%d): %w", method, target.Redacted(), c.maxBytes, connector.ErrPermanent)
		}
		return &response{status: resp.StatusCode, header: resp.Header, body: data, url: resp.Request.URL}, 0, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	se := &statusError{method: method, url: target.Redacted(), status: resp.StatusCode, body: snippet(head)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		return nil, retryAfter(resp.Header.Get("Retry-After"), time.Now()), se
	case resp.StatusCode == http.StatusUnauthorized && c.oauth != nil:
		return nil, 0, se // a new token is tried once; do turns a second 401 into a failure
	}
	return nil, 0, fmt.Errorf("%w: %w", se, connector.ErrPermanent)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err // url.Error repeats the URL, which may hold the API key
	}
	return err
}

// backoff is the wait before retry number attempt: initial·2^(attempt-1), capped, with jitter
// drawn from its upper half.
func (c *client) backoff(attempt int) time.Duration {
	return pause.Backoff(attempt, c.initial, c.maxWait)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date. Zero when absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// rate.Limiter.Wait fails early when the wait would outlast ctx's deadline.
	return err
}
