package transform

import (
	"errors"
)

type wrapped struct {
	prefix string
	err    error
}

func (w *wrapped) Error() string { return w.prefix + ": " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// wrap prefixes err with the operation, as fmt.Errorf("%s: %w") would (without linking fmt into
// every module).
func wrap(prefix string, err error) error { return &wrapped{prefix, err} }

func panicError(prefix string, p any) error {
	switch v := p.(type) {
	case error:
		return wrap(prefix+": panic", v)
	case string:
		return errors.New(prefix + ": panic: " + v)
	}
	return errors.New(prefix + ": panic")
}

// module is the guest's single instance state. A WebAssembly instance runs one call at a time, so
// it needs no locks. The buffers live here, referenced from a package-level variable, so the Go
// garbage collector (which does not move objects) keeps them at a fixed address while the host
// writes into and reads from them.
type module struct {
	meta   []byte
	ports  []string
	proc   Processor
	onInit func() error

	config  []byte
	in      []byte // the tf_reserve buffer
	out     []byte // the result frame buffer, reused for every batch
	lastErr []byte
	batch   Batch
}

var mod module

const maxReserve = 1 << 30

// reserve makes sure the input buffer holds at least n bytes and returns it (nil when it cannot).
func reserve(n uint32) []byte {
	if uint64(n) > maxReserve {
		return nil
	}
	if n == 0 {
		n = 1
	}
	if uint32(cap(mod.in)) < n {
		c := (uint64(n) + 0xFFFF) &^ 0xFFFF // whole 64 KiB steps: fewer reserve calls
		mod.in = make([]byte, c)
	}
	mod.in = mod.in[:cap(mod.in)]
	return mod.in
}

func setLastError(err error) {
	msg := err.Error()
	if len(msg) > maxReasonBytes {
		msg = msg[:maxReasonBytes]
	}
	mod.lastErr = append(mod.lastErr[:0], msg...)
}

// initialize handles tf_init with the config already in the input buffer. It returns 0 or a
// non-zero error code with the message in lastErr.
func initialize(n uint32) (code int32) {
	if uint64(n) > uint64(len(mod.in)) {
		setLastError(errors.New("init: config length " + itoa(int(n)) + " exceeds the reserved " + itoa(len(mod.in)) + " bytes"))
		return 1
	}
	mod.config = append(mod.config[:0:0], mod.in[:n]...)
	mod.lastErr = mod.lastErr[:0]
	if mod.proc == nil {
		setLastError(errors.New("init: no transform registered (call transform.Register in an init function)"))
		return 1
	}
	if mod.onInit != nil {
		defer func() {
			if p := recover(); p != nil {
				setLastError(panicError("init", p))
				code = 1
			}
		}()
		if err := mod.onInit(); err != nil {
			setLastError(err)
			return 1
		}
	}
	return 0
}

// process handles tf_process with a frame of n bytes in the input buffer. It returns the result
// frame, or a negative batch error code with the message in lastErr.
func process(n uint32) (res []byte, code int32) {
	mod.lastErr = mod.lastErr[:0]
	if uint64(n) > uint64(len(mod.in)) {
		setLastError(errors.New("process: frame length " + itoa(int(n)) + " exceeds the reserved " + itoa(len(mod.in)) + " bytes"))
		return nil, errUnsupported
	}
	if mod.proc == nil {
		setLastError(errors.New("process: no transform registered"))
		return nil, errGeneric
	}
	b := &mod.batch
	if err := b.reset(mod.in[:n], mod.out, mod.ports); err != nil {
		setLastError(err)
		return nil, errUnsupported
	}
	defer func() {
		mod.out = b.out[:0] // keep the (possibly grown) buffer for the next batch
		if p := recover(); p != nil {
			setLastError(panicError("process", p))
			res, code = nil, errGeneric
		}
	}()
	if err := mod.proc.Process(b); err != nil {
		setLastError(wrap("process", err))
		return nil, errGeneric
	}
	if b.err != nil {
		setLastError(wrap("process", b.err))
		return nil, errGeneric
	}
	return b.finish(), 0
}
