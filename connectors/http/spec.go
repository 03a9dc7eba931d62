// Package http provides the http source: it polls an HTTP API on a schedule, follows its
// pagination, selects records with JSONPath and resumes after a kill at the page and record it
// had reached, with the API's own incremental cursor as its position.
package http

import (
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sourceSpec = connector.Spec{
	Name:    "http",
	Summary: "Polls an HTTP API: JSONPath record selection, pagination, incremental cursor, cron or interval schedule, retries and rate limits.",
	Description: "Each polling **cycle** requests `url` (GET or POST, with `headers`, `body` and `auth`), takes the records out of " +
		"the response with the JSONPath `records` (`$.data[*]`; without it an array response gives one record per element " +
		"and any other document one record), and follows `pagination` until the last page. An NDJSON response " +
		"(`format: ndjson`, or a `Content-Type` saying ndjson or jsonl) gives one record per line. A record's value is its " +
		"JSON text as the API sent it when `records` is made of member names and a final `[*]`; other expressions " +
		"(filters, descendants, slices) re-encode the selected values compactly, with object keys sorted. A response or " +
		"NDJSON line that is not JSON goes to the dead letters with the URL and the reason.\n\n" +
		"**Schedule.** Without `schedule` or `interval` the source is bounded: it runs one cycle and ends. With " +
		"`interval: 5m` a cycle starts every five minutes (the first at once); with `schedule: \"0 2 * * *\"` (cron, five " +
		"fields, `@daily` and `CRON_TZ=Europe/Paris ...` accepted) at each matching time, and a cycle missed while the " +
		"pipeline was down runs once at start.\n\n" +
		"**Position.** The position of a record is the request state of its page (the page URL, number, offset or token, " +
		"and the cycle's cursor) and how many records of that page come before and with it; the position of a page's last " +
		"record already names the next page. After a restart, even after `kill -9`, the source requests the page of the " +
		"last checkpointed record again and skips what was delivered, so no page is skipped and no delivered record is " +
		"read again (pages are assumed stable while a cycle runs: sorted by the cursor field, or a snapshot). The " +
		"checkpoint moves past a page only once every record of it is delivered to every sink.\n\n" +
		"**Incremental polling.** With `cursor.field`, the largest value of that field among the delivered records (numbers " +
		"compared as numbers, RFC 3339 timestamps as times, other strings as text) is sent as `cursor.param` in the next " +
		"cycle's requests (with `next` or `link_header` pagination, in its first: the links carry it on); with `cursor.token`, " +
		"the value at that JSONPath in the cycle's last response is. The cursor is part of the position, so it is durable " +
		"exactly when the records it was taken from are. The " +
		"API is expected to return only records after that value; one that returns records equal to it sends them " +
		"again. Bounded runs with a cursor start a new cycle from the stored cursor each time; bounded runs without one " +
		"read nothing again once a cycle completed (`sluice run --reset` starts over).\n\n" +
		"**Failures.** Network errors, timeouts, `408`, `429` and `5xx` answers are retried with exponential backoff and " +
		"jitter, waiting as long as a `Retry-After` header asks; other `4xx` answers stop the pipeline. The first request " +
		"of a cycle is conditional (`If-None-Match`, `If-Modified-Since`) when the previous cycle's first response had an " +
		"`ETag` or `Last-Modified`, and a `304` ends the cycle without records.",
	Bounded: true,
	Fields: []connector.Field{
		{Name: "url", Type: connector.TypeString, Required: true, Description: "The first request of each cycle: an absolute http or https URL.", Example: "https://api.example.com/v1/prices"},
		{Name: "method", Type: connector.TypeString, Default: "GET", Enum: []string{"GET", "POST"}, Description: "The request method."},
		{Name: "headers", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Request headers."},
		{Name: "body", Type: connector.TypeString, Description: "Request body template (POST). Placeholders: `{{since}}` (the cursor value, or `cursor.initial`), " +
			"`{{page}}`, `{{offset}}`, `{{limit}}` and `{{next}}` (the pagination token), so APIs that paginate in the body work too."},
		{Name: "content_type", Type: connector.TypeString, Default: "application/json", Description: "`Content-Type` of the request body."},
		{Name: "records", Type: connector.TypeString, Description: "JSONPath (RFC 9535) selecting the records in a JSON response, for example `$.data[*]`. " +
			"Empty: an array response gives one record per element, anything else one record.", Example: "$.data[*]"},
		{Name: "format", Type: connector.TypeString, Default: "auto", Enum: []string{"auto", "json", "ndjson"}, Description: "How to read responses: `auto` reads NDJSON when the `Content-Type` says ndjson or jsonl, JSON otherwise."},
		{Name: "key", Type: connector.TypeString, Description: "Template of the record key from the record's fields (`{{id}}`); a record it cannot be rendered for goes to the dead letters."},
		{Name: "pagination", Type: connector.TypeObject, Example: map[string]any{"next": "$.links.next"}, Description: "How to get the next page; set one of `next`, `link_header`, `page_param`, `offset_param` or `cursor`. Unset: one page per cycle.", Fields: []connector.Field{
			{Name: "next", Type: connector.TypeString, Description: "JSONPath of the next page's URL in the response (absolute or relative to the page); missing, null or empty on the last page.", Example: "$.links.next"},
			{Name: "link_header", Type: connector.TypeBool, Default: false, Description: "Follow the `rel=\"next\"` URL of the `Link` response header."},
			{Name: "page_param", Type: connector.TypeString, Description: "Query parameter of the page number; pages are requested until one has no records (or fewer than `limit`)."},
			{Name: "page_start", Type: connector.TypeInt, Default: int64(1), Description: "The first page number."},
			{Name: "offset_param", Type: connector.TypeString, Description: "Query parameter of the record offset, advanced by the records of each page, until a page has no records (or fewer than `limit`)."},
			{Name: "limit_param", Type: connector.TypeString, Description: "Query parameter of the page size, sent with `page_param` or `offset_param`."},
			{Name: "limit", Type: connector.TypeInt, Default: int64(0), Description: "The page size sent as `limit_param`; a page with fewer records is the last."},
			{Name: "cursor", Type: connector.TypeString, Description: "JSONPath of the next-page token in the response; the token is sent as `cursor_param`; missing, null or empty on the last page.", Example: "$.meta.next_cursor"},
			{Name: "cursor_param", Type: connector.TypeString, Description: "Query parameter of the next-page token."},
			{Name: "max_pages", Type: connector.TypeInt, Default: int64(0), Description: "Stop a cycle after this many pages; 0 means no limit."},
		}},
		{Name: "cursor", Type: connector.TypeObject, Example: map[string]any{"field": "$.updated_at", "param": "since"}, Description: "Incremental polling: what the next cycle asks for.", Fields: []connector.Field{
			{Name: "field", Type: connector.TypeString, Description: "JSONPath of the cursor field in each record; its largest value is the next cycle's cursor.", Example: "$.updated_at"},
			{Name: "token", Type: connector.TypeString, Description: "JSONPath of a token in the response; its value in a cycle's last response is the next cycle's cursor (change feeds)."},
			{Name: "param", Type: connector.TypeString, Description: "Query parameter carrying the cursor in a cycle's requests.", Example: "since"},
			{Name: "initial", Type: connector.TypeString, Description: "Cursor of the first cycle; empty sends no parameter."},
		}},
		{Name: "schedule", Type: connector.TypeString, Description: "Cron schedule of the cycles (`0 2 * * *`); excludes `interval`.", Example: "0 2 * * *"},
		{Name: "interval", Type: connector.TypeDuration, Default: time.Duration(0), Description: "Time between the starts of two cycles; 0 with no `schedule` runs one cycle."},
		{Name: "run_on_start", Type: connector.TypeBool, Default: false, Description: "With `schedule`, run a cycle as soon as the pipeline starts for the first time instead of waiting for the first matching time."},
		{Name: "auth", Type: connector.TypeObject, Description: "Authentication; set at most one of its members.", Fields: []connector.Field{
			{Name: "bearer", Type: connector.TypeString, Secret: true, Description: "Token sent as `Authorization: Bearer ...`."},
			{Name: "basic", Type: connector.TypeObject, Description: "HTTP basic authentication.", Fields: []connector.Field{
				{Name: "username", Type: connector.TypeString, Description: "User name."},
				{Name: "password", Type: connector.TypeString, Secret: true, Description: "Password."},
			}},
			{Name: "api_key", Type: connector.TypeObject, Description: "An API key in a header or a query parameter.", Fields: []connector.Field{
				{Name: "name", Type: connector.TypeString, Description: "Header or parameter name.", Example: "X-API-Key"},
				{Name: "value", Type: connector.TypeString, Secret: true, Description: "The key."},
				{Name: "in", Type: connector.TypeString, Enum: []string{"header", "query"}, Description: "Where the key goes: `header` (when unset) or `query`."},
			}},
			{Name: "oauth2", Type: connector.TypeObject, Description: "OAuth2 client credentials grant; the token is fetched before the first request and again before it expires.", Fields: []connector.Field{
				{Name: "token_url", Type: connector.TypeString, Description: "The token endpoint."},
				{Name: "client_id", Type: connector.TypeString, Description: "Client id."},
				{Name: "client_secret", Type: connector.TypeString, Secret: true, Description: "Client secret."},
				{Name: "scopes", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Scopes to request."},
				{Name: "params", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Extra parameters of the token request (`audience`)."},
			}},
		}},
		{Name: "timeout", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "Limit of one request, reading the response included."},
		{Name: "retry", Type: connector.TypeObject, Description: "Retries of failed requests.", Fields: []connector.Field{
			{Name: "max_attempts", Type: connector.TypeInt, Default: int64(10), Description: "Attempts of one request before the read fails (the pipeline then retries the read a few times before failing)."},
			{Name: "initial_backoff", Type: connector.TypeDuration, Default: 500 * time.Millisecond, Description: "Wait before the first retry; it doubles on each further retry, with jitter."},
			{Name: "max_backoff", Type: connector.TypeDuration, Default: time.Minute, Description: "Longest wait between two attempts, unless `Retry-After` asks for more."},
		}},
		{Name: "rate_limit", Type: connector.TypeObject, Description: "Client-side request rate limit.", Fields: []connector.Field{
			{Name: "per_second", Type: connector.TypeFloat, Default: float64(0), Description: "Requests per second, retries included; 0 means no limit."},
			{Name: "burst", Type: connector.TypeInt, Default: int64(1), Description: "Requests that may go at once before the rate applies."},
		}},
		{Name: "conditional", Type: connector.TypeBool, Default: true, Description: "Send `If-None-Match` / `If-Modified-Since` on the first request of a cycle; a `304` ends the cycle."},
		{Name: "max_response_bytes", Type: connector.TypeByteSize, Default: int64(256 << 20), Description: "Largest accepted response body; a larger one fails the request."},
		{Name: "user_agent", Type: connector.TypeString, Default: "sluice-http-source", Description: "The `User-Agent` header, unless `headers` sets one."},
	},
}

// Components returns the http source, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(sourceSpec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			return NewSource(cfg, env)
		}),
	}
}

// config is the decoded configuration.
type config struct {
	URL         string            `config:"url"`
	Method      string            `config:"method"`
	Headers     map[string]string `config:"headers"`
	Body        string            `config:"body"`
	ContentType string            `config:"content_type"`
	Records     string            `config:"records"`
	Format      string            `config:"format"`
	Key         string            `config:"key"`
	Pagination  struct {
		Next        string `config:"next"`
		LinkHeader  bool   `config:"link_header"`
		PageParam   string `config:"page_param"`
		PageStart   int64  `config:"page_start"`
		OffsetParam string `config:"offset_param"`
		LimitParam  string `config:"limit_param"`
		Limit       int64  `config:"limit"`
		Cursor      string `config:"cursor"`
		CursorParam string `config:"cursor_param"`
		MaxPages    int64  `config:"max_pages"`
	} `config:"pagination"`
	Cursor struct {
		Field   string `config:"field"`
		Token   string `config:"token"`
		Param   string `config:"param"`
		Initial string `config:"initial"`
	} `config:"cursor"`
	Schedule   string        `config:"schedule"`
	Interval   time.Duration `config:"interval"`
	RunOnStart bool          `config:"run_on_start"`
	Auth       struct {
		Bearer string `config:"bearer"`
		Basic  struct {
			Username string `config:"username"`
			Password string `config:"password"`
		} `config:"basic"`
		APIKey struct {
			Name  string `config:"name"`
			Value string `config:"value"`
			In    string `config:"in"`
		} `config:"api_key"`
		OAuth2 struct {
			TokenURL     string            `config:"token_url"`
			ClientID     string            `config:"client_id"`
			ClientSecret string            `config:"client_secret"`
			Scopes       []string          `config:"scopes"`
			Params       map[string]string `config:"params"`
		} `config:"oauth2"`
	} `config:"auth"`
	Timeout time.Duration `config:"timeout"`
	Retry   struct {
		MaxAttempts    int           `config:"max_attempts"`
		InitialBackoff time.Duration `config:"initial_backoff"`
		MaxBackoff     time.Duration `config:"max_backoff"`
	} `config:"retry"`
	RateLimit struct {
		PerSecond float64 `config:"per_second"`
		Burst     int     `config:"burst"`
	} `config:"rate_limit"`
	Conditional      bool   `config:"conditional"`
	MaxResponseBytes int64  `config:"max_response_bytes"`
	UserAgent        string `config:"user_agent"`
}
