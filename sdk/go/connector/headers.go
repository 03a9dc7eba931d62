package connector

// HeaderBlindSink is an optional interface of a Sink. IgnoresHeaders reports that the sink, as
// configured, reads no record header: what it writes comes from the records' keys, values, times
// and positions only.
type HeaderBlindSink interface {
	Sink
	IgnoresHeaders() bool
}

// IgnoresHeaders reports whether s says it reads no header (a HeaderBlindSink answering true).
func IgnoresHeaders(s Sink) bool {
	hb, ok := s.(HeaderBlindSink)
	return ok && hb.IgnoresHeaders()
}

// MetadataHeaderSource is an optional interface of a Source that adds headers saying where each
// record came from (a topic, a partition, an offset), for transforms, templates and sinks to
// read. The runtime calls OmitMetadataHeaders before Open when nothing in the pipeline can read
// a header: it has no transforms and no schema codecs, and every sink, the dead-letter one
// included, is a HeaderBlindSink ignoring them. Headers the records carry from upstream stay;
// the positions still say where each record came from.
type MetadataHeaderSource interface {
	Source
	OmitMetadataHeaders()
}
