package schema

import (
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"
)

// avroKind is what an Avro schema node reads and writes.
type avroKind uint8

const (
	avNull avroKind = iota
	avBoolean
	avInt
	avLong
	avFloat
	avDouble
	avString
	avBytes
	avFixed
	avEnum
	avArray
	avMap
	avUnion
	avRecord
	avDecimalBytes
	avDecimalFixed
	avDuration
)

// avroNode is a compiled Avro schema: the transcoder walks it instead of hamba's schema types.
type avroNode struct {
	kind    avroKind
	logical avro.LogicalType
	name    string // type name for messages: "double", "shop.Listing"

	fields   []avroField    // record
	fieldIdx map[string]int // record: index of each field by name
	elem     *avroNode      // array items, map values
	branches []*avroNode    // union
	nullIdx  int            // union: index of the null branch, or -1
	symbols  []string       // enum
	symJSON  [][]byte       // enum: symbols as JSON strings
	symIdx   map[string]int
	size     int  // fixed
	scale    int  // decimal
	prec     int  // decimal
	zeroSize bool // reads no bytes (null, a record of nulls): arrays of it need a bound
}

type avroField struct {
	name   string
	key    []byte // `"name":`, with a leading comma after the first field
	node   *avroNode
	hasDef bool
	def    []byte // the default, Avro-encoded
	defVal any    // the default as hamba gives it
}

// compileAvro parses an Avro schema (with the referenced schemas, dependencies first) and compiles it.
func compileAvro(text string, refs []namedSchema) (*avroNode, error) {
	cache := &avro.SchemaCache{}
	for _, r := range refs {
		if _, err := avro.ParseWithCache(r.text, "", cache); err != nil {
			return nil, fmt.Errorf("referenced schema %q: %w", r.name, err)
		}
	}
	s, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, err
	}
	c := avroCompiler{named: map[string]*avroNode{}}
	root, err := c.compile(s)
	if err != nil {
		return nil, err
	}
	for _, rec := range c.records {
		for i := range rec.fields {
			f := &rec.fields[i]
			if !f.hasDef {
				continue
			}
			n := f.node
			if n.kind == avUnion { // a union's default is of its first branch
				f.def = appendLong(nil, 0)
				n = n.branches[0]
			}
			b, err := n.encode(f.def, f.defVal, &encodeOptions{})
			if err != nil {
				return nil, fmt.Errorf("record %s: field %s: default: %w", rec.name, f.name, err)
			}
			f.def = b
		}
	}
	return root, nil
}

type avroCompiler struct {
	named   map[string]*avroNode
	records []*avroNode
}

func (c *avroCompiler) compile(s avro.Schema) (*avroNode, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		n, ok := c.named[s.Schema().FullName()]
		if !ok {
			return c.compile(s.Schema())
		}
		return n, nil
	case *avro.NullSchema:
		return &avroNode{kind: avNull, name: "null", zeroSize: true}, nil
	case *avro.PrimitiveSchema:
		n := &avroNode{name: string(s.Type())}
		if l := s.Logical(); l != nil {
			n.logical = l.Type()
		}
		switch s.Type() {
		case avro.Boolean:
			n.kind = avBoolean
		case avro.Int:
			n.kind = avInt
		case avro.Long:
			n.kind = avLong
		case avro.Float:
			n.kind = avFloat
		case avro.Double:
			n.kind = avDouble
		case avro.String:
			n.kind = avString
		case avro.Bytes:
			n.kind = avBytes
			if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
				n.kind, n.scale, n.prec = avDecimalBytes, d.Scale(), d.Precision()
			}
		default:
			return nil, fmt.Errorf("unsupported Avro type %s", s.Type())
		}
		if n.logical != "" {
			n.name += "(" + string(n.logical) + ")"
		}
		return n, nil
	case *avro.FixedSchema:
		n := &avroNode{kind: avFixed, name: s.FullName(), size: s.Size(), zeroSize: s.Size() == 0}
		switch l := s.Logical().(type) {
		case *avro.DecimalLogicalSchema:
			n.kind, n.scale, n.prec, n.logical = avDecimalFixed, l.Scale(), l.Precision(), avro.Decimal
		case nil:
		default:
			if l.Type() == avro.Duration && s.Size() == 12 {
				n.kind, n.logical = avDuration, avro.Duration
			}
		}
		c.named[s.FullName()] = n
		return n, nil
	case *avro.EnumSchema:
		n := &avroNode{kind: avEnum, name: s.FullName(), symbols: s.Symbols(), symIdx: map[string]int{}}
		for i, sym := range s.Symbols() {
			n.symJSON = append(n.symJSON, appendJSONString(nil, []byte(sym)))
			n.symIdx[sym] = i
		}
		c.named[s.FullName()] = n
		return n, nil
	case *avro.ArraySchema:
		elem, err := c.compile(s.Items())
		if err != nil {
			return nil, err
		}
		return &avroNode{kind: avArray, name: "array", elem: elem}, nil
	case *avro.MapSchema:
		elem, err := c.compile(s.Values())
		if err != nil {
			return nil, err
		}
		return &avroNode{kind: avMap, name: "map", elem: elem}, nil
	case *avro.UnionSchema:
		n := &avroNode{kind: avUnion, name: "union", nullIdx: -1}
		for i, t := range s.Types() {
			b, err := c.compile(t)
			if err != nil {
				return nil, err
			}
			if b.kind == avNull {
				n.nullIdx = i
			}
			n.branches = append(n.branches, b)
		}
		if len(n.branches) == 0 {
			return nil, fmt.Errorf("empty union")
		}
		n.name = n.branches[0].name
		for _, b := range n.branches[1:] {
			n.name += " or " + b.name
		}
		return n, nil
	case *avro.RecordSchema:
		n := &avroNode{kind: avRecord, name: s.FullName(), zeroSize: true, fieldIdx: map[string]int{}}
		c.named[s.FullName()] = n
		c.records = append(c.records, n)
		for i, f := range s.Fields() {
			fn, err := c.compile(f.Type())
			if err != nil {
				return nil, err
			}
			key := strconv.AppendQuote(nil, f.Name()) // Avro names are [A-Za-z0-9_]: no escapes
			key = append(key, ':')
			if i > 0 {
				key = append([]byte{','}, key...)
			}
			af := avroField{name: f.Name(), key: key, node: fn, hasDef: f.HasDefault()}
			if af.hasDef {
				af.defVal = f.Default()
			}
			if !fn.zeroSize {
				n.zeroSize = false
			}
			n.fieldIdx[f.Name()] = len(n.fields)
			n.fields = append(n.fields, af)
		}
		return n, nil
	}
	return nil, fmt.Errorf("unsupported Avro schema %s", s.Type())
}
