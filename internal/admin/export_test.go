package admin

// Routes lists the routes the server serves, as "METHOD PATH".
func Routes() []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.method + " " + r.path
	}
	return out
}
