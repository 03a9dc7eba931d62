package schema

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluicehq/sluice/internal/schemamsg"
)

// codec turns the payload after the 5-byte header into JSON and back. Its errors are reasons of
// one record. A codec is safe for concurrent use.
type codec interface {
	decode(payload, dst []byte) ([]byte, error)
	encode(jsonValue, dst []byte) ([]byte, error)
}

// newCodec compiles the schema text (with its references, dependencies first) for format.
// message names the Protobuf message encode writes ("" for the first).
func newCodec(format, text string, refs []namedSchema, popts protobufOptions, eopts encodeOptions, message string) (codec, error) {
	switch format {
	case FormatAvro:
		n, err := compileAvro(text, refs)
		if err != nil {
			return nil, err
		}
		return &avroCodec{root: n, opts: eopts}, nil
	case FormatProtobuf:
		return compileProto(text, refs, popts, eopts, message)
	case FormatJSONSchema:
		return compileJSONSchema(text, refs)
	}
	return nil, fmt.Errorf("format %s has no registry schema", format)
}

type avroCodec struct {
	root *avroNode
	opts encodeOptions
}

func (c *avroCodec) decode(payload, dst []byte) ([]byte, error) {
	return decodeAvro(c.root, payload, dst)
}
func (c *avroCodec) encode(v, dst []byte) ([]byte, error) { return encodeAvro(c.root, v, dst, &c.opts) }

// protoFile is the name the registry's schema text is compiled under.
const protoFile = "registry-schema.proto"

type protoCodec struct {
	file   protoreflect.FileDescriptor
	msg    protoreflect.MessageDescriptor // encode writes this one
	msgIdx []int
	mo     protojson.MarshalOptions
	uo     protojson.UnmarshalOptions
}

func compileProto(text string, refs []namedSchema, popts protobufOptions, eopts encodeOptions, message string) (*protoCodec, error) {
	srcs := map[string]string{protoFile: text}
	for _, r := range refs {
		srcs[r.name] = r.text
	}
	comp := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
			src, ok := srcs[path]
			if !ok {
				return protocompile.SearchResult{}, fmt.Errorf("%s: %w", path, protoregistry.NotFound)
			}
			if fdp := serializedProto(src); fdp != nil {
				fdp.Name = proto.String(path)
				return protocompile.SearchResult{Proto: fdp}, nil
			}
			return protocompile.SearchResult{Source: strings.NewReader(src)}, nil
		})),
	}
	files, err := comp.Compile(context.Background(), protoFile)
	if err != nil {
		return nil, err
	}
	fd := files[0]
	c := &protoCodec{
		file: fd,
		mo: protojson.MarshalOptions{UseProtoNames: popts.FieldNames != "json", EmitUnpopulated: popts.EmitUnpopulated,
			UseEnumNumbers: popts.EnumsAsInts},
		uo: protojson.UnmarshalOptions{DiscardUnknown: eopts.ignoreUnknown},
	}
	if fd.Messages().Len() == 0 {
		return nil, errors.New("the schema declares no message")
	}
	if message == "" {
		c.msg = fd.Messages().Get(0)
	} else {
		d := fd.FindDescriptorByName(protoreflect.FullName(message))
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("the schema has no message %s (it has %s)", message, strings.Join(messageNames(fd.Messages(), nil), ", "))
		}
		c.msg = md
	}
	c.msgIdx = messageIndexes(c.msg)
	return c, nil
}

// serializedProto returns the file descriptor of a schema the registry holds in serialized form
// (base64 of a FileDescriptorProto, as Confluent's Python and Go serializers register them), or nil
// for .proto source.
func serializedProto(text string) *descriptorpb.FileDescriptorProto {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) == 0 {
		return nil
	}
	fdp := &descriptorpb.FileDescriptorProto{}
	if err := proto.Unmarshal(b, fdp); err != nil || len(fdp.GetMessageType())+len(fdp.GetEnumType()) == 0 {
		return nil
	}
	// Serializers leave json_name out; the compiler, which always sets it when it parses source,
	// would take the absent names for clashing custom ones.
	var fill func(ms []*descriptorpb.DescriptorProto)
	setJSONNames := func(fs []*descriptorpb.FieldDescriptorProto) {
		for _, f := range fs {
			if f.JsonName == nil {
				f.JsonName = proto.String(jsonName(f.GetName()))
			}
		}
	}
	fill = func(ms []*descriptorpb.DescriptorProto) {
		for _, m := range ms {
			setJSONNames(m.Field)
			setJSONNames(m.Extension)
			fill(m.NestedType)
		}
	}
	fill(fdp.MessageType)
	setJSONNames(fdp.Extension)
	return fdp
}

// jsonName is protoc's default JSON name of a field: underscores dropped, the letter after each
// one upper-cased.
func jsonName(name string) string {
	var sb strings.Builder
	upper := false
	for _, c := range []byte(name) {
		switch {
		case c == '_':
			upper = true
		case upper && 'a' <= c && c <= 'z':
			sb.WriteByte(c - 'a' + 'A')
			upper = false
		default:
			sb.WriteByte(c)
			upper = false
		}
	}
	return sb.String()
}

func messageNames(ms protoreflect.MessageDescriptors, out []string) []string {
	for i := range ms.Len() {
		out = append(out, string(ms.Get(i).FullName()))
		out = messageNames(ms.Get(i).Messages(), out)
	}
	return out
}

// messageIndexes is the path of md from its file: its index among the top-level messages, then
// among the nested ones.
func messageIndexes(md protoreflect.MessageDescriptor) []int {
	var idx []int
	for d := protoreflect.Descriptor(md); ; {
		idx = append([]int{d.Index()}, idx...)
		p, ok := d.Parent().(protoreflect.MessageDescriptor)
		if !ok {
			return idx
		}
		d = p
	}
}

func (c *protoCodec) decode(payload, dst []byte) ([]byte, error) {
	idx, rest, err := readMessageIndexes(payload)
	if err != nil {
		return dst, err
	}
	ms := c.file.Messages()
	var md protoreflect.MessageDescriptor
	for _, i := range idx {
		if i >= ms.Len() {
			return dst, fmt.Errorf("message index %v names no message of the schema", idx)
		}
		md = ms.Get(i)
		ms = md.Messages()
	}
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(rest, m); err != nil {
		return dst, fmt.Errorf("payload does not decode as %s: %v", md.FullName(), err)
	}
	out, err := c.mo.MarshalAppend(dst, m)
	if err != nil {
		return dst, fmt.Errorf("message %s: %v", md.FullName(), err)
	}
	return out, nil
}

func (c *protoCodec) encode(v, dst []byte) ([]byte, error) {
	m := dynamicpb.NewMessage(c.msg)
	if err := c.uo.Unmarshal(v, m); err != nil {
		return dst, fmt.Errorf("value does not fit message %s: %s", c.msg.FullName(), strings.TrimPrefix(err.Error(), "proto: "))
	}
	out := appendMessageIndexes(dst, c.msgIdx)
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(out, m)
	if err != nil {
		return dst, fmt.Errorf("message %s: %s", c.msg.FullName(), strings.TrimPrefix(err.Error(), "proto: "))
	}
	return out, nil
}

// jsonSchemaBase is the base URL the registry's JSON Schema and its references are known by.
const jsonSchemaBase = "https://schema-registry.invalid/schemas/"

type jsonSchemaCodec struct {
	sch *jsonschema.Schema
}

// refLoader finds referenced schemas by their reference name, at the end of whatever URL a $ref
// resolves to.
type refLoader map[string]any

func (l refLoader) Load(url string) (any, error) {
	for name, doc := range l {
		if url == name || strings.HasSuffix(url, "/"+name) {
			return doc, nil
		}
	}
	return nil, fmt.Errorf("%s is not among the schema's references", url)
}

func compileJSONSchema(text string, refs []namedSchema) (*jsonSchemaCodec, error) {
	c := jsonschema.NewCompiler()
	loader := refLoader{}
	for _, r := range refs {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(r.text))
		if err != nil {
			return nil, fmt.Errorf("referenced schema %q: %v", r.name, err)
		}
		loader[r.name] = doc
		url := r.name
		if !strings.Contains(url, "://") {
			url = jsonSchemaBase + url
		}
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("referenced schema %q: %v", r.name, err)
		}
	}
	c.UseLoader(loader)
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	if err := c.AddResource(jsonSchemaBase+"schema.json", doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(jsonSchemaBase + "schema.json")
	if err != nil {
		return nil, err
	}
	return &jsonSchemaCodec{sch: sch}, nil
}

func (c *jsonSchemaCodec) validate(v []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
	if err != nil {
		return fmt.Errorf("value is not JSON: %v", err)
	}
	err = c.sch.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		if r := schemamsg.Reason(ve, 5); r != "" {
			return errors.New(r)
		}
	}
	return err
}

func (c *jsonSchemaCodec) decode(payload, dst []byte) ([]byte, error) {
	if err := c.validate(payload); err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}

func (c *jsonSchemaCodec) encode(v, dst []byte) ([]byte, error) {
	if err := c.validate(v); err != nil {
		return dst, err
	}
	return append(dst, v...), nil
}
