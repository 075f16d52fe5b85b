package mcp

import (
	"bytes"
	"encoding/json/jsontext"
	"errors"
	"io"
	"sync"
)

// peekInto returns the methods of a JSON-RPC message or batch and the tool names of its
// tools/call requests, or nothing if the body is not JSON that encoding/json (mcp-go's parser)
// would decode into messages. It reads only those fields, with a pooled streaming decoder:
// every guarded HTTP request pays for it, and reflection-based decoding cost twice as much.
//
// It reads the body as encoding/json reads it into a struct: member names match
// case-insensitively (strings.EqualFold), the last match wins, null leaves a field as it was,
// duplicate names and invalid UTF-8 are accepted; a value of the wrong type makes the whole
// body unreadable. Where the two could still differ it answers nothing, which is the strict
// side (a token is then required, and the middleware alone judges the call): FuzzPeekJSONRPC
// checks exactly that against encoding/json.
//
// It appends to methods and calls, which come empty with room for one message's (the guard's:
// no allocation), and takes the names in known (the guard's: the usual methods and its
// policy's tools; methodNames when nil) as they are, without copying them out of the body.
func peekInto(body []byte, known map[string]string, methods, calls []string) ([]string, []string) {
	p := peekers.Get().(*peeker)
	defer p.release()
	p.known = known
	if known == nil {
		p.known = methodNames
	}
	// From a bytes.Buffer the decoder reads the body in place, without copying it.
	p.body = *bytes.NewBuffer(body)
	p.d.Reset(&p.body, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var one [1]peekedMessage // a batch is rare: one message needs no allocation
	msgs := one[:0]
	if p.d.PeekKind() == '[' {
		if _, err := p.d.ReadToken(); err != nil {
			return nil, nil
		}
		for p.d.PeekKind() != ']' {
			m, ok := p.message()
			if !ok {
				return nil, nil
			}
			msgs = append(msgs, m)
		}
		if _, err := p.d.ReadToken(); err != nil {
			return nil, nil
		}
	} else {
		m, ok := p.message()
		if !ok {
			return nil, nil
		}
		msgs = append(msgs, m)
	}
	if _, err := p.d.ReadToken(); !errors.Is(err, io.EOF) { // one value, then nothing
		return nil, nil
	}
	for _, m := range msgs {
		methods = append(methods, m.method)
		if m.method == "tools/call" {
			calls = append(calls, m.name)
		}
	}
	if len(calls) == 0 {
		calls = nil // no message calls a tool
	}
	return methods, calls
}

type peekedMessage struct{ method, name string }

type peeker struct {
	body  bytes.Buffer
	d     jsontext.Decoder
	name  []byte            // the member name being read, reused
	known map[string]string // names taken as they are, for one peek
}

var peekers = sync.Pool{New: func() any { return new(peeker) }}

// release returns p to the pool holding nothing of the body (which may be megabytes).
func (p *peeker) release() {
	p.known, p.body = nil, bytes.Buffer{}
	p.d.Reset(&p.body)
	peekers.Put(p)
}

// message reads one message: an object, or null (a message with no fields).
func (p *peeker) message() (m peekedMessage, ok bool) {
	switch p.d.PeekKind() {
	case 'n':
		_, err := p.d.ReadToken()
		return m, err == nil
	case '{':
	default:
		return m, false
	}
	ok = p.object(func(name []byte) bool {
		switch {
		case bytes.EqualFold(name, nameMethod):
			return p.stringInto(&m.method)
		case bytes.EqualFold(name, nameParams):
			switch p.d.PeekKind() {
			case 'n':
				_, err := p.d.ReadToken()
				return err == nil
			case '{':
				return p.object(func(name []byte) bool {
					if bytes.EqualFold(name, nameName) {
						return p.stringInto(&m.name)
					}
					return p.d.SkipValue() == nil
				})
			}
			return false
		}
		return p.d.SkipValue() == nil
	})
	return m, ok
}

var nameMethod, nameParams, nameName = []byte("method"), []byte("params"), []byte("name")

// object reads an object, calling member for each name (unquoted; valid until the next read)
// with the decoder at its value, which member must read.
func (p *peeker) object(member func(name []byte) bool) bool {
	if _, err := p.d.ReadToken(); err != nil { // '{'
		return false
	}
	for {
		switch p.d.PeekKind() {
		case '}':
			_, err := p.d.ReadToken()
			return err == nil
		case '"':
			raw, err := p.d.ReadValue() // a name, read raw: no allocation
			if err != nil {
				return false
			}
			name := raw[1 : len(raw)-1] // printable ASCII without escapes: its bytes are the name
			if !plainASCII(name) {
				if name, err = jsontext.AppendUnquote(p.name[:0], raw); err != nil {
					return false
				}
				p.name = name
			}
			if !member(name) {
				return false
			}
		default:
			return false
		}
	}
}

// stringInto reads a string into dst; null leaves dst as it was; anything else is a type error.
func (p *peeker) stringInto(dst *string) bool {
	switch p.d.PeekKind() {
	case 'n':
		_, err := p.d.ReadToken()
		return err == nil
	case '"':
		v, err := p.d.ReadValue()
		if err != nil {
			return false
		}
		if raw := v[1 : len(v)-1]; plainASCII(raw) {
			if known, ok := p.known[string(raw)]; ok { // no allocation: the usual names
				*dst = known
			} else {
				*dst = string(raw)
			}
			return true
		}
		// Escapes or other than ASCII: read as the decoder reads it (invalid UTF-8 and lone
		// surrogates become U+FFFD, as encoding/json reads them).
		tok, err := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowInvalidUTF8(true)).ReadToken()
		if err != nil {
			return false
		}
		*dst = tok.String()
		return true
	}
	return false
}

// plainASCII reports whether a JSON string's content is printable ASCII without escapes: then
// its bytes are its value.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

// methodNames interns the methods every session sends, so that peeking at them allocates
// nothing (a guard adds its policy's tools: Guard.names).
var methodNames = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"initialize", "ping", "tools/list", "tools/call", "notifications/initialized",
		"notifications/cancelled", "resources/list", "prompts/list"} {
		m[name] = name
	}
	return m
}()
