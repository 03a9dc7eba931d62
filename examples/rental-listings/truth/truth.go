// Package truth is what the listings site (listingsite) served, as it reports it on GET /truth:
// the distinct valid listings, the duplicates, the broken items with the reason the pipeline must
// give, the pages that always fail, the landlords' personal values, and every interaction event it
// delivered. The platform's test and `make e2e-rentals` account for every record against it.
package truth

// Truth is the answer of GET /truth.
type Truth struct {
	Pages       int        `json:"pages"`        // listing pages (/listings?page=1..Pages)
	ItemsServed int        `json:"items_served"` // items on those pages, duplicates included
	Duplicates  int        `json:"duplicates"`   // items repeating a listing of an earlier page
	FlakyPages  int        `json:"flaky_pages"`  // pages that answered 503 to their first request
	Listings    []Listing  `json:"listings"`     // the distinct listings the pipeline must keep
	Rejected    []Rejected `json:"rejected"`     // the items the pipeline must reject
	ErrorPages  []string   `json:"error_pages"`  // URLs that always answer 500
	Personal    []string   `json:"personal"`     // every landlord name, email and phone served
	Events      []Event    `json:"events"`       // every event delivered (webhook answered 2xx, or written to the feed)
	EventsDone  bool       `json:"events_done"`  // both event generators have delivered their quota
	WebhookSent int        `json:"webhook_sent"` // events of Events that went to the webhook
	FeedSent    int        `json:"feed_sent"`    // events of Events that went out on the WebSocket feed
}

// Listing is a valid listing as the pipeline must store it (numbers as quality_score writes them).
type Listing struct {
	ID      string   `json:"listing_id"`
	Title   string   `json:"title"`
	Price   float64  `json:"price"`
	City    string   `json:"city"`
	Rooms   *int     `json:"rooms"`
	Area    *float64 `json:"area"` // nil: the site left it out (the listing passes with quality 0.9)
	Quality float64  `json:"quality"`
	Page    string   `json:"page"` // the first page it appeared on
}

// Rejected is a broken or low-quality item: its title is unique, which tells its dead letter.
type Rejected struct {
	ID     string `json:"listing_id"` // "" when the site left the id out
	Title  string `json:"title"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"` // a part of the dead letter's reason
	Page   string `json:"page"`
}

// Event is one user interaction (a view or a favourite) as delivered.
type Event struct {
	ID        string `json:"event_id"`
	Kind      string `json:"kind"`
	ListingID string `json:"listing_id"`
	User      string `json:"user"`
	TS        int64  `json:"ts"`  // epoch milliseconds
	Via       string `json:"via"` // webhook or feed (not part of the event sent)
}
