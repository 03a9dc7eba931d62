package pulsar

import (
	"fmt"
	"strconv"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
)

// msgKey orders the messages of one topic partition: a later message has a larger ledger, or the
// same ledger and a larger entry, or the same entry (a producer batch) and a larger batch index.
// Ids of different partitions are not comparable.
type msgKey struct {
	ledger, entry int64
	batch         int32
}

func keyOf(id pulsar.MessageID) msgKey {
	return msgKey{ledger: id.LedgerID(), entry: id.EntryID(), batch: id.BatchIdx()}
}

func (k msgKey) compare(o msgKey) int {
	switch {
	case k.ledger != o.ledger:
		return cmpInt(k.ledger, o.ledger)
	case k.entry != o.entry:
		return cmpInt(k.entry, o.entry)
	}
	return cmpInt(int64(k.batch), int64(o.batch))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Protocol field numbers of MessageIdData (PulsarApi.proto).
const (
	fieldLedgerID   = 1
	fieldEntryID    = 2
	fieldPartition  = 3
	fieldBatchIndex = 4
	fieldBatchSize  = 6
)

// appendCursor appends the serialized form of id, byte for byte what MessageID.Serialize gives
// (so pulsar.DeserializeMessageID reads it), without the allocations of the generic encoder.
func appendCursor(dst []byte, id pulsar.MessageID) []byte {
	dst = protowire.AppendTag(dst, fieldLedgerID, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(id.LedgerID()))
	dst = protowire.AppendTag(dst, fieldEntryID, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(id.EntryID()))
	dst = protowire.AppendTag(dst, fieldPartition, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(int64(id.PartitionIdx())))
	dst = protowire.AppendTag(dst, fieldBatchIndex, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(int64(id.BatchIdx())))
	dst = protowire.AppendTag(dst, fieldBatchSize, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(int64(id.BatchSize())))
}

// parseCursor reads the key of a serialized message id.
func parseCursor(b []byte) (msgKey, error) {
	if len(b) == 0 {
		return msgKey{}, fmt.Errorf("empty cursor")
	}
	id, err := pulsar.DeserializeMessageID(b)
	if err != nil {
		return msgKey{}, fmt.Errorf("cursor %x is not a Pulsar message id: %w", b, err)
	}
	return keyOf(id), nil
}

// appendIDText appends the id as ledger:entry:partition:batch, the form the Pulsar tools print.
func appendIDText(dst []byte, id pulsar.MessageID) []byte {
	dst = strconv.AppendInt(dst, id.LedgerID(), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, id.EntryID(), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(id.PartitionIdx()), 10)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, int64(id.BatchIdx()), 10)
}
